"""dwbroker's NATS core listener driven by nats-py (and raw protocol lines where nats-py
would hide what the server did), plus MQTT <-> NATS through the shared router.

Every test runs its own coroutine with ``asyncio.run`` and uses subjects made unique by
the ``uid`` fixture.  Every wait is bounded; absence checks publish a sentinel after the
message that must not arrive and wait for the sentinel (delivery on one connection is
ordered), then allow a short quiet period.  JetStream is not part of this suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import nats
import nats.errors
import pytest

from conftest import start_broker, stop_broker
from helpers import QUIET, WAIT, bounded_async, publish_props

# Each test coroutine as a whole is bounded too (pytest-timeout is the last resort).
TEST_BUDGET = 20.0


run = bounded_async(TEST_BUDGET)


@contextlib.asynccontextmanager
async def nats_conn(broker, **kw):
    """A nats-py connection that never reconnects and is always closed afterwards."""
    opts = dict(connect_timeout=WAIT, allow_reconnect=False, max_reconnect_attempts=0)
    opts.update(kw)
    nc = await asyncio.wait_for(nats.connect(broker.nats_url, **opts), WAIT)
    try:
        yield nc
    finally:
        if not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), WAIT)


async def nothing_more(sub, quiet: float = QUIET):
    """Messages that reach ``sub`` (a callback-less subscription) within ``quiet`` seconds."""
    extra = []
    deadline = time.monotonic() + quiet
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            extra.append(await sub.next_msg(timeout=remaining))
        except nats.errors.TimeoutError:
            break
    return extra


# --------------------------------------------------------------------------------------
# raw protocol lines (what the server itself sends, without nats-py's client-side logic)


class RawNats:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.info: dict = {}

    @classmethod
    async def open(cls, broker, **connect):
        r, w = await asyncio.wait_for(asyncio.open_connection(broker.host, broker.nats_port), WAIT)
        c = cls(r, w)
        line = await c.line()
        assert line.startswith("INFO "), line
        c.info = json.loads(line[5:])
        opts = {"verbose": False, "pedantic": False, "headers": True, "lang": "raw", "version": "0"}
        opts.update(connect)
        await c.send(f"CONNECT {json.dumps(opts)}\r\nPING\r\n")
        assert await c.line() == "PONG"
        return c

    async def send(self, data: str | bytes):
        self.w.write(data.encode() if isinstance(data, str) else data)
        await self.w.drain()

    async def line(self, timeout: float = WAIT) -> str:
        raw = await asyncio.wait_for(self.r.readline(), timeout)
        assert raw.endswith(b"\r\n"), f"connection closed or partial line: {raw!r}"
        return raw[:-2].decode()

    async def read_exact(self, n: int) -> bytes:
        return await asyncio.wait_for(self.r.readexactly(n), WAIT)

    async def close(self):
        self.w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.w.wait_closed(), WAIT)


# --------------------------------------------------------------------------------------
# connect


@run
async def test_connect_info_and_flush(broker):
    async with nats_conn(broker) as nc:
        assert nc.is_connected
        # nats.connect already did CONNECT + PING and required the PONG; flush is one more.
        await asyncio.wait_for(nc.flush(timeout=WAIT), WAIT)
        info = nc._server_info
        assert info.get("headers") is True
        assert nc.max_payload == info["max_payload"] > 0
        assert info.get("jetstream") is True  # JetStream is served (test_jetstream.py)
        rtt = await nc.rtt()
        assert rtt < WAIT


# --------------------------------------------------------------------------------------
# publish / subscribe, wildcards


@run
async def test_publish_subscribe(broker, uid):
    subj = f"n.{uid}.hello"
    async with nats_conn(broker) as sub_c, nats_conn(broker) as pub_c:
        sub = await sub_c.subscribe(subj)
        await sub_c.flush(timeout=WAIT)
        payload = bytes(range(256)) + b"\r\nPUB fake 1\r\n\x00"
        await pub_c.publish(subj, payload)
        await pub_c.publish(subj, b"")  # an empty payload is a message too
        await pub_c.flush(timeout=WAIT)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.subject, m.data, m.reply) == (subj, payload, "")
        m = await sub.next_msg(timeout=WAIT)
        assert (m.subject, m.data) == (subj, b"")
        assert await nothing_more(sub) == []


@run
async def test_wildcards(broker, uid):
    p = f"n.{uid}"
    async with nats_conn(broker) as sub_c, nats_conn(broker) as pub_c:
        star = await sub_c.subscribe(f"{p}.*")
        tail = await sub_c.subscribe(f"{p}.>")
        mid = await sub_c.subscribe(f"{p}.*.c")
        await sub_c.flush(timeout=WAIT)
        for s in (p, f"{p}.b", f"{p}.b.c", f"{p}.b.d", f"{p}.x.y.z", f"{p}x.b"):
            await pub_c.publish(s, s.encode())
        await pub_c.publish(f"{p}.end", b"sentinel")  # matched by `*` and `>`, not by `*.c`
        await pub_c.publish(f"{p}.end.c", b"sentinel")  # matched by `>` and `*.c`
        await pub_c.flush(timeout=WAIT)

        async def until_sentinel(sub):
            got = []
            while True:
                m = await sub.next_msg(timeout=WAIT)
                if m.data == b"sentinel":
                    return got, m.subject
                got.append(m.subject)

        got, end = await until_sentinel(star)
        assert (got, end) == ([f"{p}.b"], f"{p}.end")
        got, end = await until_sentinel(tail)
        # `a.>` does not match `a` itself, nor `ax.b`
        assert (got, end) == ([f"{p}.b", f"{p}.b.c", f"{p}.b.d", f"{p}.x.y.z"], f"{p}.end")
        assert (await tail.next_msg(timeout=WAIT)).subject == f"{p}.end.c"
        got, end = await until_sentinel(mid)
        assert (got, end) == ([f"{p}.b.c"], f"{p}.end.c")
        for s in (star, tail, mid):
            assert await nothing_more(s) == []


# --------------------------------------------------------------------------------------
# queue groups


@run
async def test_queue_group_each_message_once(broker, uid):
    subj = f"n.{uid}.work"
    async with nats_conn(broker) as a, nats_conn(broker) as b, nats_conn(broker) as plain_c, \
            nats_conn(broker) as pub_c:
        qa = await a.subscribe(subj, queue="workers")
        qb = await b.subscribe(subj, queue="workers")
        plain = await plain_c.subscribe(subj)  # outside the group: gets every message
        for c in (a, b, plain_c):
            await c.flush(timeout=WAIT)
        sent = [f"job-{i}".encode() for i in range(20)]
        for body in sent:
            await pub_c.publish(subj, body)
        await pub_c.flush(timeout=WAIT)

        got_plain = [(await plain.next_msg(timeout=WAIT)).data for _ in sent]
        assert got_plain == sent
        got_a, got_b = [], []
        deadline = time.monotonic() + WAIT
        while len(got_a) + len(got_b) < len(sent) and time.monotonic() < deadline:
            for sub, got in ((qa, got_a), (qb, got_b)):
                with contextlib.suppress(nats.errors.TimeoutError):
                    got.append((await sub.next_msg(timeout=0.05)).data)
        got_a += [m.data for m in await nothing_more(qa)]
        got_b += [m.data for m in await nothing_more(qb)]
        assert sorted(got_a + got_b) == sorted(sent), (got_a, got_b)  # each exactly once
        assert got_a and got_b, f"one member got everything: a={len(got_a)} b={len(got_b)}"


# --------------------------------------------------------------------------------------
# request / reply, no responders


@run
async def test_request_reply(broker, uid):
    subj = f"n.{uid}.svc"
    async with nats_conn(broker) as srv, nats_conn(broker) as cli:
        async def handler(msg):
            await msg.respond(b"pong:" + msg.data)

        await srv.subscribe(subj, cb=handler)
        await srv.flush(timeout=WAIT)
        for i in range(3):  # the second and later requests reuse nats-py's wildcard inbox
            reply = await cli.request(subj, f"ping{i}".encode(), timeout=WAIT)
            assert reply.data == f"pong:ping{i}".encode()


@run
async def test_request_no_responders(broker, uid):
    async with nats_conn(broker) as cli:
        t0 = time.monotonic()
        with pytest.raises(nats.errors.NoRespondersError):
            await cli.request(f"n.{uid}.nobody", b"hello?", timeout=WAIT)
        assert time.monotonic() - t0 < 1.0, "the 503 status should come at once, not by timeout"
        # the connection is still fine afterwards
        await cli.flush(timeout=WAIT)


# --------------------------------------------------------------------------------------
# headers


@run
async def test_headers(broker, uid):
    subj = f"n.{uid}.h"
    hdrs = {"X-Trace": "abc-123", "Content-Type": "text/plain", "Nats-Msg-Id": "m1",
            "Correlation-Id": "c-9", "Plain": "a value with spaces"}
    async with nats_conn(broker) as sub_c, nats_conn(broker) as pub_c:
        sub = await sub_c.subscribe(subj)
        await sub_c.flush(timeout=WAIT)
        await pub_c.publish(subj, b"with headers", headers=hdrs)
        await pub_c.publish(subj, b"", headers={"Only": "header"})
        await pub_c.publish(subj, b"without")
        await pub_c.flush(timeout=WAIT)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.data, m.headers) == (b"with headers", hdrs)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.data, m.headers) == (b"", {"Only": "header"})
        m = await sub.next_msg(timeout=WAIT)
        assert (m.data, m.headers) == (b"without", None)


# --------------------------------------------------------------------------------------
# auto-unsubscribe


@run
async def test_auto_unsubscribe(broker, uid):
    subj = f"n.{uid}.limited"
    async with nats_conn(broker) as sub_c, nats_conn(broker) as pub_c:
        sub = await sub_c.subscribe(subj)
        sentinel = await sub_c.subscribe(f"{subj}.sentinel")
        await sub.unsubscribe(limit=2)
        await sub_c.flush(timeout=WAIT)
        for i in range(4):
            await pub_c.publish(subj, f"m{i}".encode())
        await pub_c.publish(f"{subj}.sentinel", b"end")
        await pub_c.flush(timeout=WAIT)
        assert (await sentinel.next_msg(timeout=WAIT)).data == b"end"
        got = [m.data for m in await nothing_more(sub)]
        assert got == [b"m0", b"m1"]


@run
async def test_auto_unsubscribe_enforced_by_server(broker, uid):
    """nats-py also drops messages past the limit itself: check the server's side raw."""
    subj = f"n.{uid}.limited"
    c = await RawNats.open(broker)
    try:
        await c.send(f"SUB {subj} 1\r\nSUB {subj}.sentinel 2\r\nUNSUB 1 2\r\n")
        for i in range(4):
            await c.send(f"PUB {subj} 2\r\nm{i}\r\n")
        await c.send(f"PUB {subj}.sentinel 3\r\nend\r\n")
        seen = []
        while True:
            line = await c.line()
            if line == "PING":
                await c.send("PONG\r\n")
                continue
            assert line.startswith("MSG "), line
            n = int(line.split()[-1])
            body = (await c.read_exact(n + 2))[:-2]
            seen.append((line, body))
            if line.split()[2] == "2":
                break
        assert seen == [(f"MSG {subj} 1 2", b"m0"), (f"MSG {subj} 1 2", b"m1"),
                        (f"MSG {subj}.sentinel 2 3", b"end")]
    finally:
        await c.close()


