"""JetStream through nats-py's JetStream client (``nc.jetstream()``): streams, publish
acknowledgements, limits, pull and push consumers, message get/delete/purge, retention
policies, cross-protocol capture and bad input.

The expectations are nats-server's (checked against nats-server 2.9.10 with ``-js``).  To run
this file against a real nats-server instead of dwbroker, point ``JS_URL`` at it::

    nats-server -a 127.0.0.1 -p 24333 -js -sd /tmp/jstest-store &
    JS_URL=nats://127.0.0.1:24333 tests/interop/.venv/bin/pytest tests/interop/test_jetstream.py -q

Every test uses stream names and subjects made unique by the ``uid`` fixture and deletes the
streams it created, so a shared server is fine.  Tests marked ``needs_dwbroker_js`` (MQTT into
a stream) then skip.  Without ``JS_URL`` the module starts its own dwbroker (ephemeral ports,
fresh data dir).

Every wait is bounded: WAIT for what should happen now, short fetch timeouts (≤ 1.5 s) where
nothing must arrive, ``ack_wait`` of 1 s where redelivery is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import (AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy,
                         RetentionPolicy, StorageType)

from conftest import start_broker, stop_broker
from helpers import QUIET, WAIT, Broker, bounded_async

# Each test coroutine as a whole is bounded too (pytest-timeout is the last resort).
TEST_BUDGET = 20.0
# Where nothing should arrive, a fetch waits this long (a redelivery after ack_wait=1 s
# would come within it).
SHORT = 0.5
ACK_WAIT = 1.0

JS_URL_ENV = "JS_URL"
# Extra dwbroker configuration for the module's own broker (None: the default config), in
# case JetStream ever needs switching on there.
DWBROKER_JS_CONFIG: str | None = None


def external_js() -> str | None:
    return os.environ.get(JS_URL_ENV) or None


# Mark for tests that need dwbroker itself (its MQTT listener): they skip when JS_URL points
# the suite at another server.  A mark, so that the skip happens before any broker starts.
needs_dwbroker_js = pytest.mark.skipif(
    bool(external_js()),
    reason=f"needs dwbroker itself: {JS_URL_ENV} points the JetStream tests at another server")


@dataclass
class JsServer:
    url: str
    broker: Broker | None  # None when JS_URL names an external server


@pytest.fixture(scope="module")
def js_server(tmp_path_factory):
    """``$JS_URL`` if set, else a dwbroker of this module's own with a fresh data dir."""
    url = external_js()
    if url:
        yield JsServer(url, None)
        return
    b = start_broker(DWBROKER_JS_CONFIG, tmp_path_factory.mktemp("cfg") if DWBROKER_JS_CONFIG else None)
    yield JsServer(b.nats_url, b)
    rc = stop_broker(b)
    if rc not in (0, -15):
        print(f"\n[dwbroker exited with {rc} on SIGTERM]\n{b.tail(40)}")


run = bounded_async(TEST_BUDGET)


class Js:
    """One test's connection, its JetStream context and the streams it made (deleted at exit).

    ``s.name("a")`` is a stream/consumer name and ``s.subj("a")`` a subject unique to the test."""

    def __init__(self, nc, uid: str):
        self.nc = nc
        self.js = nc.jetstream(timeout=WAIT)
        self.uid = uid
        self.streams: list[str] = []

    def name(self, suffix: str = "") -> str:
        return f"S{self.uid}{suffix}"

    def subj(self, *tokens: str) -> str:
        return ".".join(("js", self.uid) + tokens)

    async def add_stream(self, name: str | None = None, subjects: list[str] | None = None, **cfg):
        name = name or self.name()
        subjects = subjects if subjects is not None else [self.subj(">")]
        info = await self.js.add_stream(name=name, subjects=subjects, **cfg)
        if name not in self.streams:
            self.streams.append(name)
        return info


@contextlib.asynccontextmanager
async def js_session(server: JsServer, uid: str, **kw):
    opts = dict(connect_timeout=WAIT, allow_reconnect=False, max_reconnect_attempts=0)
    opts.update(kw)
    nc = await asyncio.wait_for(nats.connect(server.url, **opts), WAIT)
    s = Js(nc, uid)
    try:
        yield s
    finally:
        for name in s.streams:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.js.delete_stream(name), WAIT)
        if not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), WAIT)


async def eventually(fn, pred, what: str, timeout: float = WAIT):
    """Poll ``await fn()`` until ``pred(value)``; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        v = await fn()
        if pred(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last value {v!r}")
        await asyncio.sleep(0.02)


async def fetch_n(sub, n: int, timeout: float = WAIT) -> list:
    """Exactly ``n`` messages from a pull subscription (one fetch may return fewer)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise AssertionError(f"fetched {len(out)} of {n} within {timeout}s: "
                                 f"{[(m.subject, m.data) for m in out]}")
        try:
            out += await sub.fetch(n - len(out), timeout=remaining)
        except asyncio.TimeoutError:  # nats-py's TimeoutError is one too
            pass
    return out


