"""MQTT 5 features of dwbroker: expiry, topic aliases, request/response, shared subscriptions,
subscription identifiers and options, flow control, session/will delay, enhanced auth and
payload format.

Same rules as test_mqtt.py: unique client ids and topics per test, every wait bounded, and
absence checks use a sentinel published after the thing that must not arrive.  Where the
exact packets matter (aliases, reason codes of server DISCONNECTs, unacknowledged
deliveries) the byte-level client in rawmqtt.py is used.
"""

from __future__ import annotations

import time

import pytest

import rawmqtt as raw
from conftest import start_broker, stop_broker
from helpers import QUIET, WAIT, publish_props


def rconn(broker, client_id, props=None, **kw) -> raw.RawClient:
    """A raw MQTT 5 connection whose CONNECT was accepted."""
    c, connack = raw.raw_connect(*broker.addr, raw.V5, client_id, props=props, **kw)
    assert connack.fields["rc"] == 0, f"CONNECT refused; exchange: {c.log}"
    return c


def rsubscribe(c: raw.RawClient, pid, filters, props=None) -> list[int]:
    c.subscribe(pid, filters, props)
    ack = c.expect(raw.SUBACK)
    assert ack.fields["pid"] == pid, f"exchange: {c.log}"
    return ack.fields["codes"]


def publishes_within(c: raw.RawClient, quiet: float) -> list[raw.Packet]:
    """Every packet that arrives until ``quiet`` seconds pass without one (bounded)."""
    out = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            p = c.read(quiet)
        except TimeoutError:
            return out
        assert p is not None, f"connection closed; exchange: {c.log}"
        out.append(p)
    return out


def props_of(p: raw.Packet) -> dict:
    return p.fields.get("props", {})


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory):
    """Server Receive Maximum 2 and Server Keep Alive 10."""
    b = start_broker("[limits]\nmax_inflight = 2\nmax_keep_alive = 10\n",
                     tmp_path_factory.mktemp("cfg5"))
    yield b
    stop_broker(b)


# --------------------------------------------------------------------------------------
# 1. message expiry


def test_v5_message_expiry_while_offline(broker, clients, uid, topic):
    cid = f"{uid}-persist"
    t = f"{topic}/q"
    sub = clients(broker, cid, "v5", clean=False, session_expiry=60)
    assert sub.subscribe(t, 1) == [1]
    sub.disconnect()

    pub = clients(broker, f"{uid}-p", "v5")
    pub.publish(t, b"short", 1, props=publish_props(MessageExpiryInterval=1))
    pub.publish(t, b"long", 1, props=publish_props(MessageExpiryInterval=60))
    time.sleep(2.1)  # the point of the test: let the first one expire

    again = clients(broker, cid, "v5", clean=False, session_expiry=60)
    assert again.connack.session_present is True
    pub.publish(t, b"sentinel", 1)
    got = again.until(t, b"sentinel")
    assert [m.payload for m in got] == [b"long"], f"expected only the unexpired message: {got}"
    remaining = got[0].prop("MessageExpiryInterval")
    assert remaining is not None, "a message with an expiry must be forwarded with its remaining interval"
    assert 55 <= remaining <= 60, f"remaining MessageExpiryInterval {remaining} (expected <= 60, ~58)"
    assert again.drain() == []
    again.disconnect()
    clients(broker, cid, "v5").disconnect()  # clean start: leave no session behind


def test_v5_retained_message_expiry(broker, clients, uid, topic):
    pub = clients(broker, f"{uid}-p", "v5")
    r_short, r_long = f"{topic}/r/short", f"{topic}/r/long"
    try:
        pub.publish(r_short, b"gone", 1, retain=True, props=publish_props(MessageExpiryInterval=1))
        pub.publish(r_long, b"kept", 1, retain=True, props=publish_props(MessageExpiryInterval=60))
        time.sleep(2.1)
        sub = clients(broker, f"{uid}-s", "v5")
        assert sub.subscribe(f"{topic}/r/#", 1) == [1]
        m = sub.get()
        assert (m.topic, m.payload, m.retain) == (r_long, b"kept", True)
        assert m.prop("MessageExpiryInterval") is not None and m.prop("MessageExpiryInterval") <= 60
        pub.publish(f"{topic}/r/sentinel", b"s", 1)
        got = sub.until(f"{topic}/r/sentinel", b"s") + sub.drain()
        assert got == [], f"expired retained message was sent: {got}"
    finally:
        pub.publish(r_short, b"", 1, retain=True)
        pub.publish(r_long, b"", 1, retain=True)