# --------------------------------------------------------------------------------------
# echo


@run
async def test_no_echo(broker, uid):
    subj = f"n.{uid}.echo"
    async with nats_conn(broker, no_echo=True) as quiet, nats_conn(broker) as loud, \
            nats_conn(broker) as other:
        q_sub = await quiet.subscribe(subj)
        l_sub = await loud.subscribe(subj)
        o_sub = await other.subscribe(subj)
        for c in (quiet, loud, other):
            await c.flush(timeout=WAIT)
        await quiet.publish(subj, b"from-quiet")
        await quiet.flush(timeout=WAIT)
        await loud.publish(subj, b"from-loud")
        await loud.flush(timeout=WAIT)
        # others get the no-echo connection's message; it gets the others' but not its own
        assert [(await o_sub.next_msg(timeout=WAIT)).data for _ in range(2)] == \
            [b"from-quiet", b"from-loud"]
        assert [(await l_sub.next_msg(timeout=WAIT)).data for _ in range(2)] == \
            [b"from-quiet", b"from-loud"]  # echo is on by default
        assert (await q_sub.next_msg(timeout=WAIT)).data == b"from-loud"
        assert await nothing_more(q_sub) == []


# --------------------------------------------------------------------------------------
# max_payload


@pytest.fixture(scope="module")
def small_nats_broker(tmp_path_factory):
    b = start_broker("[limits]\nnats_max_payload = 1024\n", tmp_path_factory.mktemp("cfg"))
    yield b
    stop_broker(b)