async def fetch_rest(sub, batch: int = 20, timeout: float = SHORT) -> list:
    """Whatever the consumer has now (an empty list when a short fetch times out)."""
    try:
        return await sub.fetch(batch, timeout=timeout)
    # nats-py raises its own TimeoutError, or asyncio's when the timeout has already
    # passed before it sends the request (a slow moment on a loaded machine).
    except asyncio.TimeoutError:
        return []


def seqs(msgs) -> list[int]:
    return [m.metadata.sequence.stream for m in msgs]


async def publish_all(s: Js, items):
    """``items``: (subject, payload) pairs; returns the PubAcks."""
    return [await s.js.publish(subj, data) for subj, data in items]


# --------------------------------------------------------------------------------------
# streams


@run
async def test_add_stream_file_storage(js_server, uid):
    async with js_session(js_server, uid) as s:
        info = await s.add_stream(storage=StorageType.FILE)
        assert info.config.name == s.name()
        assert info.config.subjects == [s.subj(">")]
        assert info.config.storage == StorageType.FILE
        assert info.config.retention == RetentionPolicy.LIMITS
        st = info.state
        assert (st.messages, st.bytes, st.first_seq, st.last_seq, st.consumer_count) == (0, 0, 0, 0, 0)

        await s.js.publish(s.subj("a"), b"hello")
        st1 = (await s.js.stream_info(s.name())).state
        assert (st1.messages, st1.first_seq, st1.last_seq) == (1, 1, 1)
        assert st1.bytes >= len(s.subj("a")) + len(b"hello")
        await s.js.publish(s.subj("b"), b"x" * 100)
        await s.js.publish(s.subj("a"), b"")
        st3 = (await s.js.stream_info(s.name())).state
        assert (st3.messages, st3.first_seq, st3.last_seq) == (3, 1, 3)
        assert st3.bytes > st1.bytes + 100

        await s.js.add_consumer(s.name(), durable_name="c1", ack_policy=AckPolicy.EXPLICIT)
        assert (await s.js.stream_info(s.name())).state.consumer_count == 1


@run
async def test_add_stream_memory_storage(js_server, uid):
    async with js_session(js_server, uid) as s:
        info = await s.add_stream(storage=StorageType.MEMORY)
        assert info.config.storage == StorageType.MEMORY
        assert info.state.messages == 0
        for i in range(4):
            ack = await s.js.publish(s.subj("m"), f"m{i}".encode())
            assert ack.seq == i + 1
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq, st.consumer_count) == (4, 1, 4, 0)
        assert st.bytes >= 4 * (len(s.subj("m")) + 2)
        got = await s.js.get_msg(s.name(), 3)
        assert (got.subject, got.seq, got.data) == (s.subj("m"), 3, b"m2")


@run
async def test_add_stream_same_config_is_idempotent_other_config_in_use(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"kept")
        again = await s.add_stream()  # identical config: fine, and nothing is lost
        assert again.config.name == s.name()
        assert again.state.messages == 1
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.add_stream(subjects=[s.subj(">")], max_msgs=10)
        assert (e.value.code, e.value.err_code) == (400, 10058)
        assert "already in use" in e.value.description
        info = await s.js.stream_info(s.name())  # unchanged
        assert (info.config.max_msgs, info.state.messages) == (-1, 1)


@run
async def test_stream_not_found(js_server, uid):
    async with js_session(js_server, uid) as s:
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.stream_info(s.name("missing"))
        assert (e.value.code, e.value.err_code) == (404, 10059)
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.delete_stream(s.name("missing"))
        assert e.value.err_code == 10059
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.get_msg(s.name("missing"), 1)
        assert e.value.err_code == 10059


@run
async def test_delete_stream(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"x")
        assert await s.js.delete_stream(s.name()) is True
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.stream_info(s.name())
        assert e.value.err_code == 10059
        # its subjects are no longer captured
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await s.js.publish(s.subj("a"), b"y", timeout=WAIT)
        # the name can be used again, from scratch
        info = await s.add_stream()
        assert (info.state.messages, info.state.last_seq) == (0, 0)


@run
async def test_streams_info_and_names(js_server, uid):
    async with js_session(js_server, uid) as s:
        a, b = s.name("a"), s.name("b")
        await s.add_stream(a, [s.subj("a", ">")])
        await s.add_stream(b, [s.subj("b", ">")], storage=StorageType.MEMORY)
        await s.js.publish(s.subj("b", "x"), b"1")

        infos = {i.config.name: i for i in await s.js.streams_info()}
        assert {a, b} <= set(infos)  # a shared server may hold other streams too
        assert infos[a].state.messages == 0 and infos[b].state.messages == 1
        assert infos[b].config.storage == StorageType.MEMORY

        r = await s.nc.request("$JS.API.STREAM.NAMES", b"", timeout=WAIT)
        names = json.loads(r.data)
        assert names["type"] == "io.nats.jetstream.api.v1.stream_names_response"
        assert {a, b} <= set(names["streams"])
        assert names["total"] >= 2

        # filtered by subject: what nats-py's subscribe uses to find the stream
        assert await s.js.find_stream_name_by_subject(s.subj("b", "x")) == b
        r = await s.nc.request("$JS.API.STREAM.NAMES",
                               json.dumps({"subject": s.subj("a", "q")}).encode(), timeout=WAIT)
        assert json.loads(r.data)["streams"] == [a]
        with pytest.raises(nats.js.errors.NotFoundError):
            await s.js.find_stream_name_by_subject(s.subj("c", "x"))