# --------------------------------------------------------------------------------------
# 2./3. topic aliases


def test_v5_topic_alias_client_to_server(broker, clients, uid, topic):
    t = f"{topic}/alias"
    sub = clients(broker, f"{uid}-s", "v5")
    assert sub.subscribe(f"{topic}/#", 1) == [1]
    c, connack = raw.raw_connect(*broker.addr, raw.V5, f"{uid}-p")
    with c:
        assert connack.fields["rc"] == 0
        assert connack.fields.get("props", {}).get("TopicAliasMaximum") == 64, f"CONNACK: {connack!r}"
        c.publish(t, b"first", 1, pid=1, props=[("TopicAlias", 1)])
        assert c.expect(raw.PUBACK).fields == {"pid": 1, "rc": 0}
        c.publish("", b"second", 1, pid=2, props=[("TopicAlias", 1)])
        assert c.expect(raw.PUBACK).fields["rc"] == 0, f"exchange: {c.log}"
        c.publish("", b"third", 0, props=[("TopicAlias", 1)])
        got = sub.get_n(3)
        assert [(m.topic, m.payload) for m in got] == [(t, b"first"), (t, b"second"), (t, b"third")]
        assert all(m.prop("TopicAlias") is None for m in got), "the alias must not be forwarded"


@pytest.mark.parametrize("alias", [0, 65])
def test_v5_topic_alias_out_of_range(broker, clients, uid, topic, alias):
    c, connack = raw.raw_connect(*broker.addr, raw.V5, f"{uid}-p")
    with c:
        assert connack.fields["rc"] == 0
        c.publish(f"{topic}/a", b"x", 1, pid=1, props=[("TopicAlias", alias)])
        try:
            packets = c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"connection not closed after TopicAlias {alias}; exchange: {c.log}")
        assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x94)], \
            f"expected DISCONNECT 0x94 (topic alias invalid); exchange: {c.log}"


def test_v5_unknown_topic_alias_without_topic(broker, clients, uid):
    """Alias in range but never set, and an empty topic: a protocol error (0x82)."""
    c, connack = raw.raw_connect(*broker.addr, raw.V5, f"{uid}-p")
    with c:
        assert connack.fields["rc"] == 0
        c.publish("", b"x", 1, pid=1, props=[("TopicAlias", 5)])
        try:
            packets = c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"connection not closed; exchange: {c.log}")
        assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x82)], \
            f"expected DISCONNECT 0x82; exchange: {c.log}"


def test_v5_topic_alias_server_to_client(broker, clients, uid, topic):
    t = f"{topic}/al"
    pub = clients(broker, f"{uid}-p", "v5")
    with rconn(broker, f"{uid}-s", props=[("TopicAliasMaximum", 1)]) as c:
        assert rsubscribe(c, 1, [(f"{topic}/#", 1)]) == [1]
        pub.publish(t, b"one", 1)
        pub.publish(t, b"two", 1)
        pub.publish(f"{topic}/other", b"three", 1)
        first, second, third = (c.expect(raw.PUBLISH) for _ in range(3))
        for p in (first, second, third):
            c.ack(raw.PUBACK, p.fields["pid"])
        assert (first.fields["topic"], first.fields["payload"]) == (t, b"one")
        assert props_of(first).get("TopicAlias") == 1, f"first PUBLISH should set alias 1; {c.log}"
        assert (second.fields["topic"], second.fields["payload"]) == ("", b"two"), \
            f"second PUBLISH should use the alias with an empty topic; exchange: {c.log}"
        assert props_of(second).get("TopicAlias") == 1
        # another topic: full name, and (if aliased at all) alias 1 re-bound
        assert (third.fields["topic"], third.fields["payload"]) == (f"{topic}/other", b"three")
        assert props_of(third).get("TopicAlias") in (None, 1)