@run
async def test_max_payload_client_side(small_nats_broker, uid):
    subj = f"n.{uid}.big"
    async with nats_conn(small_nats_broker) as nc:
        assert nc.max_payload == 1024  # from the server's INFO
        sub = await nc.subscribe(subj)
        await nc.flush(timeout=WAIT)
        with pytest.raises(nats.errors.MaxPayloadError):
            await nc.publish(subj, b"x" * 1025)
        await nc.publish(subj, b"y" * 1024)  # exactly the limit is fine
        await nc.flush(timeout=WAIT)
        m = await sub.next_msg(timeout=WAIT)
        assert m.data == b"y" * 1024
        assert await nothing_more(sub) == []


@run
async def test_max_payload_server_side(small_nats_broker, uid):
    """A client that ignores INFO's max_payload: the server refuses, like nats-server."""
    c = await RawNats.open(small_nats_broker)
    try:
        assert c.info["max_payload"] == 1024
        await c.send(f"PUB n.{uid}.big 1025\r\n" + "x" * 1025 + "\r\n")
        line = await c.line()
        assert line.startswith("-ERR") and "maximum payload" in line.lower(), line
    finally:
        await c.close()


# --------------------------------------------------------------------------------------
# drain / close


@run
async def test_drain_delivers_pending_then_closes(broker, uid):
    subj = f"n.{uid}.drain"
    got = []
    closed = asyncio.Event()

    async def on_closed():
        closed.set()

    async def slow(msg):
        await asyncio.sleep(0.005)
        got.append(msg.data)

    async with nats_conn(broker, closed_cb=on_closed) as sub_c, nats_conn(broker) as pub_c:
        await sub_c.subscribe(subj, cb=slow)
        await sub_c.flush(timeout=WAIT)
        sent = [f"d{i}".encode() for i in range(50)]
        for body in sent:
            await pub_c.publish(subj, body)
        await pub_c.flush(timeout=WAIT)  # the server has routed them all
        await asyncio.wait_for(sub_c.drain(), WAIT)
        await asyncio.wait_for(closed.wait(), WAIT)
        assert sub_c.is_closed
        assert got == sent  # drained: nothing pending was dropped
        # the publisher's connection is unaffected; the drained one refuses to publish
        await pub_c.publish(subj, b"after")
        await pub_c.flush(timeout=WAIT)
        with pytest.raises(nats.errors.ConnectionClosedError):
            await sub_c.publish(subj, b"closed")