# --------------------------------------------------------------------------------------
# publish acknowledgements


@run
async def test_publish_puback_sequence(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        acks = await publish_all(s, [(s.subj("a"), b"1"), (s.subj("b"), b"2"), (s.subj("a"), b"3")])
        assert [(a.stream, a.seq) for a in acks] == [(s.name(), 1), (s.name(), 2), (s.name(), 3)]
        assert not any(a.duplicate for a in acks)
        # the expected-stream header (nats-py's ``stream=``) matching is fine
        ack = await s.js.publish(s.subj("c"), b"4", stream=s.name())
        assert (ack.stream, ack.seq) == (s.name(), 4)
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.publish(s.subj("c"), b"5", stream=s.name("other"))
        assert (e.value.code, e.value.err_code) == (400, 10060)
        assert (await s.js.stream_info(s.name())).state.last_seq == 4


@run
async def test_publish_duplicate_msg_id(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        first = await s.js.publish(s.subj("a"), b"once", headers={"Nats-Msg-Id": "id-1"})
        second = await s.js.publish(s.subj("a"), b"once", headers={"Nats-Msg-Id": "id-1"})
        assert not first.duplicate
        assert second.duplicate is True
        assert second.seq == first.seq == 1
        third = await s.js.publish(s.subj("a"), b"other", headers={"Nats-Msg-Id": "id-2"})
        assert (third.seq, bool(third.duplicate)) == (2, False)
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.last_seq) == (2, 2)
        got = await s.js.get_msg(s.name(), 1)
        assert got.data == b"once" and got.headers.get("Nats-Msg-Id") == "id-1"


@run
async def test_publish_no_stream_no_responders(js_server, uid):
    async with js_session(js_server, uid) as s:
        t0 = time.monotonic()
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await s.js.publish(s.subj("nobody"), b"lost", timeout=WAIT)
        assert time.monotonic() - t0 < 1.0, "no responders should come at once, not by timeout"
        await s.nc.flush(timeout=WAIT)


@run
async def test_publish_expected_last_sequence(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"1")
        ok = await s.js.publish(s.subj("a"), b"2", headers={"Nats-Expected-Last-Sequence": "1"})
        assert ok.seq == 2
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.publish(s.subj("a"), b"3", headers={"Nats-Expected-Last-Sequence": "1"})
        assert (e.value.code, e.value.err_code) == (400, 10071)
        assert "wrong last sequence: 2" in e.value.description
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.last_seq) == (2, 2)


# --------------------------------------------------------------------------------------
# limits