def test_v5_no_server_topic_alias_without_client_maximum(broker, clients, uid, topic):
    t = f"{topic}/al"
    pub = clients(broker, f"{uid}-p", "v5")
    with rconn(broker, f"{uid}-s") as c:
        assert rsubscribe(c, 1, [(t, 0)]) == [0]
        pub.publish(t, b"one", 1)
        pub.publish(t, b"two", 1)
        got = [c.expect(raw.PUBLISH) for _ in range(2)]
        assert [(p.fields["topic"], props_of(p).get("TopicAlias")) for p in got] == \
            [(t, None), (t, None)], f"exchange: {c.log}"


# --------------------------------------------------------------------------------------
# 4. request / response


def test_v5_response_information(broker, clients, uid, topic):
    cid = f"{uid}-req"
    requester = clients(broker, cid, "v5", connect_props={"RequestResponseInformation": 1})
    info = requester.connack.prop("ResponseInformation")
    assert info == f"reply/{cid}/", f"CONNACK properties: {requester.connack.properties}"
    plain = clients(broker, f"{uid}-plain", "v5")
    assert plain.connack.prop("ResponseInformation") is None, "sent without being requested"

    responder = clients(broker, f"{uid}-resp", "v5")
    assert responder.subscribe(f"{topic}/service", 1) == [1]
    reply_topic = f"{info}answers"
    assert requester.subscribe(reply_topic, 1) == [1]
    corr = b"\x00\xffcorr-" + uid.encode()
    requester.publish(f"{topic}/service", b"ping", 1,
                      props=publish_props(ResponseTopic=reply_topic, CorrelationData=corr))
    req = responder.get()
    assert (req.payload, req.prop("ResponseTopic"), req.prop("CorrelationData")) == \
        (b"ping", reply_topic, corr)
    responder.publish(req.prop("ResponseTopic"), b"pong", 1,
                      props=publish_props(CorrelationData=req.prop("CorrelationData")))
    rep = requester.get()
    assert (rep.topic, rep.payload, rep.prop("CorrelationData")) == (reply_topic, b"pong", corr)


# --------------------------------------------------------------------------------------
# 5. shared subscriptions


def test_v5_shared_subscription_each_message_once(broker, clients, uid, topic):
    t = f"{topic}/work"
    shared = f"$share/g/{t}"
    a = clients(broker, f"{uid}-a", "v5")
    b = clients(broker, f"{uid}-b", "v5")
    plain = clients(broker, f"{uid}-plain", "v5")
    assert a.subscribe(shared, 1) == [1]
    assert b.subscribe(shared, 1) == [1]
    assert plain.subscribe(t, 1) == [1]
    pub = clients(broker, f"{uid}-p", "v5")
    sent = [f"m{i}".encode() for i in range(10)]
    for p in sent:
        pub.publish(t, p, 1)

    assert sorted(m.payload for m in plain.get_n(10)) == sorted(sent)
    got_a, got_b = [], []
    deadline = time.monotonic() + WAIT
    while len(got_a) + len(got_b) < 10 and time.monotonic() < deadline:
        got_a += a.drain(0.05)
        got_b += b.drain(0.05)
    got_a += a.drain()
    got_b += b.drain()
    assert plain.drain(0) == []
    assert all(m.topic == t for m in got_a + got_b), "shared deliveries carry the real topic"
    assert sorted(m.payload for m in got_a + got_b) == sorted(sent), \
        f"each message exactly once across the group: a={[m.payload for m in got_a]} " \
        f"b={[m.payload for m in got_b]}"


def test_v5_shared_subscription_redelivers_unacked(broker, clients, uid, topic):
    t = f"{topic}/work"
    shared = f"$share/g/{t}"
    b = clients(broker, f"{uid}-b", "v5")
    pub = clients(broker, f"{uid}-p", "v5")
    with rconn(broker, f"{uid}-a") as a:  # session expiry 0; never acknowledges
        assert rsubscribe(a, 1, [(shared, 1)]) == [1]
        assert b.subscribe(shared, 1) == [1]
        sent = [f"m{i}".encode() for i in range(10)]
        for p in sent:
            pub.publish(t, p, 1)
        held = [p for p in publishes_within(a, QUIET) if p.type == raw.PUBLISH]
        assert held, "the raw member got none of 10 messages: nothing to redistribute " \
                     f"(distribution not fair?); exchange: {a.log}"
        a.disconnect(0)
        assert a.read_until_closed(WAIT) == [], f"exchange: {a.log}"
    held_payloads = sorted(p.fields["payload"] for p in held)
    got = []
    deadline = time.monotonic() + WAIT
    while len(got) < 10 and time.monotonic() < deadline:
        got += b.drain(0.05)
    got += b.drain()
    assert sorted(m.payload for m in got) == sorted(sent), \
        f"the remaining member must get every message once, including the ones the leaver " \
        f"held unacknowledged ({held_payloads}); got {[m.payload for m in got]}"


