"""A tiny byte-level MQTT 3.1.1 / 5.0 client for the cases paho-mqtt cannot express.

paho-mqtt refuses some inputs client-side (an invalid filter such as ``a/#/b``, an empty
client id with clean session 0) and hides some server answers (paho 2.1 drops the reason
code of a server DISCONNECT that has no properties).  These tests need the exact bytes, so
this module encodes the few packets they send and decodes whatever the broker answers.

Every read is bounded by a timeout; nothing here blocks forever.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# Control packet types.
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)

PACKET_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

V311 = 4
V5 = 5

# MQTT 5 property identifiers -> (name, wire type).
BYTE, U16, U32, VARINT, UTF8, BINARY, PAIR = "byte", "u16", "u32", "varint", "utf8", "bin", "pair"
PROPERTIES = {
    0x01: ("PayloadFormatIndicator", BYTE),
    0x02: ("MessageExpiryInterval", U32),
    0x03: ("ContentType", UTF8),
    0x08: ("ResponseTopic", UTF8),
    0x09: ("CorrelationData", BINARY),
    0x0B: ("SubscriptionIdentifier", VARINT),
    0x11: ("SessionExpiryInterval", U32),
    0x12: ("AssignedClientIdentifier", UTF8),
    0x13: ("ServerKeepAlive", U16),
    0x15: ("AuthenticationMethod", UTF8),
    0x16: ("AuthenticationData", BINARY),
    0x17: ("RequestProblemInformation", BYTE),
    0x18: ("WillDelayInterval", U32),
    0x19: ("RequestResponseInformation", BYTE),
    0x1A: ("ResponseInformation", UTF8),
    0x1C: ("ServerReference", UTF8),
    0x1F: ("ReasonString", UTF8),
    0x21: ("ReceiveMaximum", U16),
    0x22: ("TopicAliasMaximum", U16),
    0x23: ("TopicAlias", U16),
    0x24: ("MaximumQoS", BYTE),
    0x25: ("RetainAvailable", BYTE),
    0x26: ("UserProperty", PAIR),
    0x27: ("MaximumPacketSize", U32),
    0x28: ("WildcardSubscriptionAvailable", BYTE),
    0x29: ("SubscriptionIdentifierAvailable", BYTE),
    0x2A: ("SharedSubscriptionAvailable", BYTE),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTIES.items()}


class ProtocolError(Exception):
    """The broker sent bytes this decoder cannot make sense of."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def utf8(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def encode_properties(props: list[tuple[str, object]] | None) -> bytes:
    """Encode ``[(name, value), ...]``; UserProperty values are ``(key, value)`` pairs."""
    body = bytearray()
    for name, value in props or []:
        pid = PROPERTY_IDS[name]
        kind = PROPERTIES[pid][1]
        body += varint(pid)
        if kind == BYTE:
            body += struct.pack("!B", value)
        elif kind == U16:
            body += struct.pack("!H", value)
        elif kind == U32:
            body += struct.pack("!I", value)
        elif kind == VARINT:
            body += varint(value)
        elif kind in (UTF8, BINARY):
            body += utf8(value)
        elif kind == PAIR:
            body += utf8(value[0]) + utf8(value[1])
    return varint(len(body)) + bytes(body)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    mult, value = 1, 0
    for i in range(4):
        if pos >= len(buf):
            raise ProtocolError("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128
    raise ProtocolError("variable byte integer longer than 4 bytes")


def decode_properties(buf: bytes, pos: int) -> tuple[dict, int]:
    """Decode a property block at ``pos``; UserProperty and SubscriptionIdentifier are lists."""
    length, pos = decode_varint(buf, pos)
    end = pos + length
    props: dict = {}
    while pos < end:
        pid, pos = decode_varint(buf, pos)
        if pid not in PROPERTIES:
            raise ProtocolError(f"unknown property id 0x{pid:02x}")
        name, kind = PROPERTIES[pid]
        if kind == BYTE:
            value = buf[pos]
            pos += 1
        elif kind == U16:
            (value,) = struct.unpack_from("!H", buf, pos)
            pos += 2
        elif kind == U32:
            (value,) = struct.unpack_from("!I", buf, pos)
            pos += 4
        elif kind == VARINT:
            value, pos = decode_varint(buf, pos)
        elif kind in (UTF8, BINARY):
            (n,) = struct.unpack_from("!H", buf, pos)
            raw = buf[pos + 2:pos + 2 + n]
            pos += 2 + n
            value = raw.decode("utf-8") if kind == UTF8 else bytes(raw)
        else:  # PAIR
            (n,) = struct.unpack_from("!H", buf, pos)
            k = buf[pos + 2:pos + 2 + n].decode("utf-8")
            pos += 2 + n
            (n,) = struct.unpack_from("!H", buf, pos)
            v = buf[pos + 2:pos + 2 + n].decode("utf-8")
            pos += 2 + n
            value = (k, v)
        if name in ("UserProperty", "SubscriptionIdentifier"):
            props.setdefault(name, []).append(value)
        else:
            props[name] = value
    if pos != end:
        raise ProtocolError("property block overruns its length")
    return props, end


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    # Filled in by ``RawClient.read`` for packets it knows how to decode.
    fields: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.type, f"type{self.type}")

    def __repr__(self) -> str:  # shows up in assertion messages: keep it exact
        return f"<{self.name} flags=0x{self.flags:x} body={self.body.hex()} {self.fields}>"