@run
async def test_max_msgs_discard_old_keeps_newest(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(max_msgs=3, discard=DiscardPolicy.OLD)
        acks = [await s.js.publish(s.subj("a"), f"m{i}".encode()) for i in range(1, 6)]
        assert [a.seq for a in acks] == [1, 2, 3, 4, 5]  # all accepted
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (3, 3, 5)
        assert [(await s.js.get_msg(s.name(), q)).data for q in (3, 4, 5)] == [b"m3", b"m4", b"m5"]
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.get_msg(s.name(), 2)
        assert e.value.err_code == 10037


@run
async def test_max_msgs_per_subject(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(max_msgs_per_subject=2)
        await publish_all(s, [(s.subj("a"), b"a1"), (s.subj("b"), b"b1"), (s.subj("a"), b"a2"),
                              (s.subj("a"), b"a3"), (s.subj("a"), b"a4")])
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (3, 2, 5)  # b1, a3, a4
        sub = await s.js.pull_subscribe(s.subj(">"), durable="all", stream=s.name())
        msgs = await fetch_n(sub, 3)
        assert [(m.subject, m.data) for m in msgs] == \
            [(s.subj("b"), b"b1"), (s.subj("a"), b"a3"), (s.subj("a"), b"a4")]


@run
async def test_discard_new_rejects(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(max_msgs=2, discard=DiscardPolicy.NEW)
        await publish_all(s, [(s.subj("a"), b"1"), (s.subj("a"), b"2")])
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.publish(s.subj("a"), b"3")
        # nats-server answers 503 here (so nats-py raises ServiceUnavailableError), not 400
        assert isinstance(e.value, nats.js.errors.ServiceUnavailableError)
        assert (e.value.code, e.value.err_code) == (503, 10077)
        assert "maximum messages exceeded" in e.value.description
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (2, 1, 2)
        assert (await s.js.get_msg(s.name(), 2)).data == b"2"


@run
async def test_max_msg_size(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(max_msg_size=16)
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.publish(s.subj("a"), b"x" * 17)
        assert (e.value.code, e.value.err_code) == (400, 10054)
        ack = await s.js.publish(s.subj("a"), b"y" * 16)  # exactly the limit is fine
        assert ack.seq == 1
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.last_seq) == (1, 1)


# --------------------------------------------------------------------------------------
# pull consumers


@run
async def test_pull_fetch_in_order_metadata_and_ack(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        sent = [f"p{i}".encode() for i in range(5)]
        await publish_all(s, [(s.subj("a"), d) for d in sent])
        sub = await s.js.pull_subscribe(s.subj("a"), durable="puller", stream=s.name())
        msgs = await fetch_n(sub, 5)
        assert [m.data for m in msgs] == sent
        assert all(m.subject == s.subj("a") for m in msgs)
        md = [m.metadata for m in msgs]
        assert [x.sequence.stream for x in md] == [1, 2, 3, 4, 5]
        assert [x.sequence.consumer for x in md] == [1, 2, 3, 4, 5]
        assert [x.num_delivered for x in md] == [1] * 5
        assert [x.num_pending for x in md] == [4, 3, 2, 1, 0]
        assert {(x.stream, x.consumer) for x in md} == {(s.name(), "puller")}
        for m in msgs[:-1]:
            await m.ack()
        await msgs[-1].ack_sync(timeout=WAIT)  # the server answers an ack with a reply
        ci = await eventually(lambda: s.js.consumer_info(s.name(), "puller"),
                              lambda ci: ci.num_ack_pending == 0, "all acked")
        assert (ci.ack_floor.stream_seq, ci.ack_floor.consumer_seq) == (5, 5)
        assert (ci.num_pending, ci.num_redelivered) == (0, 0)
        assert await fetch_rest(sub) == []


@run
async def test_fetch_nothing_pending_times_out(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        sub = await s.js.pull_subscribe(s.subj("a"), durable="idle", stream=s.name())
        for batch in (1, 3):
            t0 = time.monotonic()
            with pytest.raises(nats.errors.TimeoutError):
                await sub.fetch(batch, timeout=SHORT)
            assert time.monotonic() - t0 < SHORT + 1.0
        # the consumer still works afterwards
        await s.js.publish(s.subj("a"), b"late")
        (m,) = await fetch_n(sub, 1)
        assert (m.data, m.metadata.sequence.stream) == (b"late", 1)
        await m.ack()


@run
async def test_nak_redelivers(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"again")
        sub = await s.js.pull_subscribe(s.subj("a"), durable="nakker", stream=s.name())
        (m1,) = await fetch_n(sub, 1)
        assert m1.metadata.num_delivered == 1
        await m1.nak()
        (m2,) = await fetch_n(sub, 1)
        assert m2.data == b"again"
        assert (m2.metadata.sequence.stream, m2.metadata.sequence.consumer) == (1, 2)
        assert m2.metadata.num_delivered == 2
        await m2.ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "nakker")
        assert (ci.num_ack_pending, ci.num_redelivered) == (0, 0)
        assert ci.ack_floor.stream_seq == 1


@run
async def test_ack_wait_expiry_redelivers(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"slow")
        sub = await s.js.pull_subscribe(s.subj("a"), durable="waiter", stream=s.name(),
                                        config=ConsumerConfig(ack_wait=ACK_WAIT))
        t0 = time.monotonic()
        (m1,) = await fetch_n(sub, 1)
        assert m1.metadata.num_delivered == 1  # ... and not acked
        ci = await s.js.consumer_info(s.name(), "waiter")
        assert ci.config.ack_wait == ACK_WAIT
        assert ci.num_ack_pending == 1
        (m2,) = await fetch_n(sub, 1, timeout=ACK_WAIT + WAIT)
        elapsed = time.monotonic() - t0
        assert ACK_WAIT * 0.8 <= elapsed < ACK_WAIT + 2.0, elapsed
        assert (m2.data, m2.metadata.sequence.stream, m2.metadata.num_delivered) == (b"slow", 1, 2)
        await m2.ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "waiter")
        assert ci.num_ack_pending == 0


@run
async def test_term_stops_redelivery(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), b"poison"), (s.subj("a"), b"fine")])
        sub = await s.js.pull_subscribe(s.subj("a"), durable="termer", stream=s.name(),
                                        config=ConsumerConfig(ack_wait=ACK_WAIT))
        m1, m2 = await fetch_n(sub, 2)
        await m1.term()
        await m2.ack()
        # past ack_wait: nothing comes back
        assert await fetch_rest(sub, 1, timeout=ACK_WAIT + SHORT) == []
        ci = await s.js.consumer_info(s.name(), "termer")
        assert (ci.num_ack_pending, ci.num_redelivered, ci.num_pending) == (0, 0, 0)
        assert ci.ack_floor.stream_seq == 2


@run
async def test_in_progress_extends_ack_wait(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"long job")
        sub = await s.js.pull_subscribe(s.subj("a"), durable="worker", stream=s.name(),
                                        config=ConsumerConfig(ack_wait=ACK_WAIT))
        (m,) = await fetch_n(sub, 1)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.6 * ACK_WAIT:  # well past ack_wait in total
            await asyncio.sleep(0.4 * ACK_WAIT)
            await m.in_progress()
        # the last progress was < 0.4 s ago: no redelivery for the next SHORT seconds
        assert await fetch_rest(sub, 1, timeout=SHORT) == []
        await m.ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "worker")
        assert (ci.num_ack_pending, ci.num_redelivered) == (0, 0)
        assert ci.delivered.consumer_seq == 1  # delivered once only