# --------------------------------------------------------------------------------------
# 6./7. subscription identifiers and options


def test_v5_subscription_identifiers_overlapping(broker, clients, uid, topic):
    pub = clients(broker, f"{uid}-p", "v5")
    with rconn(broker, f"{uid}-s") as c:
        assert rsubscribe(c, 1, [(f"{topic}/#", 1)], props=[("SubscriptionIdentifier", 2)]) == [1]
        assert rsubscribe(c, 2, [(f"{topic}/a", 1)], props=[("SubscriptionIdentifier", 3)]) == [1]
        pub.publish(f"{topic}/a", b"both", 1)
        pub.publish(f"{topic}/b", b"sentinel", 1)
        p = c.expect(raw.PUBLISH)
        assert p.fields["payload"] == b"both"
        assert sorted(props_of(p).get("SubscriptionIdentifier", [])) == [2, 3], f"exchange: {c.log}"
        c.ack(raw.PUBACK, p.fields["pid"])
        s = c.expect(raw.PUBLISH)
        assert s.fields["payload"] == b"sentinel", \
            f"expected one PUBLISH for the overlapping subscriptions; exchange: {c.log}"
        assert props_of(s).get("SubscriptionIdentifier") == [2]
        c.ack(raw.PUBACK, s.fields["pid"])


def test_v5_no_local(broker, clients, uid, topic):
    t = f"{topic}/nl"
    me = clients(broker, f"{uid}-me", "v5")
    other = clients(broker, f"{uid}-other", "v5")
    watcher = clients(broker, f"{uid}-w", "v5")
    assert me.subscribe(t, 1, noLocal=True) == [1]
    assert watcher.subscribe(t, 1) == [1]
    me.publish(t, b"mine", 1)
    other.publish(t, b"theirs", 1)
    got = me.until(t, b"theirs") + me.drain()
    assert got == [], f"no-local subscriber received its own message: {got}"
    assert [m.payload for m in watcher.get_n(2)] == [b"mine", b"theirs"]


def test_v5_retain_handling_1_only_new_subscription(broker, clients, uid, topic):
    pub = clients(broker, f"{uid}-p", "v5")
    r = f"{topic}/r"
    try:
        pub.publish(r, b"kept", 1, retain=True)
        c = clients(broker, f"{uid}-s", "v5")
        assert c.subscribe(r, 1, retainHandling=1) == [1]
        m = c.get()
        assert (m.topic, m.payload, m.retain) == (r, b"kept", True)
        assert c.subscribe(r, 1, retainHandling=1) == [1]
        assert c.subscribe(f"{topic}/s", 1) == [1]
        pub.publish(f"{topic}/s", b"sentinel", 1)
        got = c.until(f"{topic}/s", b"sentinel") + c.drain()
        assert got == [], f"retained re-sent on an existing subscription: {got}"
    finally:
        pub.publish(r, b"", 1, retain=True)


# --------------------------------------------------------------------------------------
# 8. flow control


