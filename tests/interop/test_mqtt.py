"""dwbroker's MQTT listener driven by paho-mqtt 2.x (and raw bytes where paho cannot say it).

Most tests run for both MQTT 3.1.1 and 5.0.  Each test uses its own topic prefix and
client ids.  Absence checks ("X is not delivered") publish a sentinel after X, wait for
the sentinel, then allow a short quiet period: they never sleep and hope.
"""

from __future__ import annotations

import time

import pytest

import rawmqtt as raw
from conftest import start_broker, stop_broker
from helpers import WAIT, publish_props

BOTH = pytest.mark.parametrize("version", ["v311", "v5"])
RAWV = {"v311": raw.V311, "v5": raw.V5}
MIB16 = 16 * 1024 * 1024


def assert_alive(broker, clients, uid, tag="alive"):
    """A fresh pair of clients can still do a QoS 1 round trip."""
    sub = clients(broker, f"{uid}-{tag}-s", "v5")
    pub = clients(broker, f"{uid}-{tag}-p", "v311")
    t = f"interop/{uid}/{tag}"
    assert sub.subscribe(t, 1) == [1]
    pub.publish(t, b"still here", 1)
    m = sub.get()
    assert (m.topic, m.payload) == (t, b"still here")


def topics_of(msgs):
    return sorted(m.topic for m in msgs)


# --------------------------------------------------------------------------------------
# connect / disconnect


@BOTH
def test_connect_disconnect(broker, clients, uid, version):
    c = clients(broker, f"{uid}-c", version)
    assert c.connack.reason == 0
    assert c.connack.session_present is False
    c.disconnect()
    assert c.disconnected.is_set()
    assert c.disconnect_from_server is False, "broker sent a DISCONNECT in answer to ours"
    # the same id can connect again at once
    c2 = clients(broker, f"{uid}-c", version)
    assert c2.connack.session_present is False


# --------------------------------------------------------------------------------------
# QoS


@BOTH
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_qos_delivery(broker, clients, uid, topic, version, pub_qos, sub_qos):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    t = f"{topic}/q"
    assert sub.subscribe(t, sub_qos) == [sub_qos]
    payload = bytes(range(256)) + b"\x00end"
    pub.publish(t, payload, pub_qos)
    m = sub.get()
    assert m.topic == t
    assert m.payload == payload
    assert m.qos == min(pub_qos, sub_qos)
    assert m.retain is False
    # exactly once: nothing else arrives before a later sentinel
    pub.publish(t, b"sentinel", pub_qos)
    extra = sub.until(t, b"sentinel") + sub.drain()
    assert extra == [], f"duplicate delivery: {extra}"


@BOTH
def test_qos2_duplicate_publish_delivered_once(broker, clients, uid, topic, version):
    """A QoS 2 PUBLISH resent with DUP before PUBREL is delivered exactly once."""
    sub = clients(broker, f"{uid}-s", version)
    t = f"{topic}/q2"
    assert sub.subscribe(t, 2) == [2]
    c, connack = raw.raw_connect(*broker.addr, RAWV[version], f"{uid}-raw")
    with c:
        assert connack.fields["rc"] == 0
        c.publish(t, b"exactly once", qos=2, pid=5)
        assert c.expect(raw.PUBREC).fields["pid"] == 5
        c.publish(t, b"exactly once", qos=2, pid=5, dup=True)
        assert c.expect(raw.PUBREC).fields["pid"] == 5
        c.ack(raw.PUBREL, 5)
        comp = c.expect(raw.PUBCOMP)
        assert (comp.fields["pid"], comp.fields["rc"]) == (5, 0), f"exchange: {c.log}"
        c.publish(t, b"sentinel", qos=0)
        got = sub.until(t, b"sentinel") + sub.drain()
        assert [m.payload for m in got] == [b"exactly once"]