@run
async def test_max_deliver(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"twice at most")
        sub = await s.js.pull_subscribe(s.subj("a"), durable="capped", stream=s.name(),
                                        config=ConsumerConfig(max_deliver=2, ack_wait=ACK_WAIT))
        (m1,) = await fetch_n(sub, 1)
        await m1.nak()
        (m2,) = await fetch_n(sub, 1)
        assert (m2.metadata.sequence.stream, m2.metadata.num_delivered) == (1, 2)
        await m2.nak()
        # neither after the nak nor after ack_wait: delivered twice, that is all
        assert await fetch_rest(sub, 1, timeout=ACK_WAIT + SHORT) == []
        ci = await s.js.consumer_info(s.name(), "capped")
        assert ci.config.max_deliver == 2
        assert (ci.delivered.consumer_seq, ci.delivered.stream_seq) == (2, 1)
        assert ci.num_ack_pending == 0
        # the message is still in the stream (limits retention)
        assert (await s.js.stream_info(s.name())).state.messages == 1


@run
async def test_consumer_info_counts(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), f"{i}".encode()) for i in range(4)])
        sub = await s.js.pull_subscribe(s.subj("a"), durable="counter", stream=s.name(),
                                        config=ConsumerConfig(ack_wait=30))
        ci = await s.js.consumer_info(s.name(), "counter")
        assert (ci.name, ci.stream_name) == ("counter", s.name())
        assert ci.config.durable_name == "counter"
        assert ci.config.ack_policy == AckPolicy.EXPLICIT
        assert (ci.num_pending, ci.num_ack_pending, ci.delivered.stream_seq) == (4, 0, 0)

        msgs = await fetch_n(sub, 3)
        await msgs[0].ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "counter")
        assert ci.num_pending == 1  # not yet delivered
        assert ci.num_ack_pending == 2  # delivered, not acked
        assert (ci.delivered.stream_seq, ci.delivered.consumer_seq) == (3, 3)
        assert (ci.ack_floor.stream_seq, ci.ack_floor.consumer_seq) == (1, 1)

        # an ack above a gap does not move the floor
        await msgs[2].ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "counter")
        assert (ci.num_ack_pending, ci.ack_floor.stream_seq) == (1, 1)
        await msgs[1].ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "counter")
        assert (ci.num_ack_pending, ci.ack_floor.stream_seq) == (0, 3)

        listed = await s.js.consumers_info(s.name())
        assert [c.name for c in listed] == ["counter"]


@run
async def test_delete_consumer(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.add_consumer(s.name(), durable_name="gone", ack_policy=AckPolicy.EXPLICIT)
        assert (await s.js.stream_info(s.name())).state.consumer_count == 1
        assert await s.js.delete_consumer(s.name(), "gone") is True
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.consumer_info(s.name(), "gone")
        assert (e.value.code, e.value.err_code) == (404, 10014)
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.delete_consumer(s.name(), "gone")
        assert e.value.err_code == 10014
        assert (await s.js.stream_info(s.name())).state.consumer_count == 0


# (policy, extra consumer config, stream seqs delivered) for a stream holding
# 1:a 2:b 3:a 4:b when the consumer is made, then 5:a published after it.
DELIVER_CASES = [
    (DeliverPolicy.ALL, {}, [1, 2, 3, 4, 5]),
    (DeliverPolicy.LAST, {}, [4, 5]),
    (DeliverPolicy.NEW, {}, [5]),
    (DeliverPolicy.BY_START_SEQUENCE, {"opt_start_seq": 3}, [3, 4, 5]),
    (DeliverPolicy.LAST_PER_SUBJECT, {}, [3, 4, 5]),
]


@pytest.mark.parametrize("policy,extra,expected", DELIVER_CASES, ids=[c[0].value for c in DELIVER_CASES])
@run
async def test_deliver_policy(js_server, uid, policy, extra, expected):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), b"1"), (s.subj("b"), b"2"), (s.subj("a"), b"3"),
                              (s.subj("b"), b"4")])
        sub = await s.js.pull_subscribe(s.subj(">"), durable="dp", stream=s.name(),
                                        config=ConsumerConfig(deliver_policy=policy, **extra))
        ci = await s.js.consumer_info(s.name(), "dp")
        assert ci.config.deliver_policy == policy
        assert ci.num_pending == len(expected) - 1
        await s.js.publish(s.subj("a"), b"5")
        msgs = await fetch_n(sub, len(expected))
        assert seqs(msgs) == expected
        assert [m.data for m in msgs] == [str(q).encode() for q in expected]
        assert [m.metadata.sequence.consumer for m in msgs] == list(range(1, len(expected) + 1))
        assert msgs[-1].metadata.num_pending == 0
        assert await fetch_rest(sub, timeout=0.2) == []


