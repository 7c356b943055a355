"""dwbroker's AMQP 0-9-1 front driven by pika 1.3.2 (BlockingConnection), plus the Debian
amqp-tools CLI and AMQP <-> MQTT / NATS through the shared router.

The expected outcomes are RabbitMQ's (verified against RabbitMQ 3.10.8): run the AMQP-only
tests against any server with
``DWBROKER_AMQP_URL=amqp://guest:guest@127.0.0.1:25673/%2F pytest tests/interop/test_amqp.py``;
the tests that need dwbroker itself (cross-protocol, its documented 16 MiB message limit)
then skip.  Names are unique per test (``uid``); queues are exclusive or deleted afterwards,
exchanges are deleted afterwards (``cleanup``).  Every wait is bounded; absence is checked
behind a sentinel or with basic.get (get-empty), never by sleeping alone.  After a channel
error the same connection must open a new channel and do a round trip; after a connection
error a new connection must work.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import os
import shutil
import subprocess
import time
from urllib.parse import unquote, urlparse

import pika
import pika.exceptions as pex
import pytest

from amqp_helpers import (Collector, assert_code, channel_error, connection_error, get_all, get_one,
                          is_empty, props, pump_for, pump_until, round_trip)
from conftest import external_amqp, needs_dwbroker
from helpers import WAIT, publish_props

MIB = 1024 * 1024


@pytest.fixture
def conn(amqp):
    return amqp()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def cleanup(amqp_url):
    """``cleanup.queue(name)`` / ``cleanup.exchange(name)``: deleted after the test."""

    class Reg:
        queues: list[str] = []
        exchanges: list[str] = []

        def queue(self, name):
            self.queues.append(name)
            return name

        def exchange(self, name):
            self.exchanges.append(name)
            return name

    reg = Reg()
    reg.queues, reg.exchanges = [], []
    yield reg
    if not reg.queues and not reg.exchanges:
        return
    p = pika.URLParameters(amqp_url)
    p.socket_timeout = p.blocked_connection_timeout = p.stack_timeout = 5
    c = pika.BlockingConnection(p)
    try:
        for kind, names in (("queue", reg.queues), ("exchange", reg.exchanges)):
            for n in names:
                ch = c.channel()
                try:
                    (ch.queue_delete if kind == "queue" else ch.exchange_delete)(n)
                    ch.close()
                except pex.ChannelClosedByBroker:
                    pass
    finally:
        c.close()


def passive_queue(conn, name):
    """(message_count, consumer_count) of ``name``, or the 404 error if it does not exist."""
    ch = conn.channel()
    try:
        ok = ch.queue_declare(name, passive=True).method
    except pex.ChannelClosedByBroker as e:
        return e
    ch.close()
    return ok.message_count, ok.consumer_count


def wait_queue_gone(conn, name, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        r = passive_queue(conn, name)
        if isinstance(r, pex.ChannelClosedByBroker):
            assert_code(r, 404, "NOT_FOUND")
            return
        assert time.monotonic() < deadline, f"queue {name} still exists after {timeout}s: {r}"
        time.sleep(0.05)


# ======================================================================================
# 1. connection


def test_connect_server_properties(conn):
    sp = conn._impl.server_properties
    caps = sp["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
                "authentication_failure_close", "per_consumer_qos", "direct_reply_to"):
        assert caps.get(cap) is True, f"capability {cap}: {caps.get(cap)!r} in {caps}"
    assert sp.get("product"), sp
    round_trip(conn)


def test_wrong_password_refused(amqp, amqp_url):
    u = urlparse(amqp_url)
    bad = u._replace(netloc=f"{unquote(u.username or 'guest')}:wrong-{os.getpid()}@{u.hostname}:{u.port}")
    with pytest.raises((pex.ProbableAuthenticationError, pex.AuthenticationError)) as ei:
        amqp(bad.geturl())
    # authentication_failure_close: a connection.close 403 rather than a bare TCP drop
    assert "403" in str(ei.value) and "ACCESS_REFUSED" in str(ei.value), repr(ei.value)
    round_trip(amqp())


def test_heartbeat_negotiated_and_kept(amqp):
    c = amqp(heartbeat=2)
    assert c._impl.params.heartbeat == 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        c.process_data_events(time_limit=0.5)  # pika fails the connection after missed heartbeats
        assert c.is_open
    round_trip(c)


# ======================================================================================
# 2. default exchange, basic.get


def test_default_exchange_and_basic_get(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    assert is_empty(ch, q)  # get-empty on an empty queue
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    m, p, b = get_one(ch, q)
    assert b == b"m0"
    assert (m.exchange, m.routing_key, m.redelivered) == ("", q, False)
    assert m.message_count == 2  # messages left after this one
    m, _, b = get_one(ch, q)
    assert (b, m.message_count) == (b"m1", 1)
    m, _, b = get_one(ch, q)
    assert (b, m.message_count) == (b"m2", 0)
    assert is_empty(ch, q)


# ======================================================================================
# 3. queues


def test_queue_server_named(ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-"), ok.queue
    assert (ok.message_count, ok.consumer_count) == (0, 0)


def test_queue_passive_missing_404(conn, uid):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.queue_declare(f"{uid}-missing", passive=True))
    assert_code(e, 404, "NOT_FOUND", f"{uid}-missing")
    round_trip(conn)


def test_queue_redeclare_different_durable_406(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q, durable=False)
    ch.queue_declare(q, durable=False)  # an identical redeclare is fine
    e = channel_error(ch, lambda: ch.queue_declare(q, durable=True))
    assert_code(e, 406, "PRECONDITION_FAILED", "inequivalent arg 'durable'")
    round_trip(conn)


def test_queue_redeclare_different_arguments_406(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-max-length": 10})
    e = channel_error(ch, lambda: ch.queue_declare(q, arguments={"x-max-length": 20}))
    assert_code(e, 406, "PRECONDITION_FAILED", "inequivalent arg 'x-max-length'")
    round_trip(conn)


def test_exclusive_queue_locked_for_other_connection_405(amqp, uid):
    owner = amqp()
    q = f"{uid}-excl"
    owner.channel().queue_declare(q, exclusive=True)
    other = amqp()
    ch = other.channel()
    e = channel_error(ch, lambda: ch.queue_declare(q, exclusive=True))
    assert_code(e, 405, "RESOURCE_LOCKED")
    ch = other.channel()
    e = channel_error(ch, lambda: ch.queue_declare(q, passive=True))
    assert_code(e, 405, "RESOURCE_LOCKED")
    ch = other.channel()
    e = channel_error(ch, lambda: ch.basic_consume(q, lambda *a: None))
    assert_code(e, 405, "RESOURCE_LOCKED")
    round_trip(other)
    # the owner is unaffected
    och = owner.channel()
    och.basic_publish("", q, b"x")
    assert get_one(och, q)[2] == b"x"


def test_exclusive_queue_deleted_with_connection(amqp, uid):
    owner = amqp()
    q = f"{uid}-excl"
    owner.channel().queue_declare(q, exclusive=True)
    watcher = amqp()
    e = passive_queue(watcher, q)
    assert isinstance(e, pex.ChannelClosedByBroker) and e.reply_code == 405, e  # exists, locked
    owner.close()
    wait_queue_gone(watcher, q)


def test_auto_delete_queue_deleted_after_last_consumer(amqp, uid, cleanup):
    c = amqp()
    q = cleanup.queue(f"{uid}-ad")
    ch = c.channel()
    ch.queue_declare(q, auto_delete=True)
    # basic.get does not count as a consumer: still there after one
    ch.basic_publish("", q, b"x")
    get_one(ch, q)
    assert passive_queue(c, q) == (0, 0)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    assert passive_queue(c, q) == (0, 2)
    ch.basic_cancel(t1)
    assert passive_queue(c, q) == (0, 1)  # one consumer left: still there
    ch.basic_cancel(t2)
    wait_queue_gone(c, q)


def test_declare_ok_counts_purge_and_delete_counts(amqp, uid, cleanup):
    c = amqp()
    q = cleanup.queue(f"{uid}-q")
    ch = c.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()  # counts are read on other paths than publishes: wait for the enqueue
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    assert ch.queue_declare(q).method.message_count == 3
    cch = amqp().channel()
    cch.basic_qos(prefetch_count=1)
    cch.basic_consume(q, lambda *a: None)  # holds one message unacked
    pump_until(c, lambda: ch.queue_declare(q).method.message_count == 2,
               what="one message delivered to the prefetch-1 consumer")
    ok = ch.queue_declare(q).method
    assert (ok.message_count, ok.consumer_count) == (2, 1)  # ready messages only
    assert ch.queue_purge(q).method.message_count == 2
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (0, 1)
    cch.connection.close()  # the unacked one is requeued
    pump_until(c, lambda: ch.queue_declare(q, passive=True).method.message_count == 1,
               what="requeue of the unacked message")
    ch.basic_publish("", q, b"more")
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    assert ch.queue_delete(q).method.message_count == 2
    wait_queue_gone(c, q)


def test_queue_delete_if_unused_406(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    e = channel_error(ch2, lambda: ch2.queue_delete(q, if_unused=True))
    assert_code(e, 406, "PRECONDITION_FAILED", "in use")
    round_trip(conn)


def test_queue_delete_if_empty_406(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.confirm_delivery()  # enqueued before the other channel's delete
    ch.basic_publish("", q, b"x")
    ch2 = conn.channel()
    e = channel_error(ch2, lambda: ch2.queue_delete(q, if_empty=True))
    assert_code(e, 406, "PRECONDITION_FAILED", "not empty")
    round_trip(conn)
    assert conn.channel().queue_delete(q).method.message_count == 1


# ======================================================================================
# 4. exchanges


@pytest.mark.parametrize("etype", ["direct", "fanout", "topic", "headers"])
def test_exchange_declare_types(ch, uid, cleanup, etype):
    x = cleanup.exchange(f"{uid}-{etype}")
    ch.exchange_declare(x, etype)
    ch.exchange_declare(x, etype)  # identical redeclare
    ch.exchange_declare(x, etype, passive=True)
    ch.exchange_delete(x)
    e = channel_error(ch, lambda: ch.exchange_declare(x, passive=True))
    assert_code(e, 404, "NOT_FOUND")
    round_trip(ch.connection)


def test_exchange_redeclare_different_type_406(conn, uid, cleanup):
    x = cleanup.exchange(f"{uid}-x")
    ch = conn.channel()
    ch.exchange_declare(x, "direct")
    e = channel_error(ch, lambda: ch.exchange_declare(x, "fanout"))
    assert_code(e, 406, "PRECONDITION_FAILED", "inequivalent arg 'type'")
    round_trip(conn)


def test_exchange_reserved_amq_prefix_403(conn, uid):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.exchange_declare(f"amq.{uid}", "direct"))
    assert_code(e, 403, "ACCESS_REFUSED", "amq.")
    round_trip(conn)


def test_exchange_passive_missing_404(conn, uid):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.exchange_declare(f"{uid}-nx", passive=True))
    assert_code(e, 404, "NOT_FOUND", f"{uid}-nx")
    round_trip(conn)


def test_publish_to_missing_exchange_404(conn, uid):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.basic_publish(f"{uid}-nx", "k", b"x"))
    assert_code(e, 404, "NOT_FOUND", f"{uid}-nx")
    round_trip(conn)


def test_exchange_delete_if_unused_406(conn, uid, cleanup):
    x = cleanup.exchange(f"{uid}-x")
    ch = conn.channel()
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    ch2 = conn.channel()
    e = channel_error(ch2, lambda: ch2.exchange_delete(x, if_unused=True))
    assert_code(e, 406, "PRECONDITION_FAILED", "in use")
    round_trip(conn)
    ch.queue_unbind(q, x, "k")
    ch.exchange_delete(x, if_unused=True)
    ch3 = conn.channel()
    e = channel_error(ch3, lambda: ch3.exchange_declare(x, passive=True))
    assert_code(e, 404)


def test_exchange_to_exchange_bind_unbind(ch, uid, cleanup):
    src = cleanup.exchange(f"{uid}-src")
    dst = cleanup.exchange(f"{uid}-dst")
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, dst, "a.b")
    ch.exchange_bind(destination=dst, source=src, routing_key="a.*")
    ch.basic_publish(src, "a.b", b"through")
    ch.basic_publish(src, "x.y", b"not-bound")
    m, _, b = get_one(ch, q)
    assert (b, m.exchange, m.routing_key) == (b"through", src, "a.b")
    ch.exchange_unbind(destination=dst, source=src, routing_key="a.*")
    ch.basic_publish(src, "a.b", b"after-unbind")
    ch.basic_publish(dst, "a.b", b"sentinel")
    assert get_one(ch, q)[2] == b"sentinel"
    assert is_empty(ch, q)


def test_alternate_exchange_catches_unroutable(ch, uid, cleanup):
    ae = cleanup.exchange(f"{uid}-ae")
    x = cleanup.exchange(f"{uid}-x")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": ae})
    qa = ch.queue_declare("", exclusive=True).method.queue
    qx = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(qa, ae)
    ch.queue_bind(qx, x, "routed")
    ch.confirm_delivery()
    ch.basic_publish(x, "unroutable", b"to-ae", mandatory=True)  # routed via the AE: no return
    ch.basic_publish(x, "routed", b"direct")
    m, _, b = get_one(ch, qa)
    assert (b, m.exchange, m.routing_key) == (b"to-ae", x, "unroutable")
    assert get_one(ch, qx)[2] == b"direct"
    assert is_empty(ch, qa)


def test_internal_exchange_publish_403(conn, uid, cleanup):
    x = cleanup.exchange(f"{uid}-int")
    ch = conn.channel()
    ch.exchange_declare(x, "fanout", internal=True)
    e = channel_error(ch, lambda: ch.basic_publish(x, "", b"x"))
    assert_code(e, 403, "ACCESS_REFUSED", "internal exchange")
    round_trip(conn)


def test_invalid_exchange_type(amqp, uid, cleanup):
    c = amqp()
    x = cleanup.exchange(f"{uid}-bad")
    ch = c.channel()
    # RabbitMQ since 3.11: 406 channel close "unknown exchange type '...'" (3.10
    # closed the connection with 503 COMMAND_INVALID).
    try:
        ch.exchange_declare(x, f"x-no-such-type-{uid}")
        c.process_data_events(time_limit=0.2)
    except pex.ChannelClosedByBroker as e:
        assert_code(e, 406, "PRECONDITION_FAILED", "unknown exchange type")
        round_trip(c)
        return
    raise AssertionError("declare of an unknown exchange type succeeded")


# ======================================================================================
# 5. routing


def _queues(ch, n):
    return [ch.queue_declare("", exclusive=True).method.queue for _ in range(n)]


def test_direct_routing_exact_key(ch, uid, cleanup):
    x = cleanup.exchange(f"{uid}-d")
    ch.exchange_declare(x, "direct")
    qa, qb = _queues(ch, 2)
    ch.queue_bind(qa, x, "a")
    ch.queue_bind(qb, x, "b")
    ch.queue_bind(qb, x, "a")  # a queue may have several bindings
    for k in ("a", "b", "A", "a.b", ""):
        ch.basic_publish(x, k, k.encode() or b"empty")
    ch.basic_publish("", qa, b"end")
    ch.basic_publish("", qb, b"end")
    assert get_all(ch, qa) == [b"a", b"end"]
    assert get_all(ch, qb) == [b"a", b"b", b"end"]


def test_fanout_routes_to_all_bound_queues(ch, uid, cleanup):
    x = cleanup.exchange(f"{uid}-f")
    ch.exchange_declare(x, "fanout")
    qs = _queues(ch, 3)
    for q in qs:
        ch.queue_bind(q, x, "ignored")
    ch.basic_publish(x, "any.key", b"all")
    for q in qs:
        m, _, b = get_one(ch, q)
        assert (b, m.routing_key) == (b"all", "any.key")
        assert is_empty(ch, q)


TOPIC_CASES = [
    # (binding, matching keys, non-matching keys)
    ("a.*.c", ["a.b.c", "a..c"], ["a.c", "a.b.b.c", "a.b.c.d"]),
    ("#.c", ["c", "a.c", "a.b.c"], ["a.c.d", "ac"]),
    ("a.#.c", ["a.c", "a.b.c", "a.b.b.c"], ["a.b", "b.a.c"]),
    ("a.#", ["a", "a.b", "a.b.c"], ["b.a", "ab"]),
    ("#", ["a", "a.b.c", ""], []),
    ("*", ["a"], ["a.b", ""]),  # RabbitMQ: "*" does not match the empty key
    ("a.b", ["a.b"], ["a.b.c", "a", "A.b"]),
    ("*.#", ["a", "a.b.c"], []),
]


@pytest.mark.parametrize("binding,good,bad", TOPIC_CASES, ids=[c[0] for c in TOPIC_CASES])
def test_topic_routing(ch, uid, cleanup, binding, good, bad):
    x = cleanup.exchange(f"{uid}-t")
    ch.exchange_declare(x, "topic")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, binding)
    for k in good + bad:
        ch.basic_publish(x, k, f"key={k}".encode())
    ch.basic_publish("", q, b"end")
    assert get_all(ch, q) == [f"key={k}".encode() for k in good] + [b"end"]


def _headers_setup(ch, uid, cleanup, x_match):
    x = cleanup.exchange(f"{uid}-h")
    ch.exchange_declare(x, "headers")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-match": x_match, "a": "1", "b": 2})
    return x, q


def _publish_headers(ch, x, q, cases):
    for name, headers in cases:
        ch.basic_publish(x, "", name.encode(), props(headers=headers))
    ch.basic_publish("", q, b"end")
    return get_all(ch, q)


def test_headers_x_match_all(ch, uid, cleanup):
    x, q = _headers_setup(ch, uid, cleanup, "all")
    got = _publish_headers(ch, x, q, [
        ("both", {"a": "1", "b": 2}),
        ("both+extra", {"a": "1", "b": 2, "c": "z"}),
        ("only-a", {"a": "1"}),
        ("wrong-b", {"a": "1", "b": 3}),
        ("none", None),
    ])
    assert got == [b"both", b"both+extra", b"end"]


def test_headers_x_match_any(ch, uid, cleanup):
    x, q = _headers_setup(ch, uid, cleanup, "any")
    got = _publish_headers(ch, x, q, [
        ("both", {"a": "1", "b": 2}),
        ("only-a", {"a": "1"}),
        ("only-b", {"b": 2}),
        ("wrong", {"a": "2", "b": 3}),
        ("none", None),
    ])
    assert got == [b"both", b"only-a", b"only-b", b"end"]


def test_headers_x_match_all_ignores_x_headers(ch, uid, cleanup):
    # plain all/any ignore binding and message headers starting with "x-"
    x = cleanup.exchange(f"{uid}-h")
    ch.exchange_declare(x, "headers")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-match": "all", "a": "1", "x-k": "v"})
    got = _publish_headers(ch, x, q, [("no-x", {"a": "1"}), ("with-x", {"a": "1", "x-k": "v"})])
    assert got == [b"no-x", b"with-x", b"end"]


def test_headers_x_match_all_with_x(ch, uid, cleanup):
    x = cleanup.exchange(f"{uid}-h")
    ch.exchange_declare(x, "headers")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-match": "all-with-x", "a": "1", "x-k": "v"})
    got = _publish_headers(ch, x, q, [
        ("no-x", {"a": "1"}),
        ("with-x", {"a": "1", "x-k": "v"}),
        ("wrong-x", {"a": "1", "x-k": "w"}),
    ])
    assert got == [b"with-x", b"end"]


def test_headers_x_match_any_with_x(ch, uid, cleanup):
    x = cleanup.exchange(f"{uid}-h")
    ch.exchange_declare(x, "headers")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "", arguments={"x-match": "any-with-x", "x-k": "v", "a": "1"})
    got = _publish_headers(ch, x, q, [
        ("only-x", {"x-k": "v"}),
        ("only-a", {"a": "1"}),
        ("neither", {"x-k": "w", "a": "2"}),
    ])
    assert got == [b"only-x", b"only-a", b"end"]


# ======================================================================================
# 6. predeclared exchanges


@pytest.mark.parametrize("name", ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"])
def test_predeclared_exchanges_exist(ch, name):
    ch.exchange_declare(name, passive=True)


def test_amq_topic_binding(ch, uid):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", f"{uid}.sensors.*.temp")
    ch.basic_publish("amq.topic", f"{uid}.sensors.kitchen.temp", b"21.5")
    ch.basic_publish("amq.topic", f"{uid}.sensors.kitchen.humidity", b"40")
    ch.basic_publish("", q, b"end")
    m, _, b = get_one(ch, q)
    assert (b, m.exchange, m.routing_key) == (b"21.5", "amq.topic", f"{uid}.sensors.kitchen.temp")
    assert get_all(ch, q) == [b"end"]
    ch.queue_unbind(q, "amq.topic", f"{uid}.sensors.*.temp")


# ======================================================================================
# 7. consumers


def test_consume_server_tag_and_own_tag(ch, conn, uid):
    q = ch.queue_declare("", exclusive=True).method.queue
    a, b = Collector(), Collector()
    tag_a = ch.basic_consume(q, a, auto_ack=True)
    assert tag_a.startswith("ctag"), tag_a  # pika's own; server tags are tested below
    own = f"{uid}-tag"
    assert ch.basic_consume(q, b, auto_ack=True, consumer_tag=own) == own
    # an empty tag lets the server name the consumer (raw basic.consume, pika always names it)
    got = {}
    ch._impl._rpc(pika.spec.Basic.Consume(queue=q, consumer_tag="", no_ack=True),
                  lambda frame: got.setdefault("tag", frame.method.consumer_tag),
                  [pika.spec.Basic.ConsumeOk])
    pump_until(conn, lambda: "tag" in got, what="consume-ok")
    assert got["tag"].startswith("amq.ctag-"), got
    ch._impl._rpc(pika.spec.Basic.Cancel(consumer_tag=got["tag"]), None, [])
    ch.basic_cancel(tag_a)
    ch.basic_publish("", q, b"x")
    items = b.wait(conn, 1)
    assert items[0][0].consumer_tag == own
    assert a.items == []


def test_consume_round_robin(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    a, b = Collector(), Collector()
    ch.basic_consume(q, a, auto_ack=True)
    ch.basic_consume(q, b, auto_ack=True)
    for i in range(6):
        ch.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(a.items) + len(b.items) == 6, what="6 deliveries")
    assert len(a.items) == 3 and len(b.items) == 3, (a.bodies, b.bodies)
    assert sorted(a.bodies + b.bodies) == [b"%d" % i for i in range(6)]


def test_consume_no_ack(amqp, uid):
    c = amqp()
    ch = c.channel()
    q = ch.queue_declare(f"{uid}-q", exclusive=True).method.queue
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    col.wait(c, 3)
    assert col.bodies == [b"0", b"1", b"2"]
    ch.close()  # nothing unacked: nothing comes back
    ok = c.channel().queue_declare(q, passive=True).method
    assert ok.message_count == 0


def test_exclusive_consumer_403(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    ch2 = conn.channel()
    e = channel_error(ch2, lambda: ch2.basic_consume(q, lambda *a: None))
    assert_code(e, 403, "ACCESS_REFUSED", "exclusive use")
    round_trip(conn)


def test_consume_then_exclusive_consumer_403(conn, uid, cleanup):
    q = cleanup.queue(f"{uid}-q")
    ch = conn.channel()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    e = channel_error(ch2, lambda: ch2.basic_consume(q, lambda *a: None, exclusive=True))
    assert_code(e, 403, "ACCESS_REFUSED")
    round_trip(conn)


def test_cancel_stops_deliveries(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    col = Collector()
    tag = ch.basic_consume(q, col, auto_ack=True)
    ch.basic_publish("", q, b"1")
    col.wait(conn, 1)
    ch.basic_cancel(tag)
    assert tag not in ch.consumer_tags
    ch.basic_publish("", q, b"2")
    assert get_one(ch, q)[2] == b"2"  # stayed in the queue
    assert col.bodies == [b"1"]


def test_server_cancel_when_queue_deleted(amqp, uid):
    c = amqp()
    ch = c.channel()
    q = ch.queue_declare(f"{uid}-q").method.queue
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    amqp().channel().queue_delete(q)
    pump_until(c, lambda: cancelled, what="server basic.cancel")
    assert cancelled == [tag]
    assert ch.is_open
    round_trip(c)


def test_consumer_generator_ends_on_server_cancel(amqp, uid):
    c = amqp()
    ch = c.channel()
    q = ch.queue_declare(f"{uid}-q").method.queue
    ch.basic_publish("", q, b"first")
    got = []
    deleter = amqp().channel()
    deadline = time.monotonic() + WAIT
    for m, p, b in ch.consume(q, auto_ack=True, inactivity_timeout=0.1):
        assert time.monotonic() < deadline, "generator did not end"
        if m is None:
            continue
        got.append(b)
        deleter.queue_delete(q)
    assert got == [b"first"]  # the generator returned after the broker's cancel


def test_consumer_priorities(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    low, high = Collector(), Collector()
    ch.basic_consume(q, low, auto_ack=True, arguments={"x-priority": 1})
    ch.basic_consume(q, high, auto_ack=True, arguments={"x-priority": 10})
    for i in range(4):
        ch.basic_publish("", q, b"%d" % i)
    high.wait(conn, 4)
    pump_for(conn, 0.2)
    assert low.items == []


# ======================================================================================
# 8. qos


def test_prefetch_count_one(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=1)
    col = Collector()
    ch.basic_consume(q, col)
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    col.wait(conn, 1)
    pump_for(conn, 0.3)
    assert col.bodies == [b"1"]
    ch.basic_ack(col.items[0][0].delivery_tag)
    col.wait(conn, 2)
    assert col.bodies == [b"1", b"2"]


def test_prefetch_global_shared_by_consumers(conn, ch):
    qa, qb = _queues(ch, 2)
    ch.basic_qos(prefetch_count=1, global_qos=True)
    col = Collector()
    ch.basic_consume(qa, col)
    ch.basic_consume(qb, col)
    ch.basic_publish("", qa, b"a")
    ch.basic_publish("", qb, b"b")
    col.wait(conn, 1)
    pump_for(conn, 0.3)
    assert len(col.items) == 1, col.bodies  # one for the whole channel
    ch.basic_ack(col.items[0][0].delivery_tag)
    col.wait(conn, 2)
    assert sorted(col.bodies) == [b"a", b"b"]


def test_prefetch_per_consumer(conn, ch):
    qa, qb = _queues(ch, 2)
    ch.basic_qos(prefetch_count=1)  # global=false: per consumer (RabbitMQ)
    col = Collector()
    ch.basic_consume(qa, col)
    ch.basic_consume(qb, col)
    for q in (qa, qb):
        ch.basic_publish("", q, b"1")
        ch.basic_publish("", q, b"2")
    col.wait(conn, 2)
    pump_for(conn, 0.3)
    assert sorted(col.bodies) == [b"1", b"1"]


def test_prefetch_size_not_implemented_540(amqp):
    c = amqp()
    ch = c.channel()
    e = connection_error(c, lambda: ch.basic_qos(prefetch_size=1024, prefetch_count=1))
    assert_code(e, 540, "NOT_IMPLEMENTED")
    assert not c.is_open
    round_trip(amqp())


# ======================================================================================
# 9. ack / nack / reject / recover


def _deliver_n(conn, ch, n, prefix=b""):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i)
    col = Collector()
    tag = ch.basic_consume(q, col)
    col.wait(conn, n)
    return q, col, tag


def test_ack_multiple(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 4)
    ch.basic_ack(col.items[2][0].delivery_tag, multiple=True)  # acks 1..3
    ch.basic_cancel(tag)
    ch.close()  # the 4th is requeued
    ch = c.channel()
    m, _, b = get_one(ch, q)
    assert (b, m.redelivered) == (b"3", True)
    assert is_empty(ch, q)


def test_nack_requeue_redelivered(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 1)
    m0 = col.items[0][0]
    assert m0.redelivered is False
    ch.basic_nack(m0.delivery_tag, requeue=True)
    col.wait(c, 2)
    m1, _, b1 = col.items[1]
    assert (b1, m1.redelivered) == (b"0", True)
    assert m1.delivery_tag != m0.delivery_tag
    ch.basic_ack(m1.delivery_tag)


def test_nack_multiple_no_requeue(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 3)
    ch.basic_nack(col.items[2][0].delivery_tag, multiple=True, requeue=False)
    ch.basic_cancel(tag)
    assert is_empty(ch, q)


def test_reject_without_requeue_discards(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 1)
    ch.basic_reject(col.items[0][0].delivery_tag, requeue=False)
    ch.basic_cancel(tag)
    ch.close()
    assert is_empty(c.channel(), q)


def test_reject_requeue(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 1)
    ch.basic_cancel(tag)
    ch.basic_reject(col.items[0][0].delivery_tag, requeue=True)
    m, _, b = get_one(ch, q)
    assert (b, m.redelivered) == (b"0", True)


def test_unknown_delivery_tag_406(conn):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.basic_ack(999))
    assert_code(e, 406, "PRECONDITION_FAILED", "unknown delivery tag 999")
    round_trip(conn)


def test_double_ack_406(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"x")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_ack(m.delivery_tag)
    e = channel_error(ch, lambda: ch.basic_ack(m.delivery_tag))
    assert_code(e, 406, "PRECONDITION_FAILED", f"unknown delivery tag {m.delivery_tag}")
    round_trip(conn)


def test_recover_requeue_redelivers_unacked(amqp):
    c = amqp()
    ch = c.channel()
    q, col, tag = _deliver_n(c, ch, 2)
    assert [m.redelivered for m, _, _ in col.items] == [False, False]
    ch.basic_recover(requeue=True)
    col.wait(c, 4)
    again = col.items[2:]
    assert sorted(b for _, _, b in again) == [b"0", b"1"]
    assert all(m.redelivered for m, _, _ in again)
    ch.basic_ack(0, multiple=True)


# ======================================================================================
# 10. mandatory / immediate


def test_mandatory_unroutable_returned_in_confirm_mode(ch, uid):
    ch.confirm_delivery()
    with pytest.raises(pex.UnroutableError) as ei:
        ch.basic_publish("amq.direct", f"{uid}-nobody", b"lost", mandatory=True)
    (ret,) = ei.value.messages
    assert (ret.method.reply_code, ret.method.reply_text) == (312, "NO_ROUTE")
    assert (ret.method.exchange, ret.method.routing_key, ret.body) == ("amq.direct", f"{uid}-nobody", b"lost")
    # not mandatory: silently dropped, still confirmed
    ch.basic_publish("amq.direct", f"{uid}-nobody", b"dropped")


def test_mandatory_return_callback(conn, ch, uid):
    returned = []
    ch.add_on_return_callback(lambda _ch, method, p, body: returned.append((method, p, body)))
    ch.basic_publish("", f"{uid}-no-such-queue", b"back", props(content_type="text/plain"), mandatory=True)
    pump_until(conn, lambda: returned, what="basic.return")
    method, p, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == \
           (312, "NO_ROUTE", "", f"{uid}-no-such-queue")
    assert (body, p.content_type) == (b"back", "text/plain")


def test_immediate_not_implemented_540(amqp):
    c = amqp()
    ch = c.channel()

    def publish_immediate():
        ch._impl._send_method(pika.spec.Basic.Publish(exchange="", routing_key="x", immediate=True),
                              (pika.BasicProperties(), b"now"))

    e = connection_error(c, publish_immediate)
    assert_code(e, 540, "NOT_IMPLEMENTED", "immediate")
    round_trip(amqp())


# ======================================================================================
# 11. publisher confirms


def test_confirms_ack(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)  # each waits for its basic.ack (raises on nack)
    assert ch.queue_declare(q, passive=True).method.message_count == 5


def test_confirms_delivery_tags_async(conn, ch):
    """The raw confirm stream: delivery tags 1..n in publish order (acks may be multiple)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    acked = set()

    def on_ack(frame):
        m = frame.method
        if m.multiple:
            acked.update(range(1, m.delivery_tag + 1))
        else:
            acked.add(m.delivery_tag)

    ch._impl.confirm_delivery(ack_nack_callback=on_ack)
    pump_for(conn, 0.1)
    for i in range(10):
        ch._impl.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: acked >= set(range(1, 11)), what="acks for tags 1..10")
    assert acked == set(range(1, 11))