@BOTH
def test_large_and_empty_payloads(broker, clients, uid, topic, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe(f"{topic}/#", 1) == [1]
    big = bytes(i % 251 for i in range(300_000))
    pub.publish(f"{topic}/big", big, 1)
    pub.publish(f"{topic}/empty", b"", 1)
    m1, m2 = sub.get_n(2)
    assert (m1.topic, len(m1.payload), m1.payload == big) == (f"{topic}/big", len(big), True)
    assert (m2.topic, m2.payload) == (f"{topic}/empty", b"")


# --------------------------------------------------------------------------------------
# topic filters


@BOTH
def test_wildcards(broker, clients, uid, topic, version):
    t = topic
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe([(f"{t}/a/+/c", 1), (f"{t}/x/#", 1), (f"+/{uid}/p", 1)]) == [1, 1, 1]
    matching = [f"{t}/a/b/c", f"{t}/a//c", f"{t}/a/v1.2/c", f"{t}/x", f"{t}/x/y", f"{t}/x/y/z", f"{t}/x/",
                f"{t}/p"]
    other = [f"{t}/a/b/c/d", f"{t}/a/c", f"{t}/a/b/d", f"{t}/xx", f"{t}/y/x", f"{t}/A/b/c",
             f"{t}/X", f"{t}/p/q"]
    for name in other + matching:
        pub.publish(name, name.encode(), 1)
    pub.publish(f"{t}/x/end", b"sentinel", 1)
    got = sub.until(f"{t}/x/end") + sub.drain()
    assert topics_of(got) == sorted(matching), "a/#: a, a/b, a/b/c, a/; a/+/c: a/b/c, a//c; +/u/p"
    for m in got:
        assert m.payload == m.topic.encode()


@BOTH
def test_dollar_topics_not_matched_by_leading_wildcards(broker, clients, uid, topic, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe([("#", 0), (f"+/{uid}/d", 0), ("+/+/+", 0)]) == [0, 0, 0]
    pub.publish(f"$interop/{uid}/d", b"dollar", 1)
    pub.publish(f"{topic}/d", b"sentinel", 1)  # matches all three filters
    got = sub.until(f"{topic}/d", b"sentinel") + sub.drain()
    leaked = [m for m in got if m.topic.startswith("$")]
    assert leaked == [], "`#`, `+/...` must not match topics starting with $"


@BOTH
def test_dollar_topic_explicit_subscription(broker, clients, uid, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe(f"$interop/{uid}/#", 1) == [1]
    pub.publish(f"$interop/{uid}/d", b"dollar", 1)
    m = sub.get()
    assert (m.topic, m.payload) == (f"$interop/{uid}/d", b"dollar")


@BOTH
def test_overlapping_subscriptions(broker, clients, uid, topic, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe([(f"{topic}/#", 2), (f"{topic}/+", 1)]) == [2, 1]
    pub.publish(f"{topic}/x", b"overlap", 2)
    pub.publish(f"{topic}/s/end", b"sentinel", 0)  # matches only the `#` filter
    got = sub.until(f"{topic}/s/end") + sub.drain()
    copies = sorted(m.qos for m in got if m.topic == f"{topic}/x")
    if version == "v311":
        # MQTT-3.3.5-1: one copy at the maximum QoS of the matching subscriptions
        assert copies == [2], f"3.1.1: expected exactly one copy at QoS 2, got QoS {copies}"
    else:
        # MQTT-3.3.4-2: at least the maximum QoS; MAY add one copy per extra subscription
        assert copies in ([2], [1, 2]), f"5.0: expected [2] or [1, 2], got QoS {copies}"


@BOTH
def test_resubscribe_replaces_qos(broker, clients, uid, topic, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    t = f"{topic}/r"
    assert sub.subscribe(t, 2) == [2]
    assert sub.subscribe(t, 0) == [0]
    pub.publish(t, b"once", 2)
    pub.publish(t, b"sentinel", 2)
    got = sub.until(t, b"sentinel") + sub.drain()
    assert [(m.payload, m.qos) for m in got] == [(b"once", 0)], \
        "the second SUBSCRIBE must replace the first (one subscription, QoS 0)"


@BOTH
@pytest.mark.parametrize("bad", ["a/#/b", "a/b#", "a/+b/c", "#/a"])
def test_invalid_filter_rejected_valid_granted(broker, clients, uid, topic, version, bad):
    """paho refuses to send invalid filters, so this speaks raw MQTT."""
    c, connack = raw.raw_connect(*broker.addr, RAWV[version], f"{uid}-raw")
    with c:
        assert connack.fields["rc"] == 0
        good = f"{topic}/ok"
        c.subscribe(7, [(f"{topic}/{bad}", 0), (good, 0)])
        suback = c.expect(raw.SUBACK)
        failure = 0x80 if version == "v311" else 0x8F
        assert suback.fields["pid"] == 7
        assert suback.fields["codes"] == [failure, 0], \
            f"expected [{failure:#x}, 0]; exchange: {c.log}"
        pub = clients(broker, f"{uid}-p", version)
        pub.publish(good, b"granted", 0)
        p = c.expect(raw.PUBLISH)
        assert (p.fields["topic"], p.fields["payload"]) == (good, b"granted")
    assert_alive(broker, clients, uid)


@BOTH
def test_unsubscribe_stops_delivery(broker, clients, uid, topic, version):
    sub = clients(broker, f"{uid}-s", version)
    pub = clients(broker, f"{uid}-p", version)
    assert sub.subscribe([(f"{topic}/a", 1), (f"{topic}/b", 1)]) == [1, 1]
    codes = sub.unsubscribe(f"{topic}/a")
    if version == "v5":
        assert codes == [0], f"UNSUBACK reason codes {codes}"
    pub.publish(f"{topic}/a", b"gone", 1)
    pub.publish(f"{topic}/b", b"sentinel", 1)
    got = sub.until(f"{topic}/b") + sub.drain()
    assert got == [], f"delivered after UNSUBSCRIBE: {got}"


# --------------------------------------------------------------------------------------
# retained messages


@BOTH
def test_retained_messages(broker, clients, uid, topic, version):
    live = clients(broker, f"{uid}-live", version)
    pub = clients(broker, f"{uid}-p", version)
    assert live.subscribe(f"{topic}/#", 1) == [1]
    pub.publish(f"{topic}/r", b"v1", 1, retain=True)
    pub.publish(f"{topic}/r", b"v2", 1, retain=True)
    m1, m2 = live.get_n(2)
    assert [(m.payload, m.retain) for m in (m1, m2)] == [(b"v1", False), (b"v2", False)], \
        "a message delivered to an existing subscription has retain=0 (MQTT-3.3.1-9 / RAP=0)"

    later = clients(broker, f"{uid}-later", version)
    assert later.subscribe(f"{topic}/#", 2) == [2]
    m = later.get()
    assert (m.topic, m.payload, m.retain, m.qos) == (f"{topic}/r", b"v2", True, 1), \
        "only the last retained message, flagged retain, at min(pub 1, sub 2)"
    pub.publish(f"{topic}/s", b"sentinel", 1)
    assert later.until(f"{topic}/s") == []

    # an empty retained payload clears it
    pub.publish(f"{topic}/r", b"", 1, retain=True)
    after = clients(broker, f"{uid}-after", version)
    assert after.subscribe(f"{topic}/#", 1) == [1]
    pub.publish(f"{topic}/s", b"sentinel", 1)
    got = after.until(f"{topic}/s") + after.drain()
    assert got == [], f"retained message not cleared by an empty payload: {got}"


def test_v5_retain_handling(broker, clients, uid, topic):
    pub = clients(broker, f"{uid}-p", "v5")
    pub.publish(f"{topic}/r", b"kept", 1, retain=True)
    sentinel = f"{topic}/s"
    try:
        # 2: never send retained messages on subscribe
        c2 = clients(broker, f"{uid}-rh2", "v5")
        assert c2.subscribe(f"{topic}/#", 1, retainHandling=2) == [1]
        pub.publish(sentinel, b"s2", 1)
        got = c2.until(sentinel, b"s2") + c2.drain()
        assert got == [], f"retain handling 2 sent retained messages: {got}"

        # 1: only when the subscription is new
        c1 = clients(broker, f"{uid}-rh1", "v5")
        assert c1.subscribe(f"{topic}/#", 1, retainHandling=1) == [1]
        m = c1.get()
        assert (m.topic, m.payload, m.retain) == (f"{topic}/r", b"kept", True)
        assert c1.subscribe(f"{topic}/#", 1, retainHandling=1) == [1]
        pub.publish(sentinel, b"s1", 1)
        got = c1.until(sentinel, b"s1") + c1.drain()
        assert got == [], f"retain handling 1 re-sent retained on an existing subscription: {got}"

        # 0: on every subscribe, also a repeated one
        assert c1.subscribe(f"{topic}/#", 1, retainHandling=0) == [1]
        m = c1.get()
        assert (m.topic, m.payload, m.retain) == (f"{topic}/r", b"kept", True)
    finally:
        pub.publish(f"{topic}/r", b"", 1, retain=True)


def test_v5_retain_as_published(broker, clients, uid, topic):
    rap = clients(broker, f"{uid}-rap", "v5")
    plain = clients(broker, f"{uid}-plain", "v5")
    pub = clients(broker, f"{uid}-p", "v5")
    assert rap.subscribe(f"{topic}/#", 1, retainAsPublished=True) == [1]
    assert plain.subscribe(f"{topic}/#", 1, retainAsPublished=False) == [1]
    try:
        pub.publish(f"{topic}/r", b"flagged", 1, retain=True)
        pub.publish(f"{topic}/n", b"unflagged", 1, retain=False)
        a1, a2 = rap.get_n(2)
        b1, b2 = plain.get_n(2)
        assert [(m.payload, m.retain) for m in (a1, a2)] == [(b"flagged", True), (b"unflagged", False)]
        assert [(m.payload, m.retain) for m in (b1, b2)] == [(b"flagged", False), (b"unflagged", False)]
    finally:
        pub.publish(f"{topic}/r", b"", 1, retain=True)


# --------------------------------------------------------------------------------------
# will messages


def _will(topic, version, payload=b"gone"):
    w = {"topic": topic, "payload": payload, "qos": 1}
    if version == "v5":
        w["props"] = {"UserProperty": [("why", "test"), ("why", "again")], "ContentType": "text/plain"}
    return w


@BOTH
def test_will_on_abrupt_close(broker, clients, uid, topic, version):
    watcher = clients(broker, f"{uid}-w", version)
    wt = f"{topic}/will"
    assert watcher.subscribe(wt, 1) == [1]
    dying = clients(broker, f"{uid}-dying", version, will=_will(wt, version))
    dying.drop()  # TCP close, no DISCONNECT
    m = watcher.get()
    assert (m.topic, m.payload, m.qos, m.retain) == (wt, b"gone", 1, False)
    if version == "v5":
        assert m.prop("UserProperty") == [("why", "test"), ("why", "again")]
        assert m.prop("ContentType") == "text/plain"


@BOTH
def test_no_will_on_normal_disconnect(broker, clients, uid, topic, version):
    watcher = clients(broker, f"{uid}-w", version)
    wt = f"{topic}/will"
    assert watcher.subscribe(wt, 1) == [1]
    leaving = clients(broker, f"{uid}-leaving", version, will=_will(wt, version))
    leaving.disconnect()
    # the same id connecting again proves the broker is done with the first connection
    clients(broker, f"{uid}-leaving", version).disconnect()
    pub = clients(broker, f"{uid}-p", version)
    pub.publish(wt, b"sentinel", 1)
    got = watcher.until(wt, b"sentinel") + watcher.drain()
    assert got == [], f"will published after a normal DISCONNECT: {got}"


@BOTH
def test_will_on_keepalive_timeout(broker, clients, uid, topic, version):
    watcher = clients(broker, f"{uid}-w", version)
    wt = f"{topic}/will"
    assert watcher.subscribe(wt, 1) == [1]
    c = raw.RawClient(*broker.addr, RAWV[version])
    with c:
        c.connect(f"{uid}-silent", keepalive=1, will={"topic": wt, "payload": b"timeout", "qos": 1})
        assert c.expect(raw.CONNACK).fields["rc"] == 0
        t0 = time.monotonic()
        try:
            packets = c.read_until_closed(timeout=6)  # spec: close after 1.5 x keepalive
        except TimeoutError:
            pytest.fail("broker did not close a connection silent for 6 s with keepalive 1")
        elapsed = time.monotonic() - t0
        assert all(p.type == raw.DISCONNECT for p in packets), packets
        if version == "v5" and packets:
            assert packets[-1].fields["rc"] == 0x8D, f"keep alive timeout reason: {packets}"
    assert 1.0 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s (keepalive 1 -> ~1.5 s)"
    m = watcher.get()
    assert (m.topic, m.payload) == (wt, b"timeout")


@BOTH
def test_pingreq_keeps_connection_alive(broker, uid, version):
    with raw.RawClient(*broker.addr, RAWV[version]) as c:
        c.connect(f"{uid}-pinger", keepalive=1)
        assert c.expect(raw.CONNACK).fields["rc"] == 0
        end = time.monotonic() + 3.0  # twice the 1.5 s grace
        while time.monotonic() < end:
            c.pingreq()
            c.expect(raw.PINGRESP, timeout=WAIT)
            time.sleep(0.5)  # pacing the client's own keepalive, not waiting for the broker


def test_garbage_is_closed_and_broker_keeps_serving(broker, clients, uid):
    with raw.RawClient(*broker.addr, raw.V5) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP request")
        try:
            c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail("a connection that sent HTTP instead of CONNECT was not closed")
        except raw.ProtocolError:
            pass  # the broker answered with something; it still has to close
    assert_alive(broker, clients, uid)


def test_v5_disconnect_with_will_message(broker, clients, uid, topic):
    watcher = clients(broker, f"{uid}-w", "v5")
    wt = f"{topic}/will"
    assert watcher.subscribe(wt, 1) == [1]
    leaving = clients(broker, f"{uid}-leaving", "v5", will=_will(wt, "v5", b"asked"))
    leaving.disconnect(reason=0x04)  # Disconnect with Will Message
    m = watcher.get()
    assert (m.topic, m.payload) == (wt, b"asked")


# --------------------------------------------------------------------------------------
# sessions


def _persistent(broker, clients, cid, version, **kw):
    extra = {"session_expiry": 60} if version == "v5" else {}
    return clients(broker, cid, version, clean=False, **extra, **kw)


@BOTH
def test_persistent_session_queues_offline_messages(broker, clients, uid, topic, version):
    cid = f"{uid}-persist"
    t = f"{topic}/q"
    first = _persistent(broker, clients, cid, version)
    assert first.connack.session_present is False, "a new client id has no session"
    assert first.subscribe(t, 2) == [2]
    first.disconnect()

    pub = clients(broker, f"{uid}-p", version)
    pub.publish(t, b"one", 1)
    pub.publish(t, b"two", 2)

    again = _persistent(broker, clients, cid, version)
    assert again.connack.session_present is True
    got = again.get_n(2)
    assert sorted((m.payload, m.qos) for m in got) == [(b"one", 1), (b"two", 2)]
    # the subscription survived too, and nothing is delivered twice
    pub.publish(t, b"live", 1)
    rest = again.until(t, b"live") + again.drain()
    assert rest == [], f"duplicates after resuming the session: {rest}"
    again.disconnect()

    # clean session / clean start discards it
    clean = clients(broker, cid, version)
    assert clean.connack.session_present is False
    clean.disconnect()
    fresh = _persistent(broker, clients, cid, version)
    assert fresh.connack.session_present is False, "the clean connection must have ended the session"
    fresh.subscribe(f"{topic}/s", 1)
    pub.publish(t, b"nobody", 1)
    pub.publish(f"{topic}/s", b"sentinel", 1)
    got = fresh.until(f"{topic}/s", b"sentinel")
    assert got == [], f"old subscription still delivered: {got}"
    fresh.disconnect()
    clients(broker, cid, version).disconnect()  # leave no session behind


def test_v5_session_expiry_zero_ends_session(broker, clients, uid):
    cid = f"{uid}-sei0"
    c = clients(broker, cid, "v5", clean=False)  # no SessionExpiryInterval = 0
    c.subscribe(f"interop/{uid}/x", 1)
    c.disconnect()
    again = clients(broker, cid, "v5", clean=False)
    assert again.connack.session_present is False


def test_v5_assigned_client_identifier(broker, clients, uid, topic):
    a = clients(broker, "", "v5")
    b = clients(broker, "", "v5")
    ida = a.connack.prop("AssignedClientIdentifier")
    idb = b.connack.prop("AssignedClientIdentifier")
    assert ida, f"CONNACK without AssignedClientIdentifier: {a.connack.properties}"
    assert idb and idb != ida
    assert a.subscribe(topic, 1) == [1]
    b.publish(topic, b"hi", 1)
    assert a.get().payload == b"hi"


def test_v311_empty_client_id(broker, clients, uid):
    c, connack = raw.raw_connect(*broker.addr, raw.V311, "", clean=False)
    with c:
        assert connack.fields["rc"] == 2, f"expected CONNACK 2 (identifier rejected): {c.log}"
        assert c.read_until_closed(2) == [], "the broker must close after a refused CONNECT"
    c, connack = raw.raw_connect(*broker.addr, raw.V311, "", clean=True)
    with c:
        assert connack.fields["rc"] == 0
        c.pingreq()
        c.expect(raw.PINGRESP)
    assert_alive(broker, clients, uid)


@BOTH
def test_session_takeover(broker, clients, uid, topic, version):
    cid = f"{uid}-dup"
    first, connack = raw.raw_connect(*broker.addr, RAWV[version], cid)
    with first:
        assert connack.fields["rc"] == 0
        second = clients(broker, cid, version)
        try:
            packets = first.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"first connection not closed on takeover; exchange: {first.log}")
        if version == "v5":
            assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x8E)], \
                f"expected DISCONNECT 0x8E (session taken over); exchange: {first.log}"
        else:
            assert packets == [], f"3.1.1 has no server DISCONNECT: {packets}"
    assert second.subscribe(topic, 1) == [1]
    second.publish(topic, b"mine", 1)
    assert second.get().payload == b"mine"
    assert not second.disconnected.is_set()


# --------------------------------------------------------------------------------------
# MQTT 5 properties


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_v5_properties_pass_through(broker, clients, uid, topic, qos):
    sub = clients(broker, f"{uid}-s", "v5")
    pub = clients(broker, f"{uid}-p", "v5")
    assert sub.subscribe(f"{topic}/#", 2) == [2]
    user = [("a", "1"), ("b", "2"), ("a", "3"), ("ünï", "cödé")]
    props = publish_props(UserProperty=user, ContentType="application/json",
                          ResponseTopic=f"{topic}/reply", CorrelationData=b"\x00\x01corr\xff",
                          PayloadFormatIndicator=1)
    pub.publish(f"{topic}/req", b'{"x":1}', qos, props=props)
    m = sub.get()
    assert m.qos == qos
    assert m.prop("UserProperty") == user, "order and duplicates of user properties are kept"
    assert m.prop("ContentType") == "application/json"
    assert m.prop("ResponseTopic") == f"{topic}/reply"
    assert m.prop("CorrelationData") == b"\x00\x01corr\xff"
    assert m.prop("PayloadFormatIndicator") == 1


def test_v5_request_response(broker, clients, uid, topic):
    requester = clients(broker, f"{uid}-req", "v5")
    responder = clients(broker, f"{uid}-resp", "v5")
    assert responder.subscribe(f"{topic}/service", 1) == [1]
    assert requester.subscribe(f"{topic}/reply", 1) == [1]
    requester.publish(f"{topic}/service", b"ping", 1,
                      props=publish_props(ResponseTopic=f"{topic}/reply", CorrelationData=b"42"))
    req = responder.get()
    responder.publish(req.prop("ResponseTopic"), b"pong", 1,
                      props=publish_props(CorrelationData=req.prop("CorrelationData")))
    rep = requester.get()
    assert (rep.topic, rep.payload, rep.prop("CorrelationData")) == (f"{topic}/reply", b"pong", b"42")


def test_v5_connack_limits(broker, clients, uid):
    c = clients(broker, f"{uid}-c", "v5")
    assert c.connack.prop("MaximumPacketSize") == MIB16, f"CONNACK properties: {c.connack.properties}"
    rm = c.connack.prop("ReceiveMaximum")
    assert rm is not None and 1 <= rm <= 65535, f"ReceiveMaximum {rm}"


@pytest.mark.parametrize("qos", [0, 1])
def test_v5_client_maximum_packet_size(broker, clients, uid, topic, qos):
    small = clients(broker, f"{uid}-small", "v5", connect_props={"MaximumPacketSize": 64})
    pub = clients(broker, f"{uid}-p", "v5")
    assert small.subscribe(f"{topic}/#", qos) == [qos]
    pub.publish(f"{topic}/big", b"x" * 200, qos)
    pub.publish(f"{topic}/small", b"ok", qos)
    got = small.until(f"{topic}/small", b"ok")
    assert got == [], "a PUBLISH larger than the client's Maximum Packet Size must be discarded"
    assert not small.disconnected.is_set(), f"client disconnected (reason {small.disconnect_reason})"
    # and it keeps working
    pub.publish(f"{topic}/small", b"again", qos)
    assert small.get().payload == b"again"


# --------------------------------------------------------------------------------------
# limits from the configuration file (a dedicated broker)


def test_v5_connack_announces_configured_limits(small_broker, clients, uid):
    c = clients(small_broker, f"{uid}-c", "v5", keepalive=60)
    assert c.connack.prop("MaximumPacketSize") == 1024
    assert c.connack.prop("ServerKeepAlive") == 10, "max_keep_alive = 10 < requested 60"


def test_v311_keepalive_above_server_maximum_refused(small_broker, uid):
    """3.1.1 cannot be told a Server Keep Alive: like mosquitto, the broker refuses a keep
    alive above max_keep_alive with CONNACK 2 (identifier rejected) and closes."""
    c, connack = raw.raw_connect(*small_broker.addr, raw.V311, f"{uid}-ka", keepalive=60)
    with c:
        assert connack.fields["rc"] == 2, f"exchange: {c.log}"
        assert c.read_until_closed(2) == []
    c, connack = raw.raw_connect(*small_broker.addr, raw.V311, f"{uid}-ka", keepalive=10)
    with c:
        assert connack.fields["rc"] == 0, f"keep alive == max_keep_alive is fine; exchange: {c.log}"


def _publish_size(version, topic, payload_len):
    """Whole PUBLISH packet size at QoS 0 (no properties)."""
    remaining = 2 + len(topic.encode()) + payload_len + (1 if version == "v5" else 0)
    return 1 + len(raw.varint(remaining)) + remaining


def _raw_oversize(broker, uid, version, t, size, exact_limit):
    """Publish one packet of exactly ``exact_limit`` bytes, then ``size`` payload bytes, and
    check how the broker closes the connection.  Returns the allowed payload length."""
    n = exact_limit - _publish_size(version, t, 0)
    while _publish_size(version, t, n) > exact_limit:
        n -= 1
    assert _publish_size(version, t, n) == exact_limit
    with raw.RawClient(*broker.addr, RAWV[version]) as c:
        c.connect(f"{uid}-big")
        assert c.expect(raw.CONNACK).fields["rc"] == 0, f"exchange: {c.log}"
        c.publish(t, b"a" * n)  # exactly the limit: allowed
        c.publish(t, b"b" * size)
        try:
            packets = c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"connection not closed after an oversized PUBLISH; exchange: {c.log}")
        if version == "v5":
            assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x95)], \
                f"expected DISCONNECT 0x95 (packet too large); exchange: {c.log}"
        else:
            assert packets == [], f"3.1.1: close without any packet; exchange: {c.log}"
    return n