@run
async def test_filter_subject(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), b"a1"), (s.subj("b"), b"b1"), (s.subj("a"), b"a2"),
                              (s.subj("c", "d"), b"cd1")])
        sub = await s.js.pull_subscribe(s.subj("a"), durable="only-a", stream=s.name())
        ci = await s.js.consumer_info(s.name(), "only-a")
        assert (ci.config.filter_subject, ci.num_pending) == (s.subj("a"), 2)
        msgs = await fetch_n(sub, 2)
        assert [(m.subject, m.data) for m in msgs] == [(s.subj("a"), b"a1"), (s.subj("a"), b"a2")]
        assert seqs(msgs) == [1, 3]
        assert [m.metadata.sequence.consumer for m in msgs] == [1, 2]
        assert [m.metadata.num_pending for m in msgs] == [1, 0]
        # a wildcard filter in another consumer of the same stream
        wsub = await s.js.pull_subscribe(s.subj("c", "*"), durable="only-c", stream=s.name())
        (m,) = await fetch_n(wsub, 1)
        assert (m.subject, m.data) == (s.subj("c", "d"), b"cd1")
        await s.js.publish(s.subj("b"), b"b2")
        await s.js.publish(s.subj("a"), b"a3")
        (m,) = await fetch_n(sub, 1)
        assert (m.data, m.metadata.sequence.stream) == (b"a3", 6)
        assert await fetch_rest(sub, timeout=0.2) == []


# --------------------------------------------------------------------------------------
# push consumers


@run
async def test_push_durable_subscribe(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"before")
        sub = await s.js.subscribe(s.subj("a"), durable="pusher", manual_ack=True)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.subject, m.data) == (s.subj("a"), b"before")
        assert (m.metadata.stream, m.metadata.consumer) == (s.name(), "pusher")
        assert (m.metadata.sequence.stream, m.metadata.num_delivered) == (1, 1)
        await m.ack_sync(timeout=WAIT)
        await s.js.publish(s.subj("a"), b"after")
        m = await sub.next_msg(timeout=WAIT)
        assert (m.data, m.metadata.sequence.stream, m.metadata.sequence.consumer) == (b"after", 2, 2)
        await m.ack_sync(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "pusher")
        assert ci.config.deliver_subject  # a push consumer
        assert ci.config.durable_name == "pusher"
        assert (ci.num_ack_pending, ci.num_pending, ci.ack_floor.stream_seq) == (0, 0, 2)
        assert ci.push_bound is True


