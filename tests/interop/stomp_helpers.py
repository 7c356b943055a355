"""STOMP helpers for test_stomp.py: a synchronous wrapper around stomp.py 8.x connections
(``Stomp``) and a raw-socket client (``RawStomp``) for the frames stomp.py cannot express
(bad input, the exact bytes of heart-beats, the order of a DISCONNECT receipt and the close).

Every wait is bounded.  Absence is checked behind a sentinel message, never by sleeping alone.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass, field

import stomp

from helpers import QUIET, WAIT

CONNECTIONS = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}

_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"}
_UNESCAPES = {"\\\\": "\\", "\\r": "\r", "\\n": "\n", "\\c": ":"}


def escape(s: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in s)


def unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        pair = s[i:i + 2]
        if s[i] == "\\" and pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


# ======================================================================================
# raw frames


@dataclass
class Frame:
    """A frame as read off the wire: ``headers`` keeps the first of repeated headers (the
    spec's rule), ``header_list`` keeps them all, in order."""
    cmd: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def get(self, name: str, default=None):
        return self.headers.get(name, default)

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"Frame({self.cmd} {self.header_list} {body!r})"


def encode(cmd: str, headers=None, body: bytes | str = b"", *, raw: bool = False) -> bytes:
    """One frame's bytes.  ``headers`` is a dict or a list of (name, value) pairs; values are
    escaped the 1.2 way unless ``raw`` (or the command is CONNECT/STOMP, which never escape).
    No content-length is added: pass it explicitly when the test wants one."""
    if isinstance(body, str):
        body = body.encode()
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    no_escape = raw or cmd in ("CONNECT", "STOMP")
    lines = [cmd]
    for k, v in items:
        k, v = str(k), str(v)
        lines.append(f"{k}:{v}" if no_escape else f"{escape(k)}:{escape(v)}")
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


class Closed(Exception):
    """The peer closed the connection."""


class RawStomp:
    """A STOMP connection over a plain socket.

    ``read()`` returns the next frame; bare EOLs between frames (heart-beats) are counted in
    ``beats`` (and their arrival times in ``beat_times``).  ``closed()`` waits for EOF.
    """

    def __init__(self, addr: tuple[str, int], timeout: float = WAIT):
        self.addr = addr
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.beats = 0
        self.beat_times: list[float] = []
        self.frames: list[Frame] = []  # everything read, for failure messages

    # -- writing ---------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self, cmd: str, headers=None, body: bytes | str = b"", **kw) -> None:
        self.send(encode(cmd, headers, body, **kw))

    def connect(self, version: str = "1.2", login: str | None = "guest", passcode: str | None = "guest",
                host: str | None = "/", command: str = "CONNECT", extra=None,
                expect: str = "CONNECTED", timeout: float = WAIT) -> Frame:
        h = [("accept-version", version)]
        if host is not None:
            h.append(("host", host))
        if login is not None:
            h.append(("login", login))
        if passcode is not None:
            h.append(("passcode", passcode))
        h += list((extra or {}).items()) if isinstance(extra, dict) else list(extra or [])
        self.frame(command, h)
        f = self.read(timeout)
        if expect:
            assert f.cmd == expect, f"expected {expect} to {command} {h}, got {f!r}"
        return f

    # -- reading ---------------------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise Closed
        self.buf += data

    def _skip_eols(self) -> None:
        while True:
            if self.buf.startswith(b"\r\n"):
                self.buf = self.buf[2:]
            elif self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
            else:
                return
            self.beats += 1
            self.beat_times.append(time.monotonic())

    def _parse(self) -> Frame | None:
        self._skip_eols()
        end = self.buf.find(b"\n\n")
        end_crlf = self.buf.find(b"\r\n\r\n")
        if end < 0 and end_crlf < 0:
            return None
        if end_crlf >= 0 and (end < 0 or end_crlf < end):
            head, body_at = self.buf[:end_crlf], end_crlf + 4
        else:
            head, body_at = self.buf[:end], end + 2
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        cmd = lines[0]
        hl = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if cmd != "CONNECTED":
                k, v = unescape(k), unescape(v)
            hl.append((k, v))
        headers: dict[str, str] = {}
        for k, v in hl:
            headers.setdefault(k, v)
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(self.buf) < body_at + n + 1:
                return None
            body = self.buf[body_at:body_at + n]
            assert self.buf[body_at + n:body_at + n + 1] == b"\x00", \
                f"{cmd}: no NUL after content-length {n} bytes"
            self.buf = self.buf[body_at + n + 1:]
        else:
            nul = self.buf.find(b"\x00", body_at)
            if nul < 0:
                return None
            body = self.buf[body_at:nul]
            self.buf = self.buf[nul + 1:]
        f = Frame(cmd, headers, body, hl)
        self.frames.append(f)
        return f

    def read(self, timeout: float = WAIT) -> Frame:
        """The next frame (fails on timeout or on EOF)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError(f"no frame within {timeout}s (read so far: {self.frames})") from None
            except Closed:
                raise AssertionError(f"connection closed while waiting for a frame "
                                     f"(read so far: {self.frames}; pending {self.buf!r})") from None

    def expect(self, cmd: str, timeout: float = WAIT) -> Frame:
        f = self.read(timeout)
        assert f.cmd == cmd, f"expected {cmd}, got {f!r}"
        return f

    def read_for(self, seconds: float) -> list[Frame]:
        """Frames (and beats) arriving within ``seconds``; stops early at EOF."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            f = self._parse()
            if f is not None:
                out.append(f)
                continue
            try:
                self._fill(deadline)
            except (TimeoutError, Closed):
                return out

    def closed(self, timeout: float = WAIT) -> list[Frame]:
        """Wait for EOF; returns the frames that arrived before it (fails if still open)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                out.append(f)
                continue
            try:
                self._fill(deadline)
            except Closed:
                return out
            except TimeoutError:
                raise AssertionError(f"connection still open {timeout}s later; frames: {out}; "
                                     f"pending {self.buf!r}") from None

    def until_error_or_close(self, timeout: float = WAIT) -> tuple[list[Frame], bool]:
        """Frames until (and including) the first ERROR, or until EOF: (frames, closed).
        Fails if neither happens within ``timeout``."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                out.append(f)
                if f.cmd == "ERROR":
                    return out, False
                continue
            try:
                self._fill(deadline)
            except Closed:
                return out, True
            except TimeoutError:
                raise AssertionError(f"neither an ERROR nor a close within {timeout}s; frames: {out}; "
                                     f"pending {self.buf!r}") from None

    def error_and_close(self, timeout: float = WAIT, require_error: bool = True) -> Frame | None:
        """The broker's reaction to a fatal frame: (an ERROR frame, then) EOF.  Returns the
        ERROR (None if the broker closed without one and ``require_error`` is false)."""
        frames = self.closed(timeout)
        errors = [f for f in frames if f.cmd == "ERROR"]
        others = [f for f in frames if f.cmd != "ERROR"]
        assert not others, f"unexpected frames before the close: {others}"
        if require_error:
            assert errors, "connection closed without an ERROR frame"
        if errors:
            assert len(errors) == 1, f"more than one ERROR: {errors}"
            assert "message" in errors[0].headers, f"ERROR without a message header: {errors[0]!r}"
            return errors[0]
        return None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ======================================================================================
# stomp.py wrapper


class _Listener(stomp.ConnectionListener):
    def __init__(self):
        self.connected: stomp.utils.Frame | None = None
        self.connected_evt = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()
        self.heartbeats = 0
        self.heartbeat_timeout = False
        self._cond = threading.Condition()
        self.receipts: list[str] = []
        self.sent: list[tuple[str, dict]] = []  # (command, headers) of every frame sent

    def on_send(self, frame):
        self.sent.append((frame.cmd, dict(frame.headers)))

    def on_connected(self, frame):
        self.connected = frame
        self.connected_evt.set()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)
        self.connected_evt.set()

    def on_receipt(self, frame):
        with self._cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self._cond.notify_all()

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_heartbeat_timeout(self):
        self.heartbeat_timeout = True

    def on_disconnected(self):
        self.disconnected.set()
        self.connected_evt.set()
        with self._cond:
            self._cond.notify_all()