@BOTH
@pytest.mark.parametrize("over", ["far", "by_one"])
def test_publish_over_max_message_size(small_broker, clients, uid, topic, version, over):
    """max_message_size = 1024: a 1024-byte PUBLISH is delivered, a larger one closes the
    connection (v5: DISCONNECT 0x95) and is not delivered; other clients carry on."""
    t = f"{topic}/big"
    watcher = clients(small_broker, f"{uid}-w", version)
    assert watcher.subscribe([(t, 0), (f"{topic}/s", 0)]) == [0, 0]
    n = 1024 - _publish_size(version, t, 0)
    while _publish_size(version, t, n) > 1024:
        n -= 1
    size = 4000 if over == "far" else n + 1
    _raw_oversize(small_broker, uid, version, t, size, 1024)
    m = watcher.get()
    assert len(m.payload) == n, "a packet of exactly max_message_size is allowed"
    watcher.publish(f"{topic}/s", b"sentinel", 0)
    got = watcher.until(f"{topic}/s")
    assert got == [], f"the oversized message was delivered: {[len(m.payload) for m in got]}"
    assert_alive(small_broker, clients, uid)


@BOTH
def test_max_queued_messages(small_broker, clients, uid, topic, version):
    cid = f"{uid}-slowpoke"
    t = f"{topic}/q"
    first = _persistent(small_broker, clients, cid, version)
    assert first.subscribe(t, 1) == [1]
    first.disconnect()
    pub = clients(small_broker, f"{uid}-p", version)
    for i in range(12):
        pub.publish(t, b"m%d" % i, 1)
    again = _persistent(small_broker, clients, cid, version)
    assert again.connack.session_present is True
    pub.publish(t, b"live", 1)
    got = again.until(t, b"live", timeout=WAIT)
    payloads = [m.payload for m in got]
    assert 1 <= len(payloads) <= 5, f"max_queued_messages = 5, got {len(payloads)}: {payloads}"
    assert len(set(payloads)) == len(payloads), f"duplicates: {payloads}"
    again.disconnect()
    clients(small_broker, cid, version).disconnect()
    assert_alive(small_broker, clients, uid)


# --------------------------------------------------------------------------------------
# shutdown


def test_sigterm_disconnects_clients_and_exits(tmp_path, uid):
    b = start_broker()
    try:
        c, connack = raw.raw_connect(*b.addr, raw.V5, f"{uid}-bye")
        with c:
            assert connack.fields["rc"] == 0
            t0 = time.monotonic()
            b.proc.send_signal(15)
            try:
                packets = c.read_until_closed(WAIT)
            except TimeoutError:
                pytest.fail("client not disconnected within 5 s of SIGTERM")
            assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x8B)], \
                f"expected DISCONNECT 0x8B (server shutting down); exchange: {c.log}"
        rc = b.proc.wait(max(0.5, WAIT - (time.monotonic() - t0)))
        assert rc == 0, f"exit status {rc} after SIGTERM; output:\n{b.tail(20)}"
    finally:
        stop_broker(b)