@run
async def test_push_subscribe_callback_auto_ack(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        got = []
        done = asyncio.Event()

        async def cb(msg):
            got.append(msg.data)
            if len(got) == 3:
                done.set()

        await s.js.subscribe(s.subj("a"), durable="cbpush", cb=cb)
        await publish_all(s, [(s.subj("a"), f"c{i}".encode()) for i in range(3)])
        await asyncio.wait_for(done.wait(), WAIT)
        assert got == [b"c0", b"c1", b"c2"]
        await eventually(lambda: s.js.consumer_info(s.name(), "cbpush"),
                         lambda ci: ci.num_ack_pending == 0 and ci.ack_floor.stream_seq == 3,
                         "callback messages auto-acked")


@run
async def test_push_flow_control_and_heartbeats(js_server, uid):
    """More messages than one flow-controlled batch: the consumer stalls after each batch
    until the client answers the flow control request (from the request itself or from the
    stalled heartbeat), and idle heartbeats keep coming when there is nothing to send."""
    async with js_session(js_server, uid) as s:
        await s.add_stream(storage=StorageType.MEMORY)
        n = 600
        await asyncio.gather(*(s.js.publish(s.subj("f"), f"f{i}".encode()) for i in range(n)))
        sub = await s.js.subscribe(s.subj("f"), durable="fc", manual_ack=True,
                                   flow_control=True, idle_heartbeat=0.5)
        ci = await s.js.consumer_info(s.name(), "fc")
        assert ci.config.flow_control is True
        got = []
        deadline = time.monotonic() + 3 * WAIT
        while len(got) < n and time.monotonic() < deadline:
            with contextlib.suppress(nats.errors.TimeoutError):
                m = await sub.next_msg(timeout=1.5)
                got.append(m.data)
                await m.ack()
        assert got == [f"f{i}".encode() for i in range(n)]


@run
async def test_push_queue_deliver_group(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        qa = await s.js.subscribe(s.subj("w"), queue="workers", manual_ack=True)
        qb = await s.js.subscribe(s.subj("w"), queue="workers", manual_ack=True)
        await s.nc.flush(timeout=WAIT)
        ci = await s.js.consumer_info(s.name(), "workers")
        assert ci.config.deliver_group == "workers"
        assert ci.config.durable_name == "workers"
        sent = [f"job-{i}".encode() for i in range(20)]
        await publish_all(s, [(s.subj("w"), d) for d in sent])
        got_a, got_b = [], []
        deadline = time.monotonic() + WAIT
        while len(got_a) + len(got_b) < len(sent) and time.monotonic() < deadline:
            for sub, got in ((qa, got_a), (qb, got_b)):
                with contextlib.suppress(nats.errors.TimeoutError):
                    m = await sub.next_msg(timeout=0.05)
                    got.append(m.data)
                    await m.ack()
        await asyncio.sleep(QUIET)  # nothing more, in particular no redelivery
        for sub, got in ((qa, got_a), (qb, got_b)):
            with contextlib.suppress(nats.errors.TimeoutError):
                while True:
                    got.append((await sub.next_msg(timeout=0.05)).data)
        assert sorted(got_a + got_b) == sorted(sent), (got_a, got_b)  # each exactly once
        assert got_a and got_b, f"one member got everything: a={len(got_a)} b={len(got_b)}"
        await eventually(lambda: s.js.consumer_info(s.name(), "workers"),
                         lambda ci: ci.num_ack_pending == 0 and ci.ack_floor.stream_seq == 20,
                         "all jobs acked")


# --------------------------------------------------------------------------------------
# get / delete / purge messages


@run
async def test_get_msg_by_seq_and_last_by_subject(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.js.publish(s.subj("a"), b"a1", headers={"X-Tag": "one"})
        await s.js.publish(s.subj("b"), b"b1")
        await s.js.publish(s.subj("a"), b"a2")
        m = await s.js.get_msg(s.name(), 1)
        assert (m.subject, m.seq, m.data) == (s.subj("a"), 1, b"a1")
        assert m.headers == {"X-Tag": "one"}
        assert m.time is not None
        m = await s.js.get_msg(s.name(), 2)
        assert (m.subject, m.seq, m.data, m.headers) == (s.subj("b"), 2, b"b1", None)
        m = await s.js.get_last_msg(s.name(), s.subj("a"))
        assert (m.subject, m.seq, m.data) == (s.subj("a"), 3, b"a2")
        m = await s.js.get_msg(s.name(), subject=s.subj("b"))
        assert (m.seq, m.data) == (2, b"b1")
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.get_last_msg(s.name(), s.subj("none"))
        assert e.value.err_code == 10037
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.get_msg(s.name(), 99)
        assert e.value.err_code == 10037


@run
async def test_delete_msg_then_get_not_found(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), f"{i}".encode()) for i in range(1, 4)])
        assert await s.js.delete_msg(s.name(), 2) is True
        with pytest.raises(nats.js.errors.NotFoundError) as e:
            await s.js.get_msg(s.name(), 2)
        assert (e.value.code, e.value.err_code) == (404, 10037)
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (2, 1, 3)
        # deleting it again is an error, not a 404: nats-server says 400 / 10043 "sequence 2
        # not found" (its file store says 500 / 10057 for a sequence outside first..last)
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.delete_msg(s.name(), 2)
        assert (e.value.code, e.value.err_code) in ((400, 10043), (500, 10057))
        # deleting the first one moves first_seq
        assert await s.js.delete_msg(s.name(), 1) is True
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (1, 3, 3)
        # a consumer skips the deleted ones
        sub = await s.js.pull_subscribe(s.subj("a"), durable="after-del", stream=s.name())
        (m,) = await fetch_n(sub, 1)
        assert (m.data, m.metadata.sequence.stream) == (b"3", 3)


@run
async def test_purge_stream_all(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), b"1"), (s.subj("b"), b"2"), (s.subj("a"), b"3")])
        r = await s.nc.request(f"$JS.API.STREAM.PURGE.{s.name()}", b"", timeout=WAIT)
        assert json.loads(r.data) == {"type": "io.nats.jetstream.api.v1.stream_purge_response",
                                      "success": True, "purged": 3}
        st = (await s.js.stream_info(s.name())).state
        # empty; the sequence goes on: first_seq is last_seq + 1
        assert (st.messages, st.bytes, st.first_seq, st.last_seq) == (0, 0, 4, 3)
        ack = await s.js.publish(s.subj("a"), b"4")
        assert ack.seq == 4
        assert await s.js.purge_stream(s.name()) is True


@run
async def test_purge_stream_by_subject(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), b"a1"), (s.subj("b"), b"b1"), (s.subj("a"), b"a2"),
                              (s.subj("b"), b"b2")])
        assert await s.js.purge_stream(s.name(), subject=s.subj("a")) is True
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (2, 2, 4)
        assert [(await s.js.get_msg(s.name(), q)).data for q in (2, 4)] == [b"b1", b"b2"]
        with pytest.raises(nats.js.errors.NotFoundError):
            await s.js.get_last_msg(s.name(), s.subj("a"))


@run
async def test_purge_stream_keep(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await publish_all(s, [(s.subj("a"), f"{i}".encode()) for i in range(1, 6)])
        r = await s.nc.request(f"$JS.API.STREAM.PURGE.{s.name()}", json.dumps({"keep": 2}).encode(),
                               timeout=WAIT)
        assert json.loads(r.data)["purged"] == 3
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.first_seq, st.last_seq) == (2, 4, 5)
        assert (await s.js.get_msg(s.name(), 4)).data == b"4"


# --------------------------------------------------------------------------------------
# retention policies


