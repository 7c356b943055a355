"""dwbroker's STOMP front driven by stomp.py 8.2.0 (Connection10/11/12) and by raw sockets
(``stomp_helpers.RawStomp``) where stomp.py cannot express a case, plus STOMP <-> AMQP / MQTT /
NATS through the shared router.

The expected outcomes are RabbitMQ's STOMP plugin's (verified against RabbitMQ 3.10.8): run
the STOMP-only tests against any server with
``DWBROKER_STOMP_ADDR=127.0.0.1:26614 pytest tests/interop/test_stomp.py``; the tests marked
``needs_dwbroker_stomp`` (cross-protocol, dwbroker's limits, rules RabbitMQ does not follow)
then skip, and the bad-input tests assert only the common ground (see ``fatal``).  Connections
send ``host:/`` (RabbitMQ's vhost) unless a test says otherwise.  Names are unique per test
(``uid``).  Every wait is bounded; absence is checked behind a sentinel message, never by
sleeping alone.  After a connection error a fresh connection must work (``round_trip``).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from conftest import external_stomp, needs_dwbroker_stomp
from helpers import WAIT
from stomp_helpers import RawStomp, bodies, encode

MIB = 1024 * 1024
# dwbroker's documented default [limits] max_message_size
DWBROKER_MAX_MESSAGE_SIZE = 16 * MIB
# RabbitMQ keeps the socket open ~10 s after an ERROR to a CONNECT (or to a frame before
# CONNECT) before it closes; dwbroker closes right after the ERROR.
CONNECT_ERROR_CLOSE = 12.0 if external_stomp() else WAIT


def dwbroker() -> bool:
    """True when the suite runs against dwbroker (its stricter rules are asserted too)."""
    return external_stomp() is None


def round_trip(addr, version: str = "1.2") -> None:
    """A fresh connection can subscribe, send, receive and disconnect (used after every error)."""
    r = RawStomp(addr)
    try:
        r.connect(version)
        dest = f"/queue/rt-{uuid.uuid4().hex[:10]}"
        r.frame("SUBSCRIBE", {"destination": dest, "id": "rt", "receipt": "rt-sub"})
        assert r.expect("RECEIPT")["receipt-id"] == "rt-sub"
        r.frame("SEND", {"destination": dest}, b"round-trip")
        m = r.expect("MESSAGE")
        assert m.body == b"round-trip", m
        r.frame("DISCONNECT", {"receipt": "rt-bye"})
        assert [f.cmd for f in r.closed()] == ["RECEIPT"]
    finally:
        r.close()


@pytest.fixture
def stomp_raw(stomp_addr):
    """``r = stomp_raw()`` (or ``stomp_raw(version=..., connect=False, **connect_kw)``): RawStomp
    connections closed after the test."""
    made = []

    def make(version: str = "1.2", connect: bool = True, **kw) -> RawStomp:
        r = RawStomp(stomp_addr)
        made.append(r)
        if connect:
            r.connect(version, **kw)
        return r

    yield make
    for r in made:
        r.close()


def hb(frame_headers) -> tuple[int, int]:
    sx, sy = frame_headers["heart-beat"].split(",")
    return int(sx), int(sy)


# ======================================================================================
# 1. connection


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_connect_versions(stomp, uid, version):
    c = stomp(version)
    h = c.listener.connected.headers
    assert h.get("version") == version, h
    assert h.get("server"), h
    assert h.get("session"), h
    if version != "1.0":
        assert "heart-beat" in h, h
    dest = f"/queue/{uid}"
    c.subscribe(dest, id="s1")
    c.send(dest, f"hello {version}")
    assert c.get().body == f"hello {version}"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_connect_and_stomp_commands(stomp, uid, version, command):
    c = stomp(version, connect=False)
    connected = c.connect(with_connect_command=(command == "CONNECT"))
    assert c.listener.sent[0][0] == command
    assert connected.headers["version"] == version
    c.subscribe(f"/queue/{uid}")
    c.send(f"/queue/{uid}", command)
    assert c.get().body == command


@pytest.mark.parametrize("offer,chosen", [("1.0,1.1,1.2", "1.2"), ("1.0,1.1", "1.1"), ("1.2,1.0", "1.2"),
                                          ("1.0", "1.0")])
def test_version_negotiation_raw(stomp_raw, offer, chosen):
    connected = stomp_raw(offer).frames[0]
    assert connected.cmd == "CONNECTED" and connected["version"] == chosen, connected
    assert connected.get("server") and connected.get("session"), connected


def test_connect_without_accept_version_is_1_0(stomp_raw):
    r = stomp_raw(connect=False)
    r.frame("CONNECT", [("login", "guest"), ("passcode", "guest")])
    f = r.expect("CONNECTED")
    assert f["version"] == "1.0", f


def test_login_guest_ok_with_stomp_py_1_2(stomp):
    c = stomp("1.2", connect=False)
    f = c.connect("guest", "guest")
    assert f.headers["version"] == "1.2"


def test_wrong_passcode_error_then_close(stomp_raw, stomp_addr):
    r = stomp_raw(connect=False)
    err = r.connect("1.2", passcode=f"wrong-{uuid.uuid4().hex[:6]}", expect="ERROR")
    assert err.get("message") == "Bad CONNECT", err
    assert r.closed(CONNECT_ERROR_CLOSE) == []
    round_trip(stomp_addr)


def test_wrong_passcode_stomp_py(stomp):
    c = stomp("1.2", connect=False)
    err = c.connect("guest", "not-the-password", expect_success=False)
    assert err.headers.get("message"), err.headers
    c.wait_disconnected(CONNECT_ERROR_CLOSE)


def test_version_mismatch_error_then_close(stomp_raw, stomp_addr):
    r = stomp_raw(connect=False)
    err = r.connect("2.0", expect="ERROR")
    assert err.get("message") == "Version mismatch", err
    versions = err.get("version", "")
    assert {"1.0", "1.1", "1.2"} <= {v.strip() for v in versions.split(",")}, err
    assert r.closed(CONNECT_ERROR_CLOSE) == []
    round_trip(stomp_addr)


def test_frame_before_connect_error_then_close(stomp_raw, stomp_addr, uid):
    r = stomp_raw(connect=False)
    r.frame("SEND", {"destination": f"/queue/{uid}", "receipt": "r1"}, b"too early")
    frames = r.closed(CONNECT_ERROR_CLOSE)
    assert [f.cmd for f in frames] == ["ERROR"], frames
    assert frames[0].get("message"), frames
    round_trip(stomp_addr)


@needs_dwbroker_stomp
def test_any_host_header_accepted(stomp, uid):
    """stomp.py 1.2 sends ``host:<socket host>``; dwbroker maps any host to the default vhost
    (RabbitMQ refuses it with "Bad CONNECT")."""
    c = stomp("1.2", connect=False, vhost=None)
    c.connect()
    cmd, sent = c.listener.sent[0]
    assert (cmd, sent.get("host")) == ("STOMP", "127.0.0.1"), c.listener.sent[0]
    c.subscribe(f"/queue/{uid}")
    c.send(f"/queue/{uid}", "any host")
    assert c.get().body == "any host"


def test_heartbeats_stomp_py(stomp, uid):
    c = stomp("1.2", heartbeats=(1000, 1000))
    sx, sy = hb(c.listener.connected.headers)
    assert sx > 0 and sy > 0, c.listener.connected.headers  # the server beats and wants beats
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:  # idle: the beats are what this test is about
        time.sleep(0.25)
        assert c.is_connected() and not c.listener.heartbeat_timeout
    assert c.listener.heartbeats >= 2, f"only {c.listener.heartbeats} server beats in 3.5 s"
    c.subscribe(f"/queue/{uid}")
    c.send(f"/queue/{uid}", "still up")
    assert c.get().body == "still up"


def test_heartbeats_raw_server_to_client(stomp_raw):
    r = stomp_raw(extra={"heart-beat": "0,500"})
    sx, sy = hb(r.frames[0])
    assert sx > 0, r.frames[0]  # it will beat, every max(sx, 500) ms
    assert sy == 0, r.frames[0]  # the client offered no beats
    frames = r.read_for(2.5)  # idle: the beats are what this test is about
    assert frames == [] and not r.eof, (frames, r.eof)
    assert r.beats >= 2, f"{r.beats} beats in 2.5 s (heart-beat {sx},{sy})"


def test_heartbeats_silent_client_is_closed(stomp_raw):
    """A client that promised beats (heart-beat:500,0) and sends nothing is dropped."""
    r = stomp_raw(extra={"heart-beat": "500,0"})
    sx, sy = hb(r.frames[0])
    assert sy > 0, r.frames[0]
    # the server allows a margin; within a few intervals the connection must be gone
    assert r.closed(max(10.0, 5 * sy / 1000)) == []


def test_heartbeats_off_when_client_offers_none(stomp_raw):
    r = stomp_raw(extra={"heart-beat": "0,0"})
    assert hb(r.frames[0]) == (0, 0), r.frames[0]


# ======================================================================================
# 2. /queue/<name>


def test_queue_holds_messages_until_subscribe(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.send(dest, "kept", receipt=True)
    sid = c.subscribe(dest, id="sub-a")
    m = c.get()
    assert m.body == "kept"
    h = m.headers
    assert h["destination"] == dest, h
    assert h["subscription"] == sid, h
    assert h.get("message-id"), h
    assert h.get("redelivered") == "false", h
    assert h.get("content-length") == "4", h
    assert "ack" not in h, h  # auto mode: nothing to ACK


def test_queue_two_subscribers_share(stomp, uid):
    a, b = stomp(name="a"), stomp(name="b")
    dest = f"/queue/{uid}"
    a.subscribe(dest)
    b.subscribe(dest)
    p = stomp(name="pub")
    sent = [f"m{i}" for i in range(20)]
    for body in sent:
        p.send(dest, body)
    got_a, got_b = [], []
    deadline = time.monotonic() + WAIT
    while len(got_a) + len(got_b) < len(sent):
        assert time.monotonic() < deadline, f"a={got_a} b={got_b}"
        got_a += bodies(a.drain(0.05))
        got_b += bodies(b.drain(0.05))
    # everything has arrived; a grace period shows nobody gets a second copy
    got_a += bodies(a.drain())
    got_b += bodies(b.drain())
    assert sorted(got_a + got_b) == sorted(sent), (got_a, got_b)
    assert got_a and got_b, f"not shared: a={got_a} b={got_b}"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_content_type_and_custom_headers(stomp, uid, version):
    c = stomp(version)
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    tricky = "a:b\nc\\d"  # escaped on the wire as a\cb\nc\\d
    c.send(dest, "{}", "application/json", headers={"x-custom": "v1", "x-tricky": tricky})
    m = c.get()
    assert m.body == "{}"
    assert m.headers.get("content-type") == "application/json", m.headers
    assert m.headers.get("x-custom") == "v1", m.headers
    assert m.headers.get("x-tricky") == tricky, m.headers


def test_header_escaping_raw_1_2(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "id": "s", "receipt": "r"})
    r.expect("RECEIPT")
    # name and value with every escape: k\cey : va\nl\\ue\r
    r.send(f"SEND\ndestination:{dest}\nk\\cey:va\\nl\\\\ue\\r\n\nesc\x00".encode())
    m = r.expect("MESSAGE")
    assert m.body == b"esc"
    assert m.headers.get("k:ey") == "va\nl\\ue\r", m.header_list


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_binary_body_with_nul_bytes(stomp, uid, version):
    c = stomp(version, auto_decode=False)
    dest = f"/queue/{uid}"
    c.subscribe(dest, id="s")
    body = bytes(range(256)) + b"\x00\x00end\x00"
    c.send(dest, body, "application/octet-stream")
    m = c.get()
    assert m.body == body
    assert m.headers.get("content-length") == str(len(body)), m.headers


def test_body_without_content_length_ends_at_nul(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "id": "s", "receipt": "r"})
    r.expect("RECEIPT")
    r.send(f"SEND\ndestination:{dest}\n\nno length".encode() + b"\x00\n\n")
    m = r.expect("MESSAGE")
    assert m.body == b"no length", m


def test_utf8_body_and_header(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    text = "héllo wörld ✓ 日本語 🚀"
    c.send(dest, text, "text/plain;charset=utf-8", headers={"x-utf8": "ünïcödé ✓"})
    m = c.get()
    assert m.body == text
    assert m.headers.get("content-length") == str(len(text.encode())), m.headers
    assert m.headers.get("x-utf8") == "ünïcödé ✓", m.headers


def test_one_mib_body(stomp, uid):
    c = stomp(auto_decode=False)
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    body = (b"0123456789abcdef" * (MIB // 16))[:MIB - 3] + b"\x00\x01\x02"
    c.send(dest, body, receipt=True)
    m = c.get(timeout=15)
    assert len(m.body) == MIB and m.body == body
    assert m.headers.get("content-length") == str(MIB)


def test_crlf_line_endings(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.send(f"SUBSCRIBE\r\ndestination:{dest}\r\nid:s\r\nreceipt:crlf\r\n\r\n\x00\r\n".encode())
    assert r.expect("RECEIPT")["receipt-id"] == "crlf"
    r.send(f"SEND\r\ndestination:{dest}\r\nx-k:v\r\n\r\ncrlf body\x00".encode())
    m = r.expect("MESSAGE")
    assert (m.body, m.get("x-k")) == (b"crlf body", "v"), m


def test_repeated_header_first_wins_and_spaces_kept(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "id": "s", "receipt": "r"})
    r.expect("RECEIPT")
    r.frame("SEND", [("destination", dest), ("x-rep", "first"), ("x-rep", "second"), ("x-sp", " padded ")],
            b"rep")
    m = r.expect("MESSAGE")
    assert m.get("x-rep") == "first", m
    assert m.get("x-sp") == " padded ", m  # 1.2: never trimmed


def test_pipelined_and_split_frames(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "id": "s", "receipt": "r"})
    r.expect("RECEIPT")
    r.send(b"".join(encode("SEND", {"destination": dest}, f"p{i}".encode()) for i in range(5)))
    assert [r.expect("MESSAGE").body for _ in range(5)] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    data = encode("SEND", {"destination": dest, "content-length": "7"}, b"sp\x00lit!")
    for i in range(0, len(data), 3):  # a frame trickling in, three bytes at a time
        r.send(data[i:i + 3])
        time.sleep(0.002)
    assert r.expect("MESSAGE").body == b"sp\x00lit!"


def test_stomp_1_0_subscribe_without_id(stomp_raw, uid):
    """1.0 SUBSCRIBE needs no id; UNSUBSCRIBE by destination."""
    r = stomp_raw("1.0")
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "receipt": "s"}, raw=True)
    assert r.expect("RECEIPT")["receipt-id"] == "s"
    r.frame("SEND", {"destination": dest}, b"ten", raw=True)
    m = r.expect("MESSAGE")
    assert m.body == b"ten" and m["destination"] == dest, m
    r.frame("UNSUBSCRIBE", {"destination": dest, "receipt": "u"}, raw=True)
    assert r.expect("RECEIPT")["receipt-id"] == "u"


def test_unsubscribe_stops_deliveries(stomp, uid):
    c = stomp()
    dest, other = f"/queue/{uid}", f"/queue/{uid}-s"
    sid = c.subscribe(dest)
    c.subscribe(other)
    c.send(dest, "before")
    assert c.get().body == "before"
    c.unsubscribe(sid)
    c.send(dest, "after unsubscribe", receipt=True)
    c.send(other, "sentinel")
    assert bodies(c.until("sentinel")) == []
    # the message stayed in the queue
    c.subscribe(dest)
    assert c.get().body == "after unsubscribe"


# ======================================================================================
# 3. /topic/<key>


def test_topic_every_subscriber_gets_every_message(stomp, uid):
    a, b = stomp(name="a"), stomp(name="b")
    dest = f"/topic/{uid}.news"
    a.subscribe(dest)
    b.subscribe(dest)
    p = stomp(name="pub")
    for i in range(3):
        p.send(dest, f"t{i}")
    for c in (a, b):
        got = c.get_n(3)
        assert bodies(got) == ["t0", "t1", "t2"]
        assert all(m.headers["destination"] == dest for m in got), [m.headers for m in got]


def test_topic_wildcards(stomp, uid):
    star, hashed = stomp(name="star"), stomp(name="hash")
    star.subscribe(f"/topic/{uid}.*.c")
    hashed.subscribe(f"/topic/{uid}.#")
    p = stomp(name="pub")
    for key in ("b.c", "b.d", "x.y.c", "c", "q.c"):
        p.send(f"/topic/{uid}.{key}", key)
    assert bodies(star.until("q.c")) == ["b.c"]
    assert bodies(hashed.until("q.c")) == ["b.c", "b.d", "x.y.c", "c"]


def test_topic_without_subscribers_dropped(stomp, uid):
    c = stomp()
    dest = f"/topic/{uid}.lost"
    c.send(dest, "nobody listens", receipt=True)
    c.subscribe(dest)
    c.send(dest, "sentinel")
    assert bodies(c.until("sentinel")) == []


def test_topic_unsubscribe(stomp, uid):
    c = stomp()
    dest = f"/topic/{uid}.x"
    sid = c.subscribe(dest)
    c.subscribe(f"/topic/{uid}.s")
    c.unsubscribe(sid)
    c.send(dest, "after unsubscribe")
    c.send(f"/topic/{uid}.s", "sentinel")
    assert bodies(c.until("sentinel")) == []


def test_topic_durable_subscription(stomp, uid):
    """RabbitMQ's durable topic subscription: ``durable:true`` + ``auto-delete:false`` keep the
    subscription's queue while its subscriber is away; UNSUBSCRIBE with the same headers ends it."""
    dest = f"/topic/{uid}.durable"
    durable = {"durable": "true", "auto-delete": "false"}
    a = stomp(name="away")
    a.subscribe(dest, id=f"{uid}-d", headers=durable)
    a.disconnect()
    p = stomp(name="pub")
    p.send(dest, "while away", receipt=True)
    b = stomp(name="back")
    b.subscribe(dest, id=f"{uid}-d", headers=durable)
    assert bodies(b.get_n(1)) == ["while away"]
    b.unsubscribe(f"{uid}-d", headers=durable)
    p.send(dest, "after the end", receipt=True)
    b.subscribe(dest, id=f"{uid}-d", headers=durable)
    p.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []
    b.unsubscribe(f"{uid}-d", headers=durable)


