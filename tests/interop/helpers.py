"""Broker process control and a small synchronous wrapper around paho-mqtt 2.x."""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "dwbroker"
LISTENING = re.compile(r"listening\s+protocol=\"?mqtt\"?\s+addr=\"?([0-9.]+|\[[0-9a-f:]+\]):(\d+)")
LISTENING_NATS = re.compile(r"listening\s+protocol=\"?nats\"?\s+addr=\"?([0-9.]+|\[[0-9a-f:]+\]):(\d+)")
LISTENING_AMQP = re.compile(r"listening\s+protocol=\"?amqp\"?\s+addr=\"?([0-9.]+|\[[0-9a-f:]+\]):(\d+)")
LISTENING_STOMP = re.compile(r"listening\s+protocol=\"?stomp\"?\s+addr=\"?([0-9.]+|\[[0-9a-f:]+\]):(\d+)")
LISTENING_KAFKA_REST = re.compile(r"listening\s+protocol=\"?kafka-rest\"?\s+addr=\"?([0-9.]+|\[[0-9a-f:]+\]):(\d+)")

# Every wait in this suite is bounded by one of these.
WAIT = 5.0  # an event that should happen now
QUIET = 0.5  # grace period after a sentinel when checking that something did NOT happen

VERSIONS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


def publish_until_received(publisher: mqtt.Client, topic: str, payload: bytes,
                           inbox: "queue.Queue[bytes]", attempts: int = 50) -> None:
    """Publishes ``payload`` (QoS 1) until it shows up in ``inbox``: for a subscription
    whose SUBACK the test could not wait for."""
    for _ in range(attempts):
        publisher.publish(topic, payload, qos=1).wait_for_publish(WAIT)
        try:
            if inbox.get(timeout=0.1) == payload:
                return
        except queue.Empty:
            continue
    raise AssertionError(f"{payload[:40]!r} never arrived on {topic}")


def bounded_async(budget: float):
    """Decorator: run an ``async def test_...(...)`` as a plain test function under
    ``asyncio.run``, the coroutine as a whole bounded by ``budget`` seconds."""

    def decorate(coro_fn):
        @functools.wraps(coro_fn)
        def wrapper(*args, **kwargs):
            async def bounded():
                return await asyncio.wait_for(coro_fn(*args, **kwargs), budget)

            return asyncio.run(bounded())

        return wrapper

    return decorate