class Stomp:
    """A stomp.py connection (``.c``) whose frames can be awaited with timeouts.

    ``version`` picks Connection10/11/12.  ``vhost`` is sent as the ``host`` header (stomp.py
    1.2 would otherwise send the socket host, which RabbitMQ refuses).  ``auto_decode=False``
    keeps bodies as bytes.  Methods that take ``receipt=True`` wait for the RECEIPT, which also
    means the broker has processed the frame (a SUBSCRIBE is bound before the next SEND).
    """

    def __init__(self, addr: tuple[str, int], version: str = "1.2", *, vhost: str | None = "/",
                 heartbeats=(0, 0), auto_decode: bool = True, name: str = "stomp"):
        self.addr = addr
        self.version = version
        self.name = name
        kw = dict(auto_decode=auto_decode, reconnect_attempts_max=1, timeout=WAIT)
        if version != "1.0":
            kw.update(heartbeats=heartbeats, vhost=vhost)
        self.c = CONNECTIONS[version]([addr], **kw)
        self.listener = _Listener()
        self.c.set_listener("test", self.listener)
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self.name}-{self._n}"

    # -- connection ------------------------------------------------------------------
    def connect(self, login: str | None = "guest", passcode: str | None = "guest", *,
                expect_success: bool = True, timeout: float = WAIT, **kw):
        """CONNECT/STOMP and wait for CONNECTED (returned) or, with ``expect_success=False``,
        for the ERROR (returned)."""
        self.c.connect(login, passcode, wait=False, **kw)
        assert self.listener.connected_evt.wait(timeout), f"{self.name}: no CONNECTED within {timeout}s"
        if expect_success:
            assert self.listener.connected is not None, \
                f"{self.name}: connect refused: {self.errors_seen()}"
            return self.listener.connected
        assert self.listener.connected is None, f"{self.name}: connected unexpectedly"
        return self.error(timeout)

    def errors_seen(self) -> list:
        out = []
        while True:
            try:
                out.append(self.listener.errors.get_nowait())
            except queue.Empty:
                return out

    def is_connected(self) -> bool:
        return self.c.is_connected() and not self.listener.disconnected.is_set()

    def wait_disconnected(self, timeout: float = WAIT) -> None:
        assert self.listener.disconnected.wait(timeout), f"{self.name}: still connected after {timeout}s"

    def disconnect(self, timeout: float = WAIT) -> None:
        """DISCONNECT with a receipt; stomp.py closes the socket when the RECEIPT arrives."""
        self.c.disconnect()
        self.wait_disconnected(timeout)

    def drop(self, timeout: float = WAIT) -> None:
        """Close the TCP connection without DISCONNECT."""
        sock = getattr(self.c.transport, "socket", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.wait_disconnected(timeout)

    def close(self) -> None:
        """Best-effort cleanup for fixtures."""
        try:
            if self.is_connected():
                self.c.disconnect()
                self.listener.disconnected.wait(1)
        except Exception:
            pass
        try:
            if not self.listener.disconnected.is_set():
                self.c.transport.disconnect_socket()
        except Exception:
            pass

    # -- receipts --------------------------------------------------------------------
    def wait_receipt(self, rid: str, timeout: float = WAIT) -> None:
        with self.listener._cond:
            ok = self.listener._cond.wait_for(
                lambda: rid in self.listener.receipts or self.listener.disconnected.is_set(), timeout)
            assert ok and rid in self.listener.receipts, \
                f"{self.name}: no RECEIPT {rid} within {timeout}s (errors: {self.errors_seen()})"

    def _with_receipt(self, receipt, headers: dict) -> str | None:
        if receipt is True:
            receipt = self._id("r")
        if receipt:
            headers["receipt"] = receipt
        return receipt or None

    # -- frames ----------------------------------------------------------------------
    def send(self, destination: str, body: bytes | str = b"", content_type: str | None = None, *,
             receipt=False, headers: dict | None = None, **kw) -> None:
        h = dict(headers or {}, **kw)
        rid = self._with_receipt(receipt, h)
        self.c.send(destination, body, content_type, headers=h)
        if rid:
            self.wait_receipt(rid)

    def subscribe(self, destination: str, id: str | None = None, ack: str = "auto", *,
                  receipt=True, headers: dict | None = None, **kw) -> str:
        """SUBSCRIBE (waits for its RECEIPT by default); returns the subscription id."""
        id = id or self._id("sub")
        h = dict(headers or {}, **kw)
        rid = self._with_receipt(receipt, h)
        self.c.subscribe(destination, id, ack, headers=h)
        if rid:
            self.wait_receipt(rid)
        return id

    def unsubscribe(self, id: str, *, receipt=True, destination: str | None = None,
                    headers: dict | None = None) -> None:
        h = dict(headers or {})
        rid = self._with_receipt(receipt, h)
        if self.version == "1.0":
            self.c.unsubscribe(destination=destination, id=id, headers=h)
        else:
            self.c.unsubscribe(id, headers=h)
        if rid:
            self.wait_receipt(rid)

    def ack(self, msg, transaction: str | None = None, receipt=False) -> None:
        """ACK ``msg`` the way its version says: 1.2 by its ``ack`` header, 1.1 by
        message-id + subscription, 1.0 by message-id."""
        rid = self._with_receipt(receipt, {})
        h = msg.headers
        if self.version == "1.2":
            self.c.ack(h["ack"], transaction, rid)
        elif self.version == "1.1":
            self.c.ack(h["message-id"], h["subscription"], transaction, rid)
        else:
            self.c.ack(h["message-id"], transaction, rid)
        if rid:
            self.wait_receipt(rid)

    def nack(self, msg, transaction: str | None = None, receipt=False, **kw) -> None:
        rid = self._with_receipt(receipt, {})
        h = msg.headers
        if self.version == "1.2":
            self.c.nack(h["ack"], transaction, rid, **kw)
        else:
            self.c.nack(h["message-id"], h["subscription"], transaction, rid, **kw)
        if rid:
            self.wait_receipt(rid)

    def begin(self, tx: str, receipt=False) -> None:
        h = {}
        rid = self._with_receipt(receipt, h)
        self.c.begin(tx, headers=h)
        if rid:
            self.wait_receipt(rid)

    def commit(self, tx: str, receipt=True) -> None:
        h = {}
        rid = self._with_receipt(receipt, h)
        self.c.commit(tx, headers=h)
        if rid:
            self.wait_receipt(rid)

    def abort(self, tx: str, receipt=True) -> None:
        h = {}
        rid = self._with_receipt(receipt, h)
        self.c.abort(tx, headers=h)
        if rid:
            self.wait_receipt(rid)

    # -- incoming --------------------------------------------------------------------
    def get(self, timeout: float = WAIT):
        try:
            return self.listener.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no MESSAGE within {timeout}s "
                                 f"(errors: {self.errors_seen()})") from None

    def get_n(self, n: int, timeout: float = WAIT) -> list:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.listener.messages.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                raise AssertionError(f"{self.name}: got {len(out)} of {n} MESSAGEs within {timeout}s: "
                                     f"{[bodies(m) for m in out]} (errors: {self.errors_seen()})") from None
        return out

    def until(self, body, timeout: float = WAIT) -> list:
        """MESSAGEs until one with ``body`` (the sentinel) arrives; returns those before it."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            try:
                m = self.listener.messages.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"{self.name}: sentinel {body!r} not received within {timeout}s; "
                                     f"got {[bodies(m) for m in before]}") from None
            if m.body == body:
                return before
            before.append(m)

    def drain(self, quiet: float = QUIET) -> list:
        """Whatever arrives within ``quiet`` seconds (used only after a sentinel)."""
        out = []
        deadline = time.monotonic() + quiet
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.listener.messages.get(timeout=left))
            except queue.Empty:
                break
        return out

    def error(self, timeout: float = WAIT):
        try:
            return self.listener.errors.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: no ERROR within {timeout}s") from None


def bodies(msgs) -> list:
    if not isinstance(msgs, list):
        return msgs.body
    return [m.body for m in msgs]
