"""TLS with off-the-shelf Python clients against the real binary: paho-mqtt on --mqtts,
pika on --amqps, stomp.py on --stomps, nats-py upgrading after INFO (--nats-tls) and
with the handshake first, a client certificate required and missing. The test CA and
certificates are made with the openssl command line."""

from __future__ import annotations

import asyncio
import queue
import ssl
import subprocess
import uuid

import paho.mqtt.client as mqtt
import pika
import pytest
import stomp

import nats
from conftest import start_broker, stop_broker
from helpers import WAIT, bounded_async, publish_until_received


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.pem; server.pem/server.key for localhost and 127.0.0.1; client.pem/client.key."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=interop CA", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, subj, ext in (("server", "/CN=localhost", ["-extfile", "san.ext"]),
                            ("client", "/CN=interop-client", [])):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext, cwd=d)
    return d


def _tls_args(pki, *more: str) -> list[str]:
    return ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"), *more]


@pytest.fixture(scope="module")
def tls_broker(pki):
    b = start_broker(extra_args=_tls_args(pki, "--mqtts", "127.0.0.1:0", "--amqps", "127.0.0.1:0",
                                          "--stomps", "127.0.0.1:0", "--nats-tls"))
    yield b
    stop_broker(b)


def _context(pki, client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def test_paho_mqtt_over_tls_reaches_a_plain_subscriber(tls_broker, pki):
    topic = f"tls/{uuid.uuid4().hex[:8]}"
    got: queue.Queue = queue.Queue()
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    plain.on_message = lambda c, u, m: got.put(m.payload)
    plain.connect(*tls_broker.addr)
    plain.loop_start()
    secure = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        plain.subscribe(topic, qos=1)[1]
        secure.tls_set(ca_certs=str(pki / "ca.pem"))
        secure.connect("localhost", tls_broker.listening("mqtts"))
        secure.loop_start()
        publish_until_received(secure, topic, b"over mqtts", got)
    finally:
        secure.loop_stop()
        plain.loop_stop()
        secure.disconnect()
        plain.disconnect()


def test_pika_over_amqps(tls_broker, pki):
    params = pika.ConnectionParameters(
        host="localhost", port=tls_broker.listening("amqps"),
        ssl_options=pika.SSLOptions(_context(pki), "localhost"),
        blocked_connection_timeout=WAIT, socket_timeout=WAIT)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", q, b"over amqps")
        method, _, body = ch.basic_get(q, auto_ack=True)
        assert method is not None and body == b"over amqps"
    finally:
        conn.close()


def test_stomp_py_over_stomps(tls_broker, pki):
    dest = f"/queue/tls-{uuid.uuid4().hex[:8]}"
    conn = stomp.Connection([("localhost", tls_broker.listening("stomps"))])
    conn.set_ssl(for_hosts=[("localhost", tls_broker.listening("stomps"))],
                 ca_certs=str(pki / "ca.pem"))
    got: queue.Queue = queue.Queue()

    class Bodies(stomp.ConnectionListener):
        def on_message(self, frame):
            got.put(frame.body)

    conn.set_listener("t", Bodies())
    conn.connect(wait=True)
    try:
        conn.subscribe(dest, id="1", ack="auto")
        conn.send(dest, "over stomps")
        assert got.get(timeout=WAIT) == "over stomps"
    finally:
        conn.disconnect()


@bounded_async(30)
async def test_nats_py_upgrades_after_info_and_plain_is_refused(tls_broker, pki):
    port = tls_broker.nats_port
    secure = await nats.connect(f"tls://localhost:{port}", tls=_context(pki),
                                allow_reconnect=False, connect_timeout=WAIT)
    try:
        sub = await secure.subscribe("tls.nats")
        await secure.publish("tls.nats", b"over tls")
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.data == b"over tls"
    finally:
        await secure.close()
    with pytest.raises(Exception):
        # Without TLS: nats-py sees tls_required in INFO and gives up (or the broker
        # answers -ERR 'Secure Connection - TLS Required').
        plain = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False,
                                   connect_timeout=2, max_reconnect_attempts=0)
        await plain.close()


@bounded_async(30)
async def test_nats_py_tls_handshake_first(pki):
    b = start_broker(extra_args=_tls_args(pki, "--nats-tls", "first"))
    try:
        nc = await nats.connect(f"tls://localhost:{b.nats_port}", tls=_context(pki),
                                tls_handshake_first=True, allow_reconnect=False,
                                connect_timeout=WAIT)
        try:
            sub = await nc.subscribe("first")
            await nc.publish("first", b"handshake first")
            assert (await sub.next_msg(timeout=WAIT)).data == b"handshake first"
        finally:
            await nc.close()
    finally:
        stop_broker(b)


def test_a_required_client_certificate(pki):
    b = start_broker(extra_args=_tls_args(pki, "--mqtts", "127.0.0.1:0",
                                          "--tls-client-ca", str(pki / "ca.pem")))
    try:
        port = b.listening("mqtts")
        with_cert = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        with_cert.tls_set_context(_context(pki, client_cert=True))
        assert with_cert.connect("localhost", port) == 0
        with_cert.loop_start()
        with_cert.disconnect()
        with_cert.loop_stop()
        without = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        without.tls_set_context(_context(pki))
        # TLS 1.3: the refusal (an alert) arrives when the client first reads.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            without.connect("localhost", port)
            for _ in range(20):
                rc = without.loop(timeout=0.2)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise ConnectionError(f"loop ended: {rc}")
        assert any("TLS handshake failed" in line for line in b.lines), b.tail(20)
    finally:
        stop_broker(b)


def test_plain_text_on_a_tls_port_is_closed_and_logged(tls_broker):
    import socket
    import time
    with socket.create_connection(("127.0.0.1", tls_broker.listening("mqtts")), timeout=WAIT) as s:
        s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        assert not answer.startswith(b"\x20"), "no CONNACK in plain text"
    deadline = time.monotonic() + WAIT
    while not any("not speaking TLS" in line for line in tls_broker.lines):
        assert time.monotonic() < deadline, tls_broker.tail(20)
        time.sleep(0.05)


def test_a_tls_client_on_a_plain_port_is_answered_and_logged(tls_broker, pki):
    """Python's ssl module on the plain STOMP port: the handshake fails at once (the
    broker answers with a STOMP ERROR frame and closes) and the log says why."""
    import socket
    import time
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    with socket.create_connection(tls_broker.stomp_addr, timeout=WAIT) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            context.wrap_socket(raw, server_hostname="localhost")
    deadline = time.monotonic() + WAIT
    while not any("TLS ClientHello on a plain-text listener" in line for line in tls_broker.lines):
        assert time.monotonic() < deadline, tls_broker.tail(20)
        time.sleep(0.05)