# ======================================================================================
# 4. /exchange/..., /amq/queue/...


def test_exchange_fanout(stomp, uid):
    a, b = stomp(name="a"), stomp(name="b")
    a.subscribe("/exchange/amq.fanout")
    b.subscribe("/exchange/amq.fanout/ignored-key")
    p = stomp(name="pub")
    p.send(f"/exchange/amq.fanout/{uid}", f"fan {uid}")
    for c in (a, b):
        c.until(f"fan {uid}")  # amq.fanout is shared: skip what other runs may have sent


def test_exchange_direct_key(stomp, uid):
    a, b = stomp(name="a"), stomp(name="b")
    a.subscribe(f"/exchange/amq.direct/{uid}-a")
    b.subscribe(f"/exchange/amq.direct/{uid}-b")
    p = stomp(name="pub")
    p.send(f"/exchange/amq.direct/{uid}-a", "for a")
    p.send(f"/exchange/amq.direct/{uid}-b", "for b")
    p.send(f"/exchange/amq.direct/{uid}-a", "end a")
    p.send(f"/exchange/amq.direct/{uid}-b", "end b")
    assert bodies(a.until("end a")) == ["for a"]
    assert bodies(b.until("end b")) == ["for b"]


def test_exchange_topic_pattern(stomp, uid):
    c = stomp()
    c.subscribe(f"/exchange/amq.topic/{uid}.*")
    p = stomp(name="pub")
    p.send(f"/topic/{uid}.one", "via topic")
    p.send(f"/exchange/amq.topic/{uid}.two", "via exchange")
    p.send(f"/exchange/amq.topic/{uid}.x.y", "too deep")
    p.send(f"/exchange/amq.topic/{uid}.end", "end")
    assert bodies(c.until("end")) == ["via topic", "via exchange"]