@run
async def test_subscription_drain_and_close(broker, uid):
    subj = f"n.{uid}.sdrain"
    async with nats_conn(broker) as nc, nats_conn(broker) as pub_c:
        got = []

        async def cb(msg):
            got.append(msg.data)

        sub = await nc.subscribe(subj, cb=cb)
        await nc.flush(timeout=WAIT)
        for i in range(10):
            await pub_c.publish(subj, f"s{i}".encode())
        await pub_c.flush(timeout=WAIT)
        await asyncio.wait_for(sub.drain(), WAIT)
        await nc.flush(timeout=WAIT)
        assert got == [f"s{i}".encode() for i in range(10)]
        # unsubscribed on the server: a later message is not delivered
        watch = await nc.subscribe(f"{subj}.sentinel")
        await nc.flush(timeout=WAIT)
        await pub_c.publish(subj, b"late")
        await pub_c.publish(f"{subj}.sentinel", b"end")
        await pub_c.flush(timeout=WAIT)
        assert (await watch.next_msg(timeout=WAIT)).data == b"end"
        await asyncio.sleep(QUIET)
        assert got == [f"s{i}".encode() for i in range(10)]
        await asyncio.wait_for(nc.close(), WAIT)
        assert nc.is_closed and not nc.is_connected


# --------------------------------------------------------------------------------------
# MQTT <-> NATS


@run
async def test_mqtt5_publish_reaches_nats_with_headers(broker, clients, uid):
    mqtt_topic, nats_subject = f"interop/{uid}/x/y", f"interop.{uid}.x.y"
    async with nats_conn(broker) as nc:
        sub = await nc.subscribe(nats_subject)
        wild = await nc.subscribe(f"interop.{uid}.*.y")
        await nc.flush(timeout=WAIT)
        pub = await asyncio.to_thread(clients, broker, f"{uid}-p", "v5")
        props = publish_props(UserProperty=[("trace", "abc-123"), ("origin", "paho")],
                              ContentType="text/plain")
        await asyncio.to_thread(pub.publish, mqtt_topic, b"21.5", 1, False, props)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.subject, m.data) == (nats_subject, b"21.5")
        assert m.headers == {"trace": "abc-123", "origin": "paho", "Content-Type": "text/plain"}
        m = await wild.next_msg(timeout=WAIT)
        assert (m.subject, m.data) == (nats_subject, b"21.5")


@run
async def test_nats_publish_reaches_mqtt(broker, clients, uid):
    mqtt_filter, nats_subject = f"interop/{uid}/+/temp", f"interop.{uid}.kitchen.temp"
    sub = await asyncio.to_thread(clients, broker, f"{uid}-s", "v5")
    assert await asyncio.to_thread(sub.subscribe, mqtt_filter, 1) == [1]
    async with nats_conn(broker) as nc:
        await nc.publish(nats_subject, b"plain")
        await nc.publish(nats_subject, b"with headers", headers={"origin": "nats"})
        await nc.flush(timeout=WAIT)
    m1, m2 = await asyncio.to_thread(sub.get_n, 2)
    assert (m1.topic, m1.payload) == (f"interop/{uid}/kitchen/temp", b"plain")
    assert (m2.topic, m2.payload) == (f"interop/{uid}/kitchen/temp", b"with headers")
    assert ("origin", "nats") in m2.prop("UserProperty", [])