def test_v5_client_receive_maximum(broker, clients, uid, topic):
    t = f"{topic}/rm"
    pub = clients(broker, f"{uid}-p", "v5")
    with rconn(broker, f"{uid}-s", props=[("ReceiveMaximum", 2)]) as c:
        assert rsubscribe(c, 1, [(t, 1)]) == [1]
        sent = [f"m{i}".encode() for i in range(5)]
        for p in sent:
            pub.publish(t, p, 1)
        first = publishes_within(c, QUIET)
        assert [p.type for p in first] == [raw.PUBLISH, raw.PUBLISH], \
            f"ReceiveMaximum 2: exactly 2 unacknowledged PUBLISHes expected; exchange: {c.log}"
        c.ack(raw.PUBACK, first[0].fields["pid"])
        more = publishes_within(c, QUIET)
        assert [p.type for p in more] == [raw.PUBLISH], \
            f"one ack must release exactly one more PUBLISH; exchange: {c.log}"
        got = first + more
        inflight = [first[1], more[0]]
        while len(got) < 5:
            for p in inflight:
                c.ack(raw.PUBACK, p.fields["pid"])
            inflight = publishes_within(c, QUIET)
            assert 1 <= len(inflight) <= 2, f"exchange: {c.log}"
            got += inflight
        for p in inflight:
            c.ack(raw.PUBACK, p.fields["pid"])
        assert [p.fields["payload"] for p in got] == sent, f"order/completeness; exchange: {c.log}"


def test_v5_server_receive_maximum_exceeded(limited_broker, uid, topic):
    with rconn(limited_broker, f"{uid}-p") as c:
        for pid in (1, 2, 3):
            c.publish(f"{topic}/q2", b"x", 2, pid=pid)
        try:
            packets = c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"connection not closed after exceeding Receive Maximum; exchange: {c.log}")
        # PUBREC 0x10: no subscribers on the topic, a success code
        assert [(p.type, p.fields.get("rc") in (0, 0x10) if p.type == raw.PUBREC
                 else p.fields.get("rc")) for p in packets] == \
            [(raw.PUBREC, True), (raw.PUBREC, True), (raw.DISCONNECT, 0x93)], \
            f"expected PUBREC, PUBREC, DISCONNECT 0x93; exchange: {c.log}"


def test_v5_server_receive_maximum_announced(limited_broker, uid):
    c, connack = raw.raw_connect(*limited_broker.addr, raw.V5, f"{uid}-c", keepalive=60)
    with c:
        assert connack.fields["rc"] == 0
        props = connack.fields.get("props", {})
        assert props.get("ReceiveMaximum") == 2, f"CONNACK: {connack!r}"
        # 11. server keep alive
        assert props.get("ServerKeepAlive") == 10, f"CONNACK: {connack!r}"


# --------------------------------------------------------------------------------------
# 9. session expiry on DISCONNECT


def test_v5_disconnect_cannot_set_session_expiry_from_zero(broker, uid):
    with rconn(broker, f"{uid}-c") as c:  # no SessionExpiryInterval: 0
        c.disconnect(0, [("SessionExpiryInterval", 30)])
        try:
            packets = c.read_until_closed(WAIT)
        except TimeoutError:
            pytest.fail(f"connection not closed; exchange: {c.log}")
        assert [(p.type, p.fields.get("rc")) for p in packets] == [(raw.DISCONNECT, 0x82)], \
            f"expected DISCONNECT 0x82 [MQTT-3.14.2-2]; exchange: {c.log}"


def test_v5_disconnect_session_expiry_zero_ends_session(broker, uid, topic):
    cid = f"{uid}-c"
    with rconn(broker, cid, clean=False, props=[("SessionExpiryInterval", 60)]) as c:
        assert rsubscribe(c, 1, [(f"{topic}/x", 1)]) == [1]
        c.disconnect(0, [("SessionExpiryInterval", 0)])
        assert c.read_until_closed(WAIT) == [], f"exchange: {c.log}"
    c, connack = raw.raw_connect(*broker.addr, raw.V5, cid, clean=False,
                                 props=[("SessionExpiryInterval", 60)])
    with c:
        assert connack.fields["rc"] == 0
        assert connack.fields["session_present"] is False, \
            f"DISCONNECT with SessionExpiryInterval 0 must end the session; exchange: {c.log}"
        c.disconnect(0, [("SessionExpiryInterval", 0)])


def test_v5_disconnect_session_expiry_kept(broker, uid, topic):
    """Control for the test above: without changing it the session survives."""
    cid = f"{uid}-c"
    with rconn(broker, cid, clean=False, props=[("SessionExpiryInterval", 60)]) as c:
        assert rsubscribe(c, 1, [(f"{topic}/x", 1)]) == [1]
        c.disconnect(0)
        assert c.read_until_closed(WAIT) == []
    c, connack = raw.raw_connect(*broker.addr, raw.V5, cid, clean=False,
                                 props=[("SessionExpiryInterval", 60)])
    with c:
        assert connack.fields["session_present"] is True, f"exchange: {c.log}"
        c.disconnect(0, [("SessionExpiryInterval", 0)])