class RawClient:
    """One TCP connection speaking raw MQTT.  ``version`` is 4 (3.1.1) or 5."""

    def __init__(self, host: str, port: int, version: int = V5, timeout: float = 5.0):
        self.version = version
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.log: list[str] = []  # "-> X" / "<- Y" lines, for failure messages

    # -- sending -----------------------------------------------------------------------
    def send(self, data: bytes, what: str | None = None) -> None:
        self.log.append(f"-> {what or data[:16].hex()} ({len(data)} bytes)")
        self.sock.sendall(data)

    def connect(self, client_id: str = "", clean: bool = True, keepalive: int = 10,
                props: list | None = None, will: dict | None = None,
                username: str | None = None, password: bytes | None = None) -> None:
        """Send CONNECT.  ``will`` = {topic, payload, qos, retain, props}."""
        flags = 0x02 if clean else 0
        payload = utf8(client_id)
        if will is not None:
            flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
            if self.version == V5:
                payload += encode_properties(will.get("props"))
            payload += utf8(will["topic"]) + utf8(will["payload"])
        if username is not None:
            flags |= 0x80
            payload += utf8(username)
        if password is not None:
            flags |= 0x40
            payload += utf8(password)
        vh = utf8("MQTT") + bytes([self.version, flags]) + struct.pack("!H", keepalive)
        if self.version == V5:
            vh += encode_properties(props)
        self.send(packet(CONNECT, 0, vh + payload), f"CONNECT id={client_id!r} clean={clean}")

    def subscribe(self, pid: int, filters: list[tuple[str, int]], props: list | None = None) -> None:
        """``filters`` = [(filter, options byte)]; options is the QoS for 3.1.1."""
        body = struct.pack("!H", pid)
        if self.version == V5:
            body += encode_properties(props)
        for f, opts in filters:
            body += utf8(f) + bytes([opts])
        self.send(packet(SUBSCRIBE, 0x2, body), f"SUBSCRIBE pid={pid} {filters}")

    def publish(self, topic: str, payload: bytes, qos: int = 0, pid: int | None = None,
                retain: bool = False, props: list | None = None, dup: bool = False) -> None:
        body = utf8(topic)
        if qos:
            body += struct.pack("!H", pid if pid is not None else 1)
        if self.version == V5:
            body += encode_properties(props)
        body += payload
        flags = (qos << 1) | (1 if retain else 0) | (0x8 if dup else 0)
        self.send(packet(PUBLISH, flags, body),
                  f"PUBLISH topic={topic!r} qos={qos} payload_len={len(payload)}")

    def ack(self, ptype: int, pid: int) -> None:
        flags = 0x2 if ptype == PUBREL else 0
        self.send(packet(ptype, flags, struct.pack("!H", pid)), f"{PACKET_NAMES[ptype]} pid={pid}")

    def disconnect(self, reason: int | None = None, props: list | None = None) -> None:
        body = b""
        if self.version == V5 and (reason is not None or props):
            body = bytes([reason or 0]) + (encode_properties(props) if props else b"")
        self.send(packet(DISCONNECT, 0, body), f"DISCONNECT reason={reason}")

    def pingreq(self) -> None:
        self.send(packet(PINGREQ, 0, b""), "PINGREQ")

    # -- receiving ---------------------------------------------------------------------
    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on EOF (or reset).  Raises TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from broker before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("no data from broker before the deadline") from e
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read(self, timeout: float | None = None) -> Packet | None:
        """Next packet, or None when the broker closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = decode_varint(self.buf, 1)
                except ProtocolError:
                    if len(self.buf) < 5:
                        length = None
                    else:
                        raise
                if length is not None and len(self.buf) >= pos + length:
                    first = self.buf[0]
                    body = self.buf[pos:pos + length]
                    self.buf = self.buf[pos + length:]
                    p = Packet(first >> 4, first & 0x0F, body)
                    self._decode(p)
                    self.log.append(f"<- {p!r}")
                    return p
            if not self._fill(deadline):
                if self.buf:
                    raise ProtocolError(f"connection closed inside a packet: {self.buf.hex()}")
                self.log.append("<- EOF")
                return None

    def expect(self, ptype: int, timeout: float | None = None) -> Packet:
        p = self.read(timeout)
        assert p is not None, f"expected {PACKET_NAMES[ptype]}, broker closed the connection; exchange: {self.log}"
        assert p.type == ptype, f"expected {PACKET_NAMES[ptype]}, got {p!r}; exchange: {self.log}"
        return p

    def read_until_closed(self, timeout: float | None = None) -> list[Packet]:
        """Every packet up to the broker closing the connection (TimeoutError if it never does)."""
        packets = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()) or 0.001)
            if p is None:
                return packets
            packets.append(p)

    def _decode(self, p: Packet) -> None:
        b, f = p.body, p.fields
        v5 = self.version == V5
        if p.type == CONNACK:
            f["session_present"] = bool(b[0] & 1)
            f["rc"] = b[1]
            if v5 and len(b) > 2:
                f["props"], _ = decode_properties(b, 2)
        elif p.type == DISCONNECT:
            f["rc"] = b[0] if b else 0
            if len(b) > 1:
                f["props"], _ = decode_properties(b, 1)
        elif p.type in (SUBACK, UNSUBACK):
            (f["pid"],) = struct.unpack_from("!H", b, 0)
            pos = 2
            if v5:
                f["props"], pos = decode_properties(b, pos)
            f["codes"] = list(b[pos:])
        elif p.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            (f["pid"],) = struct.unpack_from("!H", b, 0)
            f["rc"] = b[2] if len(b) > 2 else 0
        elif p.type == PUBLISH:
            qos = (p.flags >> 1) & 3
            (n,) = struct.unpack_from("!H", b, 0)
            f["topic"] = b[2:2 + n].decode("utf-8")
            pos = 2 + n
            f["qos"] = qos
            f["retain"] = bool(p.flags & 1)
            f["dup"] = bool(p.flags & 8)
            if qos:
                (f["pid"],) = struct.unpack_from("!H", b, pos)
                pos += 2
            if v5:
                f["props"], pos = decode_properties(b, pos)
            f["payload"] = bytes(b[pos:])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def raw_connect(host: str, port: int, version: int, client_id: str, **kw) -> tuple[RawClient, Packet]:
    """Open a connection, send CONNECT and return the client with its CONNACK."""
    c = RawClient(host, port, version)
    c.connect(client_id, **kw)
    return c, c.expect(CONNACK)