@run
async def test_workqueue_retention(js_server, uid):
    async with js_session(js_server, uid) as s:
        info = await s.add_stream(retention=RetentionPolicy.WORK_QUEUE)
        assert info.config.retention == RetentionPolicy.WORK_QUEUE
        await publish_all(s, [(s.subj("q"), f"w{i}".encode()) for i in range(3)])
        sub = await s.js.pull_subscribe(s.subj(">"), durable="wq", stream=s.name())
        msgs = await fetch_n(sub, 3)
        assert [m.data for m in msgs] == [b"w0", b"w1", b"w2"]
        await msgs[1].ack_sync(timeout=WAIT)
        st = await eventually(lambda: s.js.stream_info(s.name()), lambda i: i.state.messages == 2,
                              "acked message removed")
        assert (st.state.first_seq, st.state.last_seq) == (1, 3)
        for m in (msgs[0], msgs[2]):
            await m.ack_sync(timeout=WAIT)
        st = await eventually(lambda: s.js.stream_info(s.name()), lambda i: i.state.messages == 0,
                              "all acked messages removed")
        assert st.state.last_seq == 3
        # a second consumer overlapping the first is refused on a work queue
        with pytest.raises(nats.js.errors.APIError) as e:
            await s.js.add_consumer(s.name(), durable_name="wq2", ack_policy=AckPolicy.EXPLICIT)
        assert (e.value.code, e.value.err_code) == (400, 10099)


@run
async def test_interest_retention(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(retention=RetentionPolicy.INTEREST)
        # no consumer yet: acknowledged, but nothing is kept
        ack = await s.js.publish(s.subj("a"), b"nobody")
        assert ack.seq == 1
        st = (await s.js.stream_info(s.name())).state
        assert (st.messages, st.last_seq) == (0, 1)

        sub1 = await s.js.pull_subscribe(s.subj("a"), durable="c1", stream=s.name())
        sub2 = await s.js.pull_subscribe(s.subj("a"), durable="c2", stream=s.name())
        await s.js.publish(s.subj("a"), b"both")
        (m1,) = await fetch_n(sub1, 1)
        (m2,) = await fetch_n(sub2, 1)
        assert m1.data == m2.data == b"both"
        assert m1.metadata.sequence.stream == m2.metadata.sequence.stream == 2
        await m1.ack_sync(timeout=WAIT)
        await asyncio.sleep(0.1)
        st = (await s.js.stream_info(s.name())).state
        assert st.messages == 1  # c2 has not acked yet
        await m2.ack_sync(timeout=WAIT)
        await eventually(lambda: s.js.stream_info(s.name()), lambda i: i.state.messages == 0,
                         "removed once every consumer acked")


# --------------------------------------------------------------------------------------
# cross-protocol: a plain publish on a captured subject is stored


@run
async def test_core_nats_publish_is_captured(js_server, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream()
        await s.nc.publish(s.subj("core"), b"no reply subject", headers={"X-From": "core"})
        await s.nc.publish(s.subj("core"), b"second")
        await s.nc.flush(timeout=WAIT)
        st = await eventually(lambda: s.js.stream_info(s.name()), lambda i: i.state.messages == 2,
                              "core publishes stored")
        assert st.state.last_seq == 2
        m = await s.js.get_msg(s.name(), 1)
        assert (m.subject, m.data, m.headers) == (s.subj("core"), b"no reply subject", {"X-From": "core"})
        sub = await s.js.pull_subscribe(s.subj("core"), durable="c", stream=s.name())
        msgs = await fetch_n(sub, 2)
        assert [m.data for m in msgs] == [b"no reply subject", b"second"]


@needs_dwbroker_js
@run
async def test_mqtt_publish_is_captured(js_server, clients, uid):
    async with js_session(js_server, uid) as s:
        await s.add_stream(subjects=[f"interop.{uid}.>"])
        pub = await asyncio.to_thread(clients, js_server.broker, f"{uid}-p", "v5")
        await asyncio.to_thread(pub.publish, f"interop/{uid}/x/y", b"from mqtt", 1)
        st = await eventually(lambda: s.js.stream_info(s.name()), lambda i: i.state.messages == 1,
                              "MQTT publish stored")
        assert st.state.last_seq == 1
        m = await s.js.get_msg(s.name(), 1)
        assert (m.subject, m.data) == (f"interop.{uid}.x.y", b"from mqtt")


# --------------------------------------------------------------------------------------
# bad input


@run
async def test_bad_json_stream_create(js_server, uid):
    async with js_session(js_server, uid) as s:
        name = s.name()
        for body in (b"not json", b"", b"{"):
            r = await s.nc.request(f"$JS.API.STREAM.CREATE.{name}", body, timeout=WAIT)
            resp = json.loads(r.data)
            assert resp == {"type": "io.nats.jetstream.api.v1.stream_create_response",
                            "error": {"code": 400, "err_code": 10025, "description": "invalid JSON"}}, body
        # nothing was created, and the connection is fine
        with pytest.raises(nats.js.errors.NotFoundError):
            await s.js.stream_info(name)
        await s.nc.flush(timeout=WAIT)
        info = await s.add_stream()
        assert info.config.name == name
        assert (await s.js.publish(s.subj("a"), b"ok")).seq == 1