# --------------------------------------------------------------------------------------
# 10. will delay


def _will_client(broker, cid, will_topic):
    return rconn(broker, cid, clean=False, props=[("SessionExpiryInterval", 10)],
                 will={"topic": will_topic, "payload": b"late will", "qos": 1,
                       "props": [("WillDelayInterval", 2)]})


def test_v5_will_delay(broker, clients, uid, topic):
    wt = f"{topic}/will"
    sub = clients(broker, f"{uid}-s", "v5")
    assert sub.subscribe(wt, 1) == [1]
    c = _will_client(broker, f"{uid}-w", wt)
    c.close()  # abrupt: no DISCONNECT
    t0 = time.monotonic()
    early = sub.drain(1.5)
    assert early == [], f"will sent before its 2 s delay: {early} at {time.monotonic() - t0:.2f}s"
    m = sub.get(timeout=max(0.1, 4.0 - (time.monotonic() - t0)))
    assert (m.topic, m.payload) == (wt, b"late will")
    # leave no session behind
    clients(broker, f"{uid}-w", "v5").disconnect()


def test_v5_will_delay_cancelled_by_reconnect(broker, clients, uid, topic):
    wt = f"{topic}/will"
    cid = f"{uid}-w"
    sub = clients(broker, f"{uid}-s", "v5")
    assert sub.subscribe(f"{topic}/#", 1) == [1]
    c = _will_client(broker, cid, wt)
    c.close()
    time.sleep(0.3)
    with rconn(broker, cid, clean=False, props=[("SessionExpiryInterval", 10)]) as again:
        time.sleep(2.7)  # past the will delay
        pub = clients(broker, f"{uid}-p", "v5")
        pub.publish(f"{topic}/sentinel", b"s", 1)
        got = sub.until(f"{topic}/sentinel", b"s") + sub.drain()
        assert got == [], f"will published although the session resumed within the delay: {got}"
        again.disconnect(0, [("SessionExpiryInterval", 0)])


# --------------------------------------------------------------------------------------
# 12. enhanced authentication


def test_v5_unsupported_authentication_method(broker, clients, uid):
    c, connack = raw.raw_connect(*broker.addr, raw.V5, f"{uid}-auth",
                                 props=[("AuthenticationMethod", "SCRAM-SHA-1")])
    with c:
        assert connack.fields["rc"] == 0x8C, f"expected CONNACK 0x8C (bad auth method): {c.log}"
        assert c.read_until_closed(2) == [], "the broker must close after a refused CONNECT"


# --------------------------------------------------------------------------------------
# 13. payload format indicator


def test_v5_invalid_utf8_payload_rejected(broker, clients, uid, topic):
    t = f"{topic}/pfi"
    sub = clients(broker, f"{uid}-s", "v5")
    assert sub.subscribe(t, 1) == [1]
    with rconn(broker, f"{uid}-p") as c:
        c.publish(t, b"\xff\xfe\x80bad", 1, pid=7, props=[("PayloadFormatIndicator", 1)])
        ack = c.expect(raw.PUBACK)
        assert ack.fields == {"pid": 7, "rc": 0x99}, f"expected PUBACK 0x99; exchange: {c.log}"
        # binary (indicator 0) with the same bytes is fine; valid UTF-8 with 1 too
        c.publish(t, b"\xff\xfe\x80bin", 1, pid=8, props=[("PayloadFormatIndicator", 0)])
        assert c.expect(raw.PUBACK).fields == {"pid": 8, "rc": 0}
        c.publish(t, "sentinel ü".encode(), 1, pid=9, props=[("PayloadFormatIndicator", 1)])
        assert c.expect(raw.PUBACK).fields == {"pid": 9, "rc": 0}
        got = sub.until(t, "sentinel ü".encode()) + sub.drain()
        assert [m.payload for m in got] == [b"\xff\xfe\x80bin"], f"invalid UTF-8 delivered: {got}"