class Broker:
    """The dwbroker binary on an ephemeral port, its output read by a thread.

    Its data dir is ``data_dir`` if given (kept, so that a broker started again on it
    recovers what it stored), else a fresh temporary one removed at ``stop``."""

    def __init__(self, binary: str | os.PathLike | None = None, config: str | None = None,
                 log: str | None = None, extra_args: list[str] | None = None, nats: bool = True,
                 amqp: bool = True, stomp: bool = True, data_dir: str | os.PathLike | None = None,
                 kafka_rest: bool = False):
        self.binary = str(binary or os.environ.get("DWBROKER_BIN") or DEFAULT_BIN)
        self.config = config
        self.own_data_dir = data_dir is None
        self.data_dir = str(data_dir) if data_dir is not None else tempfile.mkdtemp(prefix="dwbroker-data-")
        self.log_level = log or os.environ.get("DWBROKER_LOG", "info")
        self.extra_args = extra_args or []
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None
        # The NATS core listener (also on loopback, ephemeral port) unless ``nats=False``.
        self.nats = nats
        self.nats_port: int | None = None
        # The AMQP 0-9-1 listener (loopback, ephemeral port) unless ``amqp=False``.
        self.amqp = amqp
        self.amqp_port: int | None = None
        # The STOMP listener (loopback, ephemeral port) unless ``stomp=False``.
        self.stomp = stomp
        self.stomp_port: int | None = None
        # The Kafka REST listener (with the schema registry) if ``kafka_rest=True``.
        self.kafka_rest = kafka_rest
        self.kafka_rest_port: int | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def nats_url(self) -> str:
        """``nats://127.0.0.1:PORT`` for nats-py's ``nats.connect``."""
        assert self.nats_port is not None, "this broker runs without its NATS listener"
        return f"nats://{self.host}:{self.nats_port}"

    @property
    def amqp_url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F`` for pika's ``URLParameters``."""
        assert self.amqp_port is not None, "this broker runs without its AMQP listener"
        return f"amqp://guest:guest@{self.host}:{self.amqp_port}/%2F"

    @property
    def stomp_addr(self) -> tuple[str, int]:
        """``(host, port)`` of the STOMP listener."""
        assert self.stomp_port is not None, "this broker runs without its STOMP listener"
        return self.host, self.stomp_port

    @property
    def kafka_rest_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the Kafka REST proxy (and schema registry)."""
        assert self.kafka_rest_port is not None, "this broker runs without its Kafka REST listener"
        return f"http://{self.host}:{self.kafka_rest_port}"

    def _all_ports(self) -> bool:
        return (self.port is not None and (not self.nats or self.nats_port is not None)
                and (not self.amqp or self.amqp_port is not None)
                and (not self.stomp or self.stomp_port is not None)
                and (not self.kafka_rest or self.kafka_rest_port is not None))

    def start(self, timeout: float = 15.0) -> "Broker":
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"broker binary {self.binary} missing: run `cargo build --bin dwbroker` "
                               "or set DWBROKER_BIN")
        args = [self.binary, "--mqtt", "127.0.0.1:0", "--amqp", "127.0.0.1:0" if self.amqp else "off",
                "--stomp", "127.0.0.1:0" if self.stomp else "off",
                "--nats", "127.0.0.1:0" if self.nats else "off", "--kafka-rest", "127.0.0.1:0" if self.kafka_rest else "off", "--log", self.log_level,
                "--mqtt-ws", "127.0.0.1:0", "--stomp-ws", "127.0.0.1:0", "--nats-ws", "127.0.0.1:0",
                "--http", "127.0.0.1:0", "--nats-monitor", "127.0.0.1:0",
                "--data-dir", self.data_dir]
        if self.config:
            args += ["--config", self.config]
        args += self.extra_args
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True, name="broker-log")
        self._reader.start()
        if not self._ready.wait(timeout) or not self._all_ports():
            self.stop()
            raise RuntimeError("broker did not log `listening protocol=mqtt addr=...`"
                               + (" and `listening protocol=nats addr=...`" if self.nats else "")
                               + (" and `listening protocol=amqp addr=...`" if self.amqp else "")
                               + (" and `listening protocol=stomp addr=...`" if self.stomp else "")
                               + f" within {timeout}s; exit={self.proc.returncode}; output:\n"
                               + self.tail(60))
        return self

    def _read(self) -> None:
        assert self.proc and self.proc.stdout
        for raw in self.proc.stdout:  # never lets the pipe fill
            line = raw.decode("utf-8", "replace").rstrip("\n")
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            self.lines.append(line)
            if self.port is None:
                m = LISTENING.search(line)
                if m:
                    self.host = m.group(1).strip("[]")
                    self.port = int(m.group(2))
            if self.nats and self.nats_port is None:
                m = LISTENING_NATS.search(line)
                if m:
                    self.nats_port = int(m.group(2))
            if self.amqp and self.amqp_port is None:
                m = LISTENING_AMQP.search(line)
                if m:
                    self.amqp_port = int(m.group(2))
            if self.stomp and self.stomp_port is None:
                m = LISTENING_STOMP.search(line)
                if m:
                    self.stomp_port = int(m.group(2))
            if self.kafka_rest and self.kafka_rest_port is None:
                m = LISTENING_KAFKA_REST.search(line)
                if m:
                    self.kafka_rest_port = int(m.group(2))
            if self._all_ports():
                self._ready.set()
        self._ready.set()  # EOF: the process is gone; start() reports it

    def listening(self, protocol: str, timeout: float = WAIT) -> int:
        """The port of the listener named ``protocol`` (``mqtts``, ...), from its log line."""
        pattern = re.compile(rf"listening\s+protocol=\"?{re.escape(protocol)}\"?\s+addr=\"?[^\s\"]*:(\d+)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = pattern.search(line)
                if m:
                    return int(m.group(1))
            time.sleep(0.02)
        raise RuntimeError(f"broker did not log `listening protocol={protocol}`:\n" + self.tail(40))

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds.  Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._reader:
            self._reader.join(2)
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties | None

    def prop(self, name, default=None):
        return getattr(self.properties, name, default) if self.properties is not None else default


@dataclass
class ConnResult:
    reason: int
    session_present: bool
    properties: Properties | None

    def prop(self, name, default=None):
        return getattr(self.properties, name, default) if self.properties is not None else default


def publish_props(**kw) -> Properties:
    """``publish_props(UserProperty=[("k","v")], ContentType="x", ...)``"""
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def reason_value(rc) -> int:
    if isinstance(rc, ReasonCode):
        return rc.value
    return int(rc)


class Client:
    """A connected paho client whose events can be awaited with timeouts.

    Incoming messages are collected in ``self.messages`` (a queue.Queue of ``Msg``).
    The network loop runs in paho's thread; automatic reconnection is off so that a
    connection the broker closes stays closed and is observable.
    """

    def __init__(self, broker: Broker | tuple, client_id: str, version: str = "v5", *,
                 clean: bool = True, session_expiry: int | None = None, keepalive: int = 10,
                 will: dict | None = None, connect_props: dict | None = None):
        self.addr = broker.addr if isinstance(broker, Broker) else broker
        self.version = version
        self.v5 = version == "v5"
        self.client_id = client_id
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.connect_props = dict(connect_props or {})
        kwargs = dict(client_id=client_id, protocol=VERSIONS[version], reconnect_on_failure=False)
        if not self.v5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        self.c.max_inflight_messages_set(100)
        self.c.max_queued_messages_set(0)
        if will is not None:
            wp = None
            if self.v5 and will.get("props"):
                wp = Properties(PacketTypes.WILLMESSAGE)
                for k, v in will["props"].items():
                    setattr(wp, k, v)
            self.c.will_set(will["topic"], will.get("payload", b"will"), will.get("qos", 0),
                            will.get("retain", False), properties=wp)
        self.messages: queue.Queue[Msg] = queue.Queue()
        self.connack: ConnResult | None = None
        self._connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reason: int | None = None
        self.disconnect_from_server: bool | None = None
        self._lock = threading.Condition()
        self._subacks: dict[int, list[int]] = {}
        self._unsubacks: dict[int, list[int]] = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe

    # -- callbacks (paho thread) -----------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        self.connack = ConnResult(reason_value(reason), bool(flags.session_present),
                                  properties if self.v5 else None)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self.disconnect_reason = reason_value(reason)
        self.disconnect_from_server = flags.is_disconnect_packet_from_server
        self.disconnected.set()
        self._connected.set()  # wake a connect() that is waiting on a refused CONNECT

    def _on_message(self, client, userdata, m):
        self.messages.put(Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain),
                              getattr(m, "properties", None) if self.v5 else None))

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        with self._lock:
            self._subacks[mid] = [reason_value(r) for r in reasons]
            self._lock.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reasons, properties):
        with self._lock:
            self._unsubacks[mid] = [reason_value(r) for r in reasons] if reasons else []
            self._lock.notify_all()

    # -- operations ------------------------------------------------------------------
    def connect(self, timeout: float = WAIT, expect_success: bool = True) -> ConnResult:
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                props.SessionExpiryInterval = self.session_expiry
            for k, v in self.connect_props.items():
                setattr(props, k, v)
            self.c.connect(*self.addr, keepalive=self.keepalive, clean_start=self.clean,
                           properties=props)
        else:
            self.c.connect(*self.addr, keepalive=self.keepalive)
        self.c.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError(f"{self.client_id}: no CONNACK within {timeout}s")
        if self.connack is None:
            raise AssertionError(f"{self.client_id}: connection closed before CONNACK "
                                 f"(reason {self.disconnect_reason})")
        if expect_success:
            assert self.connack.reason == 0, f"{self.client_id}: CONNACK refused: {self.connack}"
        return self.connack

    def subscribe(self, filters, qos: int = 0, timeout: float = WAIT, props: Properties | None = None,
                  **options) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes (granted QoS).

        ``filters`` is a filter string or a list of (filter, qos); v5 ``options`` are
        SubscribeOptions keywords (noLocal, retainAsPublished, retainHandling).
        """
        if isinstance(filters, str):
            filters = [(filters, qos)]
        if self.v5:
            spec = [(f, SubscribeOptions(qos=q, **options)) for f, q in filters]
        else:
            assert not options, "subscribe options need MQTT 5"
            spec = list(filters)
        rc, mid = self.c.subscribe(spec, properties=props)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe not sent: {rc}"
        with self._lock:
            ok = self._lock.wait_for(lambda: mid in self._subacks, timeout)
            assert ok, f"{self.client_id}: no SUBACK for {filters} within {timeout}s"
            return self._subacks.pop(mid)

    def unsubscribe(self, topics, timeout: float = WAIT) -> list[int]:
        if isinstance(topics, str):
            topics = [topics]
        rc, mid = self.c.unsubscribe(topics)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe not sent: {rc}"
        with self._lock:
            ok = self._lock.wait_for(lambda: mid in self._unsubacks, timeout)
            assert ok, f"{self.client_id}: no UNSUBACK for {topics} within {timeout}s"
            return self._unsubacks.pop(mid)

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False,
                props: Properties | None = None, wait: bool = True, timeout: float = WAIT):
        """Publish; with ``wait`` block until the flow is complete (PUBACK / PUBCOMP)."""
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish to {topic} not queued: {info.rc}"
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"{self.client_id}: publish qos{qos} to {topic} not " \
                                        f"acknowledged within {timeout}s"
        return info

    def get(self, timeout: float = WAIT) -> Msg:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout}s") from None

    def get_n(self, n: int, timeout: float = WAIT) -> list[Msg]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: got {len(out)} of {n} messages within "
                                     f"{timeout}s: {out}") from None
        return out

    def until(self, topic: str, payload: bytes | None = None, timeout: float = WAIT) -> list[Msg]:
        """Collect messages until one on ``topic`` (with ``payload``) arrives; returns those before it."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                m = self.messages.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: sentinel {topic!r} not received within "
                                     f"{timeout}s; got {before}") from None
            if m.topic == topic and (payload is None or m.payload == payload):
                return before
            before.append(m)

    def drain(self, quiet: float = QUIET) -> list[Msg]:
        """Whatever arrives within ``quiet`` seconds (used only after a sentinel)."""
        out = []
        deadline = time.monotonic() + quiet
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout: float = WAIT) -> int:
        assert self.disconnected.wait(timeout), f"{self.client_id}: still connected after {timeout}s"
        return self.disconnect_reason

    def disconnect(self, reason: int | None = None, timeout: float = WAIT) -> None:
        """A normal DISCONNECT (v5: with ``reason``), then wait for the loop to wind down."""
        rc = None
        if reason is not None:
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason)
        self.c.disconnect(reasoncode=rc)
        self.disconnected.wait(timeout)
        self.c.loop_stop()

    def drop(self, timeout: float = WAIT) -> None:
        """Close the TCP connection abruptly, without DISCONNECT."""
        sock = self.c.socket()
        if sock is not None:
            import socket as _s
            try:
                sock.shutdown(_s.SHUT_RDWR)
            except OSError:
                pass
        self.disconnected.wait(timeout)
        self.c.loop_stop()

    def close(self) -> None:
        """Best-effort cleanup for fixtures."""
        try:
            if not self.disconnected.is_set() and self.connack is not None:
                self.c.disconnect()
                self.disconnected.wait(1)
        except Exception:
            pass
        try:
            self.c.loop_stop()
        except Exception:
            pass