def test_confirms_nack_reject_publish(ch):
    q = ch.queue_declare("", exclusive=True,
                         arguments={"x-max-length": 2, "x-overflow": "reject-publish"}).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    with pytest.raises(pex.NackError):
        ch.basic_publish("", q, b"3")
    assert get_all(ch, q) == [b"1", b"2"]
    ch.basic_publish("", q, b"4")  # room again


def test_tx_after_confirm_406(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    e = channel_error(ch, ch.tx_select)
    assert_code(e, 406, "PRECONDITION_FAILED", "cannot switch from confirm to tx mode")
    round_trip(conn)


def test_confirm_after_tx_406(conn):
    ch = conn.channel()
    ch.tx_select()
    e = channel_error(ch, ch.confirm_delivery)
    assert_code(e, 406, "PRECONDITION_FAILED", "cannot switch from tx to confirm mode")
    round_trip(conn)


# ======================================================================================
# 12. transactions


def test_tx_rollback_and_commit(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", q, b"rolled-back")
    assert is_empty(ch, q)  # not visible before commit
    ch.tx_rollback()
    ch.basic_publish("", q, b"committed")
    ch.tx_commit()
    assert get_all(ch, q) == [b"committed"]
    ch.tx_commit()  # an empty commit is fine


def test_tx_ack_takes_effect_on_commit(amqp):
    c = amqp()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    tx = c.channel()
    tx.tx_select()
    ma, _, ba = get_one(tx, q, auto_ack=False)
    mb, _, bb = get_one(tx, q, auto_ack=False)
    assert (ba, bb) == (b"a", b"b")
    tx.basic_ack(ma.delivery_tag)
    tx.tx_commit()      # "a" is acked
    tx.basic_ack(mb.delivery_tag)
    tx.tx_rollback()    # the ack of "b" is discarded; "b" stays unacked
    tx.close()          # ... and comes back when the channel closes
    m, _, b = get_one(ch, q)
    assert (b, m.redelivered) == (b"b", True)
    assert is_empty(ch, q)


# ======================================================================================
# 13. TTL / expiry


def test_queue_message_ttl(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-message-ttl": 200}).method.queue
    ch.basic_publish("", q, b"short-lived")
    time.sleep(0.4)
    assert is_empty(ch, q)
    ch.basic_publish("", q, b"fresh")
    assert get_one(ch, q)[2] == b"fresh"


def test_per_message_expiration(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"short", props(expiration="200"))
    ch.basic_publish("", q, b"long", props(expiration="60000"))
    time.sleep(0.4)
    m, p, b = get_one(ch, q)
    assert (b, p.expiration) == (b"long", "60000")
    assert is_empty(ch, q)


def test_queue_expires(amqp, uid, cleanup):
    c = amqp()
    q = cleanup.queue(f"{uid}-lease")
    c.channel().queue_declare(q, arguments={"x-expires": 300})
    assert passive_queue(c, q) == (0, 0)
    time.sleep(0.3)
    wait_queue_gone(c, q, timeout=3)
    round_trip(c)


def _dlx(ch, uid, cleanup, **args):
    dlx = cleanup.exchange(f"{uid}-dlx")
    ch.exchange_declare(dlx, "direct")
    dlq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dlq, dlx, "dead")
    arguments = {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"}
    arguments.update(args)
    q = ch.queue_declare(f"{uid}-src", exclusive=True, arguments=arguments).method.queue
    return dlx, dlq, q


def test_expired_message_dead_lettered(ch, uid, cleanup):
    dlx, dlq, q = _dlx(ch, uid, cleanup)
    ch.basic_publish("", q, b"expires", props(expiration="100", headers={"k": "v"}))
    m, p, b = get_one(ch, dlq, timeout=3)  # classic queues expire the head on a timer
    assert (b, m.exchange, m.routing_key) == (b"expires", dlx, "dead")
    assert p.expiration is None  # removed: the dead-lettered copy does not expire again
    assert p.headers["k"] == "v"
    (death,) = p.headers["x-death"]
    assert death["reason"] == "expired"
    assert death["queue"] == q
    assert death["exchange"] == ""
    assert death["routing-keys"] == [q]
    assert death["count"] == 1
    assert death["original-expiration"] == "100"
    assert isinstance(death["time"], datetime.datetime)
    assert p.headers["x-first-death-reason"] == "expired"
    assert p.headers["x-first-death-queue"] == q
    assert p.headers["x-first-death-exchange"] == ""


def test_queue_ttl_dead_letter(ch, uid, cleanup):
    dlx, dlq, q = _dlx(ch, uid, cleanup, **{"x-message-ttl": 100})
    ch.basic_publish("", q, b"expires")
    m, p, b = get_one(ch, dlq, timeout=3)
    (death,) = p.headers["x-death"]
    assert (b, death["reason"], death["queue"]) == (b"expires", "expired", q)
    assert "original-expiration" not in death


# ======================================================================================
# 14. dead-lettering


def test_reject_dead_letters_with_x_death(conn, ch, uid, cleanup):
    dlx, dlq, q = _dlx(ch, uid, cleanup)
    ch.basic_publish("", q, b"bad", props(message_id="m1"))
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert (b, m.exchange, m.routing_key, p.message_id) == (b"bad", dlx, "dead", "m1")
    (death,) = p.headers["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == q
    assert death["exchange"] == ""
    assert death["routing-keys"] == [q]
    assert isinstance(death["time"], datetime.datetime)
    assert "original-expiration" not in death
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-queue"] == q
    assert p.headers["x-first-death-exchange"] == ""


def test_nack_dead_letters_keeps_routing_key_without_dlrk(ch, uid, cleanup):
    dlx = cleanup.exchange(f"{uid}-dlx")
    ch.exchange_declare(dlx, "fanout")
    dlq = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(dlq, dlx)
    src = cleanup.exchange(f"{uid}-src")
    ch.exchange_declare(src, "topic")
    q = ch.queue_declare("", exclusive=True, arguments={"x-dead-letter-exchange": dlx}).method.queue
    ch.queue_bind(q, src, "orders.*")
    ch.basic_publish(src, "orders.new", b"o1")
    m, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, dlq)
    assert (b, m.exchange, m.routing_key) == (b"o1", dlx, "orders.new")  # original key kept
    (death,) = p.headers["x-death"]
    assert (death["reason"], death["exchange"], death["routing-keys"]) == ("rejected", src, ["orders.new"])


def test_dead_letter_count_increments(ch, uid, cleanup):
    # a -> (reject) -> dlx -> a again: the same x-death entry counts up
    dlx = cleanup.exchange(f"{uid}-dlx")
    ch.exchange_declare(dlx, "fanout")
    q = ch.queue_declare("", exclusive=True, arguments={"x-dead-letter-exchange": dlx}).method.queue
    ch.queue_bind(q, dlx)
    ch.basic_publish("", q, b"loop")
    for n in (1, 2):
        m, p, _ = get_one(ch, q, auto_ack=False)
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, b = get_one(ch, q)
    (death,) = p.headers["x-death"]
    assert (death["count"], death["reason"], death["queue"]) == (2, "rejected", q)


def test_maxlen_dead_letters(ch, uid, cleanup):
    dlx, dlq, q = _dlx(ch, uid, cleanup, **{"x-max-length": 1})
    ch.basic_publish("", q, b"old")
    ch.basic_publish("", q, b"new")
    m, p, b = get_one(ch, dlq)
    (death,) = p.headers["x-death"]
    assert (b, death["reason"], death["queue"]) == (b"old", "maxlen", q)
    assert p.headers["x-first-death-reason"] == "maxlen"
    assert get_all(ch, q) == [b"new"]


# ======================================================================================
# 15. length limits


def test_max_length_drop_head(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-length": 2}).method.queue
    ch.confirm_delivery()  # the count below is read only after every publish is enqueued
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    assert get_all(ch, q) == [b"3", b"4"]


def test_max_length_bytes(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-length-bytes": 10}).method.queue
    for b in (b"aaaa", b"bbbb", b"cccc"):  # 12 bytes > 10: the head goes
        ch.basic_publish("", q, b)
    assert get_all(ch, q) == [b"bbbb", b"cccc"]
    ch.basic_publish("", q, b"x" * 11)  # alone larger than the limit: dropped as well
    ch.basic_publish("", q, b"end")
    assert get_all(ch, q) == [b"end"]


# ======================================================================================
# 16. priority queues


def test_priority_queue_order(ch):
    q = ch.queue_declare("", exclusive=True, arguments={"x-max-priority": 10}).method.queue
    for pr in (1, 9, 5):
        ch.basic_publish("", q, b"p%d" % pr, props(priority=pr))
    ch.basic_publish("", q, b"none")  # no priority = 0
    ch.basic_publish("", q, b"p200", props(priority=200))  # above max: treated as max (10)
    assert get_all(ch, q) == [b"p200", b"p9", b"p5", b"p1", b"none"]


# ======================================================================================
# 17. properties


def _user(amqp_url):
    return unquote(urlparse(amqp_url).username or "guest")


RICH_HEADERS = {
    "str": "text ünïcödé",
    "int": 42,
    "neg": -7,
    "big": 2 ** 40,
    "true": True,
    "false": False,
    # no float: pika 1.3.2 cannot encode one (UnsupportedAMQPFieldException); it decodes f/d
    "bytes": b"\x00\x01\xff",
    "nested": {"a": "b", "n": 1, "deeper": {"x": [1, "two"]}},
    "list": [1, "a", True, -3, {"k": "v"}],
    "none": None,
    "decimal": decimal.Decimal("3.14"),
    "neg-decimal": decimal.Decimal("-12.5"),
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "empty": "",
}


def test_all_properties_round_trip(ch, amqp_url):
    q = ch.queue_declare("", exclusive=True).method.queue
    sent = dict(
        content_type="application/json",
        content_encoding="gzip",
        headers=RICH_HEADERS,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-1",
        reply_to="some.reply.queue",
        expiration="60000",
        message_id="msg-1",
        timestamp=1700000000,
        type="order.created",
        user_id=_user(amqp_url),
        app_id="interop-tests",
        cluster_id="cluster-a",
    )
    ch.basic_publish("", q, b"{}", pika.BasicProperties(**sent))
    _, p, b = get_one(ch, q)
    assert b == b"{}"
    got = {k: getattr(p, k) for k in sent}
    for k, v in sent.items():
        if k == "headers":
            for hk, hv in RICH_HEADERS.items():
                assert got["headers"][hk] == hv, f"header {hk}: {got['headers'][hk]!r} != {hv!r}"
                # (pika decodes a 64-bit "l" as pika.compat.long, an int subclass)
                assert isinstance(got["headers"][hk], type(hv)), f"header {hk}: {got['headers'][hk]!r}"
            assert set(got["headers"]) == set(RICH_HEADERS)
        else:
            assert got[k] == v, f"{k}: {got[k]!r} != {v!r}"


def test_no_properties_stay_absent(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"bare")
    _, p, _ = get_one(ch, q)
    for k in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
              "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
              "user_id", "app_id", "cluster_id"):
        assert getattr(p, k) is None, f"{k} invented: {getattr(p, k)!r}"


def test_user_id_mismatch_406(conn, amqp_url):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"ok", props(user_id=_user(amqp_url)))
    assert get_one(ch, q)[1].user_id == _user(amqp_url)
    e = channel_error(ch, lambda: ch.basic_publish("", q, b"spoofed", props(user_id="other")))
    assert_code(e, 406, "PRECONDITION_FAILED", "user_id property set to 'other'")
    round_trip(conn)


# ======================================================================================
# 18. large messages


def test_large_message_round_trip(conn, ch):
    frame_max = conn._impl.params.frame_max
    q = ch.queue_declare("", exclusive=True).method.queue
    body = bytes(range(256)) * (MIB // 256)
    assert len(body) > 4 * frame_max
    ch.basic_publish("", q, body, props(message_id="big"))
    _, p, b = get_one(ch, q)
    assert (len(b), p.message_id) == (len(body), "big")
    assert b == body
    col = Collector()
    ch.basic_consume(q, col, auto_ack=True)
    ch.basic_publish("", q, body)
    assert col.wait(conn, 1)[0][2] == body


def _max_message_size():
    """dwbroker's documented AMQP limit (16 MiB); another server's only if given."""
    v = os.environ.get("DWBROKER_AMQP_MAX_MESSAGE_SIZE")
    if v:
        return int(v)
    if external_amqp():
        pytest.skip("the limit of the server at DWBROKER_AMQP_URL is unknown (RabbitMQ 3.10 defaults "
                    "to 128 MiB, dwbroker to 16 MiB): set DWBROKER_AMQP_MAX_MESSAGE_SIZE to run this")
    return 16 * MIB


def test_message_above_max_size_406(conn):
    limit = _max_message_size()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"\x01" * limit)  # exactly the limit is accepted
    assert len(get_one(ch, q, timeout=15)[2]) == limit
    e = channel_error(ch, lambda: ch.basic_publish("", q, b"\x00" * (limit + 1)), timeout=15)
    assert_code(e, 406, "PRECONDITION_FAILED", "larger than")
    round_trip(conn)


# ======================================================================================
# 19. direct reply-to


def test_direct_reply_to(amqp, uid):
    req_c, resp_c = amqp(), amqp()
    req, resp = req_c.channel(), resp_c.channel()
    rq = resp.queue_declare(f"{uid}-rpc", exclusive=True).method.queue
    replies = Collector()
    req.basic_consume("amq.rabbitmq.reply-to", replies, auto_ack=True)
    req.basic_publish("", rq, b"ping", props(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
    _, p, b = get_one(resp, rq)
    assert b == b"ping"
    assert p.reply_to.startswith("amq.rabbitmq.reply-to."), p.reply_to
    resp.basic_publish("", p.reply_to, b"pong", props(correlation_id=p.correlation_id))
    m, rp, rb = replies.wait(req_c, 1)[0]
    assert (rb, rp.correlation_id) == (b"pong", "c1")


def test_direct_reply_to_without_consumer_406(conn):
    ch = conn.channel()
    e = channel_error(ch, lambda: ch.basic_publish("", "x", b"x", props(reply_to="amq.rabbitmq.reply-to")))
    assert_code(e, 406, "PRECONDITION_FAILED", "fast reply consumer does not exist")
    round_trip(conn)


# ======================================================================================
# 20. channel isolation


def test_channel_error_isolated(amqp, uid):
    c = amqp()
    ch1, ch2 = c.channel(), c.channel()
    q = ch2.queue_declare("", exclusive=True).method.queue
    other = amqp()
    och = other.channel()
    oq = och.queue_declare("", exclusive=True).method.queue
    col = Collector()
    och.basic_consume(oq, col, auto_ack=True)
    e = channel_error(ch1, lambda: ch1.queue_declare(f"{uid}-missing", passive=True))
    assert_code(e, 404)
    assert ch1.is_closed and ch2.is_open and c.is_open
    ch2.basic_publish("", q, b"still-works")
    assert get_one(ch2, q)[2] == b"still-works"
    ch2.basic_publish("", oq, b"to-other")
    assert col.wait(other, 1)[0][2] == b"to-other"
    round_trip(c)


# ======================================================================================
# 21. amqp-tools CLI (librabbitmq)


def _cli(name, *args, input=None, timeout=10):
    exe = shutil.which(name)
    assert exe, (f"{name} not installed: the Debian package amqp-tools is required "
                 "(.ci/run installs amqp-tools; locally: apt-get install -y amqp-tools)")
    return subprocess.run([exe, *args], input=input, capture_output=True, timeout=timeout)


def test_amqp_tools_cli(amqp, amqp_url, uid):
    # librabbitmq: no trailing slash (that would be vhost ""), %2f for "/"
    url = amqp_url.rstrip("/")
    url = url[:-3] + "%2f" if url.lower().endswith("/%2f") else url
    q = f"{uid}-cli"
    r = _cli("amqp-declare-queue", f"--url={url}", "-q", q)
    assert r.returncode == 0, r
    assert r.stdout.decode().strip() == q
    try:
        r = _cli("amqp-publish", f"--url={url}", "-r", q, "-p", "-C", "text/plain", input=b"hello cli")
        assert r.returncode == 0, r
        ch = amqp().channel()
        m, p, b = get_one(ch, q)
        assert (b, p.content_type, p.delivery_mode) == (b"hello cli", "text/plain", 2)

        r = _cli("amqp-publish", f"--url={url}", "-r", q, "-b", "via get")
        assert r.returncode == 0, r
        deadline = time.monotonic() + WAIT  # another connection: the enqueue may lag the exit
        while (r := _cli("amqp-get", f"--url={url}", "-q", q)).returncode == 2 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (r.returncode, r.stdout) == (0, b"via get"), r
        r = _cli("amqp-get", f"--url={url}", "-q", q)
        assert r.returncode == 2, r  # empty queue

        r = _cli("amqp-publish", f"--url={url}", "-r", q, "-b", "via consume")
        assert r.returncode == 0, r
        r = _cli("amqp-consume", f"--url={url}", "-q", q, "-c", "1", "cat")
        assert (r.returncode, r.stdout) == (0, b"via consume"), r
    finally:
        r = _cli("amqp-delete-queue", f"--url={url}", "-q", q)
    assert r.returncode == 0, r
    c = amqp()
    e = passive_queue(c, q)
    assert isinstance(e, pex.ChannelClosedByBroker) and e.reply_code == 404, e


# ======================================================================================
# 22. cross-protocol (dwbroker only)


def _bind_topic(ch, key):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", key)
    return q


@needs_dwbroker
def test_mqtt_to_amqp_topic(broker, clients, amqp, uid):
    ch = amqp().channel()
    q = _bind_topic(ch, f"{uid}.sensors.*.temp")
    m = clients(broker, f"{uid}-pub")
    m.publish(f"{uid}/sensors/x/temp", b"21.5", qos=1)
    m.publish(f"{uid}/sensors/x/hum", b"40", qos=1)
    m.publish(f"{uid}/sensors/y/temp", b"end", qos=1)
    method, p, b = get_one(ch, q)
    assert (b, method.exchange, method.routing_key) == (b"21.5", "amq.topic", f"{uid}.sensors.x.temp")
    assert get_one(ch, q)[2] == b"end"
    assert is_empty(ch, q)


@needs_dwbroker
def test_amqp_to_mqtt_topic(broker, clients, amqp, uid):
    sub = clients(broker, f"{uid}-sub")
    assert sub.subscribe(f"{uid}/a/+", qos=1) == [1]
    ch = amqp().channel()
    ch.basic_publish("amq.topic", f"{uid}.a.b", b"hello mqtt")
    ch.basic_publish("amq.topic", f"{uid}.b.b", b"not for a/+")
    ch.basic_publish("amq.topic", f"{uid}.a.end", b"end")
    msg = sub.get()
    assert (msg.topic, msg.payload) == (f"{uid}/a/b", b"hello mqtt")
    assert sub.until(f"{uid}/a/end") == []


@needs_dwbroker
def test_amqp_properties_to_mqtt5(broker, clients, amqp, uid):
    sub = clients(broker, f"{uid}-sub")
    sub.subscribe(f"{uid}/p", qos=1)
    ch = amqp().channel()
    ch.basic_publish("amq.topic", f"{uid}.p", b"{}", props(
        content_type="application/json", correlation_id="corr-7", reply_to=f"{uid}.replies",
        headers={"k": "v", "n": 5}, expiration="60000", priority=3, message_id="mid-1",
        timestamp=1700000000))
    msg = sub.get()
    assert msg.payload == b"{}"
    assert msg.prop("ContentType") == "application/json"
    assert msg.prop("CorrelationData") == b"corr-7"
    assert msg.prop("ResponseTopic"), "reply_to not carried as a Response Topic"
    ups = dict(msg.prop("UserProperty", []))
    assert ups.get("k") == "v" and ups.get("n") == "5", ups
    assert 55 <= msg.prop("MessageExpiryInterval", 0) <= 60
    # MQTT has no priority / message id / timestamp: dropped, never turned into user properties
    assert not {"priority", "message-id", "message_id", "timestamp"} & {k.lower() for k in ups}, ups


@needs_dwbroker
def test_mqtt5_properties_to_amqp(broker, clients, amqp, uid):
    ch = amqp().channel()
    q = _bind_topic(ch, f"{uid}.p")
    pub = clients(broker, f"{uid}-pub")
    pub.publish(f"{uid}/p", b"{}", qos=1, props=publish_props(
        ContentType="application/json", CorrelationData=b"corr-8", ResponseTopic=f"{uid}/replies",
        UserProperty=[("k", "v")], MessageExpiryInterval=60))
    m, p, b = get_one(ch, q)
    assert b == b"{}"
    assert p.content_type == "application/json"
    assert p.correlation_id == "corr-8"
    assert p.reply_to and p.reply_to.startswith("amq.rabbitmq.reply-to."), p.reply_to
    assert p.headers and p.headers.get("k") == "v", p.headers
    assert p.expiration is not None and 55000 <= int(p.expiration) <= 60000, p.expiration
    assert (p.priority, p.message_id, p.timestamp) == (None, None, None)  # never invented


@needs_dwbroker
def test_mqtt_request_amqp_responder(broker, clients, amqp, uid):
    """An MQTT requester's Response Topic reaches an AMQP responder as a direct reply-to name."""
    ch = amqp().channel()
    q = _bind_topic(ch, f"{uid}.req")
    requester = clients(broker, f"{uid}-req")
    requester.subscribe(f"{uid}/replies", qos=1)
    requester.publish(f"{uid}/req", b"ping", qos=1,
                      props=publish_props(ResponseTopic=f"{uid}/replies", CorrelationData=b"c9"))
    _, p, b = get_one(ch, q)
    assert b == b"ping"
    ch.basic_publish("", p.reply_to, b"pong", props(correlation_id=p.correlation_id))
    msg = requester.get()
    assert (msg.topic, msg.payload, msg.prop("CorrelationData")) == (f"{uid}/replies", b"pong", b"c9")


@needs_dwbroker
def test_amqp_request_mqtt_responder(broker, clients, amqp, uid):
    c = amqp()
    ch = c.channel()
    replies = Collector()
    ch.basic_consume("amq.rabbitmq.reply-to", replies, auto_ack=True)
    responder = clients(broker, f"{uid}-resp")
    responder.subscribe(f"{uid}/svc", qos=1)
    ch.basic_publish("amq.topic", f"{uid}.svc", b"ping",
                     props(reply_to="amq.rabbitmq.reply-to", correlation_id="c10"))
    req = responder.get()
    rt = req.prop("ResponseTopic")
    assert rt, "no Response Topic"
    responder.publish(rt, b"pong", qos=1, props=publish_props(CorrelationData=req.prop("CorrelationData")))
    _, p, b = replies.wait(c, 1)[0]
    assert (b, p.correlation_id) == (b"pong", "c10")


def _nats_run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@needs_dwbroker
def test_amqp_to_nats(broker, amqp, uid):
    import nats

    async def go():
        nc = await asyncio.wait_for(nats.connect(broker.nats_url, allow_reconnect=False), WAIT)
        try:
            sub = await nc.subscribe(f"{uid}.a.>")
            await nc.flush(timeout=WAIT)
            ch = amqp().channel()
            ch.basic_publish("amq.topic", f"{uid}.a.b.c", b"to nats", props(
                content_type="text/plain", correlation_id="c1", message_id="m1",
                headers={"k": "v"}))
            m = await sub.next_msg(timeout=WAIT)
            assert (m.subject, m.data) == (f"{uid}.a.b.c", b"to nats")
            h = m.headers or {}
            assert h.get("Content-Type") == "text/plain", h
            assert h.get("Correlation-Id") == "c1", h
            assert h.get("Nats-Msg-Id") == "m1", h
            assert h.get("k") == "v", h
        finally:
            await nc.close()

    _nats_run(go())


@needs_dwbroker
def test_nats_to_amqp(broker, amqp, uid):
    import nats

    ch = amqp().channel()
    q = _bind_topic(ch, f"{uid}.n.*")

    async def go():
        nc = await asyncio.wait_for(nats.connect(broker.nats_url, allow_reconnect=False), WAIT)
        try:
            await nc.publish(f"{uid}.n.x", b"from nats", reply=f"{uid}.inbox",
                             headers={"Content-Type": "text/plain", "Nats-Msg-Id": "m2", "k": "v"})
            await nc.publish(f"{uid}.other", b"no")
            await nc.flush(timeout=WAIT)
        finally:
            await nc.close()

    _nats_run(go())
    m, p, b = get_one(ch, q)
    assert (b, m.exchange, m.routing_key) == (b"from nats", "amq.topic", f"{uid}.n.x")
    assert p.content_type == "text/plain"
    assert p.message_id == "m2"
    assert p.headers and p.headers.get("k") == "v", p.headers
    assert p.reply_to and p.reply_to.startswith("amq.rabbitmq.reply-to."), p.reply_to
    assert is_empty(ch, q)


# --- memory alarm (dwbroker's configured watermark) ------------------------------------------

@pytest.fixture(scope="module")
def watermark_broker(tmp_path_factory):
    from conftest import start_broker, stop_broker

    b = start_broker("[limits]\nmemory_high_watermark = 65536\n", tmp_path_factory.mktemp("cfg"))
    yield b
    stop_broker(b)


@needs_dwbroker
def test_memory_alarm_blocks_publishers_and_unblocks(watermark_broker, uid):
    """Past the high watermark of queued bytes a publishing connection gets connection.blocked
    and is no longer read; when consumers drain the queues below 80 % it gets unblocked and its
    held publishes go through: nothing is dropped."""
    p = pika.URLParameters(watermark_broker.amqp_url)
    p.socket_timeout = p.stack_timeout = 5
    pub = pika.BlockingConnection(p)
    events = []
    pub.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
    pub.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
    ch = pub.channel()
    q = f"{uid}-mem"
    ch.queue_declare(q, auto_delete=False)
    body = b"x" * 1024
    for _ in range(100):  # ~100 KiB + overhead, past the 64 KiB watermark
        ch.basic_publish("", q, body)
    pump_until(pub, lambda: "blocked" in events, WAIT, "connection.blocked")
    # A second connection drains the queue; the first is then unblocked.
    drain = pika.BlockingConnection(p)
    dch = drain.channel()
    got = 0
    deadline = time.monotonic() + WAIT
    while "unblocked" not in events and time.monotonic() < deadline:
        m, _, _ = dch.basic_get(q, auto_ack=True)
        got += m is not None
        pump_for(pub, 0.01)
    assert "unblocked" in events, f"no connection.unblocked after draining {got} messages"
    # Every publish arrives: the blocked ones were held in the socket, not dropped.
    deadline = time.monotonic() + WAIT
    while got < 100 and time.monotonic() < deadline:
        m, _, _ = dch.basic_get(q, auto_ack=True)
        if m is None:
            pump_for(pub, 0.05)
        got += m is not None
    assert got == 100
    dch.queue_delete(q)
    drain.close()
    pub.close()