def test_amq_queue_existing(stomp, uid):
    c = stomp()
    name = f"{uid}-existing"
    c.send(f"/queue/{name}", "declared by /queue", receipt=True)  # declares the queue
    c.subscribe(f"/amq/queue/{name}")
    m = c.get()
    assert m.body == "declared by /queue"
    c.send(f"/amq/queue/{name}", "sent via /amq/queue")
    assert c.get().body == "sent via /amq/queue"


def test_amq_queue_missing_subscribe_error(stomp_raw, stomp_addr, uid):
    fatal(stomp_raw(), [("SUBSCRIBE", {"destination": f"/amq/queue/{uid}-missing", "id": "s1",
                                       "receipt": "bad"})], receipt="bad")
    round_trip(stomp_addr)


# ======================================================================================
# 5. /temp-queue in reply-to


def test_temp_queue_reply_to(stomp, uid):
    requester, responder = stomp(name="req"), stomp(name="resp")
    service = f"/queue/{uid}-svc"
    responder.subscribe(service)
    requester.send(service, "ping", receipt=True, headers={"reply-to": f"/temp-queue/{uid}",
                                                           "correlation-id": "c-1"})
    req = responder.get()
    assert req.body == "ping"
    reply_to = req.headers.get("reply-to")
    assert reply_to and reply_to != f"/temp-queue/{uid}", req.headers  # rewritten to a real queue
    if not dwbroker():
        assert reply_to.startswith("/reply-queue/"), reply_to  # RabbitMQ's form
    responder.send(reply_to, "pong", headers={"correlation-id": req.headers.get("correlation-id")})
    rep = requester.get()
    assert rep.body == "pong"
    assert rep.headers.get("subscription") == f"/temp-queue/{uid}", rep.headers
    assert rep.headers.get("correlation-id") == "c-1", rep.headers


def test_temp_queue_reused_for_several_requests(stomp, uid):
    requester, responder = stomp(name="req"), stomp(name="resp")
    service = f"/queue/{uid}-svc"
    responder.subscribe(service)
    for i in range(2):
        requester.send(service, f"ping{i}", headers={"reply-to": f"/temp-queue/{uid}"})
    r1, r2 = responder.get_n(2)
    assert r1.headers["reply-to"] == r2.headers["reply-to"], (r1.headers, r2.headers)
    responder.send(r2.headers["reply-to"], "pong1")
    responder.send(r1.headers["reply-to"], "pong0")
    assert bodies(requester.get_n(2)) == ["pong1", "pong0"]


# ======================================================================================
# 6. ack modes, prefetch


def test_auto_ack_not_redelivered(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="auto")
    a.send(dest, "auto")
    assert a.get().body == "auto"
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_client_ack_is_cumulative(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client")
    for i in range(1, 5):
        a.send(dest, f"m{i}")
    msgs = a.get_n(4)
    assert bodies(msgs) == ["m1", "m2", "m3", "m4"]
    for m in msgs:
        assert m.headers.get("ack"), m.headers  # 1.2, client mode
    a.ack(msgs[2], receipt=True)  # acks m1..m3
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    m4 = b.get()
    assert (m4.body, m4.headers.get("redelivered")) == ("m4", "true"), m4.headers
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_client_individual_ack(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client-individual")
    for i in range(1, 4):
        a.send(dest, f"m{i}")
    msgs = a.get_n(3)
    a.ack(msgs[1], receipt=True)  # m2 only
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    again = b.get_n(2)
    assert sorted(bodies(again)) == ["m1", "m3"]
    assert all(m.headers.get("redelivered") == "true" for m in again), [m.headers for m in again]
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_ack_per_version(stomp, uid, version):
    """ACK by message-id (1.0), message-id + subscription (1.1), the MESSAGE's ack header (1.2)."""
    dest = f"/queue/{uid}"
    a = stomp(version, name="a")
    a.subscribe(dest, id="s1", ack="client")
    a.send(dest, "m1")
    a.send(dest, "m2")
    m1, m2 = a.get_n(2)
    assert (m1.body, m2.body) == ("m1", "m2")
    a.ack(m1, receipt=True)
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    again = b.get()
    assert (again.body, again.headers.get("redelivered")) == ("m2", "true"), again.headers
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_prefetch_count_one_waits_for_ack(stomp, uid):
    c = stomp()
    dest, side = f"/queue/{uid}", f"/queue/{uid}-side"
    c.subscribe(dest, ack="client-individual", headers={"prefetch-count": "1"})
    c.subscribe(side)
    c.send(dest, "m1")
    c.send(dest, "m2", receipt=True)
    m1 = c.get()
    assert m1.body == "m1"
    c.send(side, "sentinel")
    assert bodies(c.until("sentinel")) == [], "m2 delivered while m1 was unacknowledged (prefetch-count 1)"
    c.ack(m1)
    assert c.get().body == "m2"


def test_prefetch_count_two(stomp, uid):
    """prefetch-count:2 lets two messages be unacknowledged; each ACK releases the next."""
    c = stomp()
    dest, side = f"/queue/{uid}", f"/queue/{uid}-side"
    c.subscribe(dest, ack="client-individual", headers={"prefetch-count": "2"})
    c.subscribe(side)
    for i in range(1, 5):
        c.send(dest, f"m{i}")
    first = c.get_n(2)
    assert bodies(first) == ["m1", "m2"]
    c.send(side, "sentinel-1")
    assert bodies(c.until("sentinel-1")) == [], "more than prefetch-count messages in flight"
    c.ack(first[0])
    m3 = c.get()
    assert m3.body == "m3"
    c.send(side, "sentinel-2")
    assert bodies(c.until("sentinel-2")) == []
    c.ack(first[1])
    c.ack(m3)
    assert c.get().body == "m4"


def test_nack_redelivers(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest, ack="client-individual")
    c.send(dest, "nacked")
    m = c.get()
    assert m.headers.get("redelivered") == "false"
    c.nack(m)
    again = c.get()
    assert again.body == "nacked"
    assert again.headers.get("redelivered") == "true", again.headers
    c.ack(again, receipt=True)


def test_nack_requeue_false_discards(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest, ack="client-individual")
    c.send(dest, "dropped")
    m = c.get()
    c.nack(m, requeue="false")
    c.send(dest, "sentinel")
    s = c.until("sentinel")
    assert bodies(s) == []


def test_nack_1_1(stomp, uid):
    c = stomp("1.1")
    dest = f"/queue/{uid}"
    c.subscribe(dest, ack="client-individual")
    c.send(dest, "nacked")
    c.nack(c.get())
    again = c.get()
    assert (again.body, again.headers.get("redelivered")) == ("nacked", "true"), again.headers


def test_unacked_redelivered_after_connection_loss(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client-individual")
    a.send(dest, "unacked")
    assert a.get().body == "unacked"
    b = stomp(name="b")
    b.subscribe(dest, ack="client-individual")
    a.drop()
    m = b.get()
    assert m.body == "unacked"
    assert m.headers.get("redelivered") == "true", m.headers
    b.ack(m, receipt=True)


def test_redelivered_message_stays_unacked_until_acked(stomp, uid):
    """A message redelivered to b and lost again with b goes to the next subscriber."""
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client-individual")
    a.send(dest, "x")
    a.get()
    a.drop()
    b = stomp(name="b")
    b.subscribe(dest, ack="client-individual")
    m = b.get()
    assert m.headers.get("redelivered") == "true"
    b.drop()
    c = stomp(name="c")
    c.subscribe(dest)
    assert c.get().body == "x"


# ======================================================================================
# 7. receipts


def test_receipts_for_send_subscribe_unsubscribe(stomp_raw, uid):
    r = stomp_raw()
    dest = f"/queue/{uid}"
    r.frame("SUBSCRIBE", {"destination": dest, "id": "s1", "receipt": "sub-1"})
    assert r.expect("RECEIPT")["receipt-id"] == "sub-1"
    r.frame("SEND", {"destination": dest, "receipt": "send-1"}, b"payload")
    got = [r.read(), r.read()]
    cmds = sorted(f.cmd for f in got)
    assert cmds == ["MESSAGE", "RECEIPT"], got
    rec = next(f for f in got if f.cmd == "RECEIPT")
    assert rec["receipt-id"] == "send-1"
    r.frame("UNSUBSCRIBE", {"id": "s1", "receipt": "unsub-1"})
    assert r.expect("RECEIPT")["receipt-id"] == "unsub-1"


def test_receipt_ids_with_escapes(stomp_raw, uid):
    r = stomp_raw()
    r.frame("SUBSCRIBE", {"destination": f"/queue/{uid}", "id": "s1", "receipt": "a:b\\c"})
    assert r.expect("RECEIPT")["receipt-id"] == "a:b\\c"


def test_disconnect_receipt_before_close(stomp_raw, uid):
    r = stomp_raw()
    r.frame("SEND", {"destination": f"/queue/{uid}"}, b"x")
    r.frame("DISCONNECT", {"receipt": "bye-1"})
    frames = r.closed()
    assert [(f.cmd, f.get("receipt-id")) for f in frames] == [("RECEIPT", "bye-1")], frames


def test_disconnect_without_receipt_closes(stomp_raw):
    r = stomp_raw()
    r.frame("DISCONNECT", {})
    assert r.closed() == []


# ======================================================================================
# 8. transactions


def test_tx_send_delivered_at_commit(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    c.begin("tx1", receipt=True)
    c.send(dest, "in tx 1", transaction="tx1")
    c.send(dest, "in tx 2", transaction="tx1")
    c.send(dest, "sentinel")  # outside the transaction, after the SENDs on the same connection
    assert bodies(c.until("sentinel")) == []
    c.commit("tx1")
    assert bodies(c.get_n(2)) == ["in tx 1", "in tx 2"]


def test_tx_abort_discards(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    c.begin("tx1")
    c.send(dest, "aborted", transaction="tx1")
    c.abort("tx1")
    c.send(dest, "sentinel")
    assert bodies(c.until("sentinel")) == []


def test_tx_ack_commit(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client-individual")
    a.send(dest, "acked in tx")
    m = a.get()
    a.begin("tx1")
    a.ack(m, transaction="tx1")
    a.commit("tx1")
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_tx_ack_abort_leaves_message_unacked(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.subscribe(dest, ack="client-individual")
    a.send(dest, "ack aborted")
    m = a.get()
    a.begin("tx1")
    a.ack(m, transaction="tx1")
    a.abort("tx1")
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    again = b.get()
    assert (again.body, again.headers.get("redelivered")) == ("ack aborted", "true"), again.headers


def test_tx_open_at_disconnect_is_aborted(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.begin("tx1")
    a.send(dest, "never committed", transaction="tx1")
    a.subscribe(f"/queue/{uid}-barrier")  # its RECEIPT: the SEND before it has been read
    a.disconnect()
    b = stomp(name="b")
    b.subscribe(dest)
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_tx_open_at_connection_loss_is_aborted(stomp, uid):
    dest = f"/queue/{uid}"
    a = stomp(name="a")
    a.begin("tx1")
    a.send(dest, "never committed", transaction="tx1")
    a.subscribe(f"/queue/{uid}-barrier")  # its RECEIPT: the SEND before it has been read
    a.drop()
    b = stomp(name="b")
    b.subscribe(dest)
    b.send(dest, "sentinel")
    assert bodies(b.until("sentinel")) == []


def test_two_transactions_independent(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    c.begin("t1")
    c.begin("t2")
    c.send(dest, "t1 msg", transaction="t1")
    c.send(dest, "t2 msg", transaction="t2")
    c.abort("t1")
    c.commit("t2")
    c.send(dest, "sentinel")
    assert bodies(c.until("sentinel")) == ["t2 msg"]


# ======================================================================================
# 9. headers carried to a STOMP subscriber


def test_message_headers_carried(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    c.subscribe(f"/queue/{uid}-replies")  # the reply queue exists (see the reply-to tests)
    c.send(dest, "with headers", "text/plain", headers={
        "persistent": "true", "reply-to": f"/queue/{uid}-replies", "correlation-id": "corr-1",
        "priority": "5", "x-app": "demo"})
    h = c.get().headers
    expect = {"content-type": "text/plain", "persistent": "true", "reply-to": f"/queue/{uid}-replies",
              "correlation-id": "corr-1", "priority": "5", "x-app": "demo", "destination": dest}
    assert {k: h.get(k) for k in expect} == expect, h


@pytest.mark.parametrize("reply_to", ["/queue/{uid}-r", "/topic/{uid}.r", "/exchange/amq.direct/{uid}-r",
                                      "/amq/queue/{uid}-r"])
def test_reply_to_destination_carried_verbatim(stomp, uid, reply_to):
    """A reply-to naming a destination (not /temp-queue) reaches the subscriber unchanged, also
    when nothing exists under that name yet (the requester may subscribe after sending)."""
    reply_to = reply_to.format(uid=uid)
    c = stomp()
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    c.send(dest, "request", headers={"reply-to": reply_to})
    m = c.get()
    assert m.headers.get("reply-to") == reply_to, m.headers


@pytest.mark.parametrize("reply_to", ["/queue/{uid}-r", "/topic/{uid}.r", "/exchange/amq.direct/{uid}-r"])
def test_request_reply_via_reply_to(stomp, uid, reply_to):
    """The usual pattern: the requester listens on its reply destination first, the responder
    SENDs to the reply-to it sees, unchanged."""
    reply_to = reply_to.format(uid=uid)
    requester, responder = stomp(name="req"), stomp(name="resp")
    requester.subscribe(reply_to)
    responder.subscribe(f"/queue/{uid}-svc")
    requester.send(f"/queue/{uid}-svc", "ping", headers={"reply-to": reply_to, "correlation-id": "c-2"})
    req = responder.get()
    assert req.headers.get("reply-to") == reply_to, req.headers
    responder.send(req.headers["reply-to"], "pong", headers={"correlation-id": "c-2"})
    rep = requester.get()
    assert (rep.body, rep.headers.get("correlation-id")) == ("pong", "c-2"), rep.headers


def test_persistent_send_receipt(stomp, uid):
    c = stomp()
    dest = f"/queue/{uid}"
    c.send(dest, "durable", headers={"persistent": "true"}, receipt=True)
    c.subscribe(dest)
    assert c.get().body == "durable"


@needs_dwbroker_stomp
def test_expired_message_not_delivered(stomp, uid):
    """``expires`` (epoch ms, ActiveMQ's header; RabbitMQ ignores it) in the past: dropped."""
    c = stomp()
    dest = f"/queue/{uid}"
    past = int(time.time() * 1000) - 60_000
    future = int(time.time() * 1000) + 600_000
    c.send(dest, "expired", headers={"expires": str(past)}, receipt=True)
    c.send(dest, "fresh", headers={"expires": str(future)}, receipt=True)
    c.subscribe(dest)
    c.send(dest, "sentinel")
    assert bodies(c.until("sentinel")) == ["fresh"]


# ======================================================================================
# 10. bad input: ERROR (message, receipt-id) then close; a fresh client still works


def fatal(r: RawStomp, frames, *, receipt: str | None = None, text: str | None = None,
          common: str = "error", data: bytes | None = None):
    """Send ``frames`` ([(cmd, headers[, body])]) or ``data`` and check the broker's reaction.

    Common ground (every server, RabbitMQ included): ``common="error"``: an ERROR frame with a
    ``message`` header (containing ``text``) comes back; ``common="close"``: the connection
    closes (RabbitMQ closes on a parse error without an ERROR).  Against dwbroker (the spec's
    rule): exactly one ERROR with ``message`` (``text``), ``receipt-id`` when the bad frame had
    a ``receipt``, nothing else, then the close."""
    if data is None:
        data = b"".join(encode(*f) for f in frames)
    r.send(data)
    if dwbroker():
        err = r.error_and_close()
        if text:
            assert text in err["message"], err
        if receipt:
            assert err.get("receipt-id") == receipt, f"ERROR without receipt-id {receipt}: {err!r}"
        return err
    got, closed = r.until_error_or_close()
    errors = [f for f in got if f.cmd == "ERROR"]
    for e in errors:
        assert e.get("message"), e
    if common == "error":
        assert errors, f"no ERROR (closed={closed}, frames={got})"
        if text:
            assert text in errors[0]["message"], errors[0]
        return errors[0]
    assert closed or errors, got
    if not closed:
        r.closed()
    return errors[0] if errors else None


def test_bad_unknown_command(stomp_raw, stomp_addr):
    fatal(stomp_raw(), [("FOO", {"receipt": "bad-1"})], receipt="bad-1")
    round_trip(stomp_addr)


def test_bad_header_without_colon(stomp_raw, stomp_addr, uid):
    fatal(stomp_raw(), None, common="close", receipt="bad-2",
          data=f"SEND\ndestination:/queue/{uid}\nreceipt:bad-2\nno-colon-here\n\nx\x00".encode())
    round_trip(stomp_addr)


def test_bad_undefined_escape(stomp_raw, stomp_addr, uid):
    fatal(stomp_raw(), None, common="close", receipt="bad-3",
          data=f"SEND\ndestination:/queue/{uid}\nreceipt:bad-3\nk:a\\tb\n\nx\x00".encode())
    round_trip(stomp_addr)


def test_bad_send_without_destination(stomp_raw, stomp_addr):
    fatal(stomp_raw(), [("SEND", {"receipt": "bad-4"}, b"x")], receipt="bad-4",
          text="Missing destination")
    round_trip(stomp_addr)


def test_bad_send_with_message_id(stomp_raw, stomp_addr, uid):
    """The broker names messages: a client's message-id on SEND is "Invalid header" (RabbitMQ)."""
    fatal(stomp_raw(), [("SEND", {"destination": f"/queue/{uid}", "message-id": "dup",
                                  "receipt": "bad-mid"}, b"x")],
          receipt="bad-mid", text="Invalid header")
    round_trip(stomp_addr)


@needs_dwbroker_stomp
def test_bad_subscribe_without_id_1_2(stomp_raw, stomp_addr, uid):
    """STOMP 1.2 requires ``id`` on SUBSCRIBE (RabbitMQ accepts it and makes one up)."""
    fatal(stomp_raw(), [("SUBSCRIBE", {"destination": f"/queue/{uid}", "receipt": "bad-5"})],
          receipt="bad-5")
    round_trip(stomp_addr)


@pytest.mark.parametrize("cmd", ["SEND", "SUBSCRIBE"])
def test_bad_unknown_destination(stomp_raw, stomp_addr, uid, cmd):
    h = {"destination": f"/nowhere/{uid}", "receipt": "bad-6"}
    if cmd == "SUBSCRIBE":
        h["id"] = "s1"
    fatal(stomp_raw(), [(cmd, h, b"x" if cmd == "SEND" else b"")], receipt="bad-6",
          text="Unknown destination")
    round_trip(stomp_addr)


def test_bad_duplicate_subscription_id(stomp_raw, stomp_addr, uid):
    r = stomp_raw()
    r.frame("SUBSCRIBE", {"destination": f"/queue/{uid}", "id": "s1", "receipt": "ok"})
    assert r.expect("RECEIPT")["receipt-id"] == "ok"
    fatal(r, [("SUBSCRIBE", {"destination": f"/queue/{uid}-2", "id": "s1", "receipt": "bad-7"})],
          receipt="bad-7", text="Duplicated subscription identifier")
    round_trip(stomp_addr)


def test_bad_ack_unknown_id(stomp_raw, stomp_addr):
    fatal(stomp_raw(), [("ACK", {"id": "no-such-ack-id", "receipt": "bad-8"})], receipt="bad-8")
    round_trip(stomp_addr)


def test_bad_commit_unknown_transaction(stomp_raw, stomp_addr):
    fatal(stomp_raw(), [("COMMIT", {"transaction": "no-such-tx", "receipt": "bad-9"})], receipt="bad-9")
    round_trip(stomp_addr)


def test_bad_unsubscribe_unknown_id(stomp_raw, stomp_addr):
    fatal(stomp_raw(), [("UNSUBSCRIBE", {"id": "no-such-sub", "receipt": "bad-10"})], receipt="bad-10")
    round_trip(stomp_addr)


@needs_dwbroker_stomp
def test_bad_body_over_max_message_size(stomp_raw, stomp_addr, uid):
    """content-length above dwbroker's max_message_size (16 MiB): refused as announced, before
    the body is read."""
    r = stomp_raw()
    n = DWBROKER_MAX_MESSAGE_SIZE + 1
    head = (f"SEND\ndestination:/queue/{uid}\ncontent-length:{n}\nreceipt:bad-11\n\n").encode()
    fatal(r, None, receipt="bad-11", data=head + b"\x00" * 1024)
    round_trip(stomp_addr)


@needs_dwbroker_stomp
def test_four_mib_body(stomp, uid):
    """Above RabbitMQ's default 4 MiB frame limit, well below dwbroker's 16 MiB."""
    c = stomp(auto_decode=False)
    dest = f"/queue/{uid}"
    c.subscribe(dest)
    body = b"z" * (4 * MIB + 1)
    c.send(dest, body, receipt=True)
    assert c.get(timeout=20).body == body


def test_error_does_not_affect_other_connections(stomp, stomp_raw, uid):
    good = stomp(name="good")
    dest = f"/queue/{uid}"
    good.subscribe(dest)
    fatal(stomp_raw(), [("SEND", {"receipt": "bad-12"}, b"x")], receipt="bad-12")
    good.send(dest, "still fine")
    assert good.get().body == "still fine"


# ======================================================================================
# 11. cross-protocol (dwbroker only)


def _nats_run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@needs_dwbroker_stomp
def test_amqp_to_stomp_queue(broker, stomp, amqp, uid):
    import pika

    name = f"{uid}-q"
    c = stomp()
    c.subscribe(f"/queue/{name}")
    ch = amqp(broker.amqp_url).channel()
    ch.basic_publish("", name, b"from amqp", pika.BasicProperties(
        content_type="text/plain", correlation_id="c-7", headers={"k": "v"}))
    m = c.get()
    assert m.body == "from amqp"
    assert m.headers.get("content-type") == "text/plain", m.headers
    assert m.headers.get("correlation-id") == "c-7", m.headers
    assert m.headers.get("k") == "v", m.headers
    assert m.headers.get("destination") == f"/queue/{name}", m.headers


@needs_dwbroker_stomp
def test_stomp_to_amqp_queue(broker, stomp, amqp, uid):
    from amqp_helpers import get_one

    name = f"{uid}-q"
    c = stomp()
    c.send(f"/queue/{name}", "from stomp", "application/json", receipt=True,
           headers={"correlation-id": "c-8", "x-k": "v"})
    ch = amqp(broker.amqp_url).channel()
    _, p, b = get_one(ch, name)
    assert b == b"from stomp"
    assert p.content_type == "application/json"
    assert p.correlation_id == "c-8"
    assert p.headers and p.headers.get("x-k") == "v", p.headers


@needs_dwbroker_stomp
@pytest.mark.parametrize("reply_kind", ["queue", "temp-queue"])
def test_stomp_request_amqp_reply(broker, stomp, amqp, uid, reply_kind):
    """A STOMP requester's reply-to (a /queue/ or a /temp-queue/) reaches it when an AMQP
    responder publishes to the default exchange with the request's reply_to as routing key."""
    from amqp_helpers import get_one

    requests = f"{uid}-requests"
    c = stomp()
    if reply_kind == "queue":
        reply_to = f"/queue/{uid}-replies"
        c.subscribe(reply_to, id="replies")
    else:
        reply_to = f"/temp-queue/{uid}"
    c.send(f"/queue/{requests}", "ping", receipt=True, headers={"reply-to": reply_to})
    ch = amqp(broker.amqp_url).channel()
    _, p, b = get_one(ch, requests)
    assert b == b"ping" and p.reply_to, p
    ch.basic_publish("", p.reply_to, b"pong")
    m = c.get()
    assert m.body == "pong", m
    expected = "replies" if reply_kind == "queue" else reply_to
    assert m.headers["subscription"] == expected, m.headers


@needs_dwbroker_stomp
def test_amqp_declared_queue_via_amq_queue(broker, stomp, amqp, uid):
    name = f"{uid}-declared"
    ch = amqp(broker.amqp_url).channel()
    ch.queue_declare(name, auto_delete=False)
    c = stomp()
    c.subscribe(f"/amq/queue/{name}")
    ch.basic_publish("", name, b"declared by amqp")
    assert c.get().body == "declared by amqp"
    ch.queue_delete(name)


@needs_dwbroker_stomp
def test_stomp_topic_to_amqp_mqtt_nats(broker, stomp, amqp, clients, uid):
    import nats

    from amqp_helpers import get_one

    ch = amqp(broker.amqp_url).channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", f"{uid}.*")
    m = clients(broker, f"{uid}-mqtt")
    m.subscribe(f"{uid}/b", qos=1)
    c = stomp()

    async def go():
        nc = await asyncio.wait_for(nats.connect(broker.nats_url, allow_reconnect=False), WAIT)
        try:
            sub = await nc.subscribe(f"{uid}.b")
            await nc.flush(timeout=WAIT)
            c.send(f"/topic/{uid}.b", "to all", "text/plain", receipt=True)
            n = await sub.next_msg(timeout=WAIT)
            assert (n.subject, n.data) == (f"{uid}.b", b"to all")
        finally:
            await nc.close()

    _nats_run(go())
    method, p, b = get_one(ch, q)
    assert (b, method.exchange, method.routing_key) == (b"to all", "amq.topic", f"{uid}.b")
    assert p.content_type == "text/plain"
    got = m.get()
    assert (got.topic, got.payload) == (f"{uid}/b", b"to all")


@needs_dwbroker_stomp
def test_mqtt_and_nats_to_stomp_topic(broker, stomp, clients, uid):
    import nats

    c = stomp()
    c.subscribe(f"/topic/{uid}.y")
    m = clients(broker, f"{uid}-mqtt")
    m.publish(f"{uid}/y", b"from mqtt", qos=1)
    got = c.get()
    assert got.body == "from mqtt"
    assert got.headers.get("destination") == f"/topic/{uid}.y", got.headers

    async def go():
        nc = await asyncio.wait_for(nats.connect(broker.nats_url, allow_reconnect=False), WAIT)
        try:
            await nc.publish(f"{uid}.y", b"from nats")
            await nc.flush(timeout=WAIT)
        finally:
            await nc.close()

    _nats_run(go())
    assert c.get().body == "from nats"


@needs_dwbroker_stomp
def test_amqp_topic_to_stomp_wildcard(broker, stomp, amqp, uid):
    c = stomp()
    c.subscribe(f"/topic/{uid}.#")
    ch = amqp(broker.amqp_url).channel()
    ch.basic_publish("amq.topic", f"{uid}.a.b", b"deep")
    ch.basic_publish("amq.topic", f"{uid}x.a", b"other")
    ch.basic_publish("amq.topic", f"{uid}.end", b"end")
    assert bodies(c.until("end")) == ["deep"]
