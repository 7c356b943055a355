"""Fixtures: the dwbroker binary (one per session, plus specially configured ones), unique
names per test, and clients that are always cleaned up."""

from __future__ import annotations

import itertools
import os
import uuid

import nats.aio.client
import pytest

from helpers import Broker, Client

_counter = itertools.count(1)
_running: list[Broker] = []


def start_broker(config_text: str | None = None, tmp_dir=None, **kw) -> Broker:
    config = None
    if config_text is not None:
        config = os.path.join(str(tmp_dir), f"dwbroker-{uuid.uuid4().hex[:8]}.toml")
        with open(config, "w") as f:
            f.write(config_text)
    b = Broker(config=config, **kw).start()
    _running.append(b)
    return b


def stop_broker(b: Broker) -> int | None:
    rc = b.stop()
    if b in _running:
        _running.remove(b)
    return rc


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The shared broker, default configuration: yields a Broker (``.addr`` = (host, port))."""
    b = start_broker()
    yield b
    rc = stop_broker(b)
    # A crash or a hang on SIGTERM is a broker bug worth seeing in the CI log.
    if rc not in (0, -15):
        print(f"\n[dwbroker exited with {rc} on SIGTERM]\n{b.tail(40)}")


# Set to run the AMQP-only tests against another server (e.g. the reference RabbitMQ:
# ``DWBROKER_AMQP_URL=amqp://guest:guest@127.0.0.1:25673/%2F``); tests that need dwbroker's
# other listeners (cross-protocol) or its documented limits then skip.
AMQP_URL_ENV = "DWBROKER_AMQP_URL"


def external_amqp() -> str | None:
    return os.environ.get(AMQP_URL_ENV) or None


@pytest.fixture(scope="session")
def amqp_url(request) -> str:
    """The AMQP URL under test: ``$DWBROKER_AMQP_URL`` if set, else the shared broker's."""
    url = external_amqp()
    if url:
        return url
    return request.getfixturevalue("broker").amqp_url


# Mark for tests that need dwbroker itself (its MQTT/NATS listeners, its documented limits):
# they skip only when the AMQP tests are pointed at another server.  A mark (not a fixture)
# so that the skip happens before the session ``broker`` fixture would start the binary.
needs_dwbroker = pytest.mark.skipif(
    bool(external_amqp()),
    reason=f"needs dwbroker itself: {AMQP_URL_ENV} points the AMQP tests at another server")


@pytest.fixture
def amqp(amqp_url):
    """``conn = amqp()`` (or ``amqp(url, **params)``): a pika BlockingConnection with short
    timeouts, closed after the test."""
    import pika

    made = []

    def make(url: str | None = None, **params):
        p = pika.URLParameters(url or amqp_url)
        p.socket_timeout = params.pop("socket_timeout", 5)
        p.blocked_connection_timeout = params.pop("blocked_connection_timeout", 5)
        p.stack_timeout = params.pop("stack_timeout", 5)
        p.connection_attempts = 1
        p.retry_delay = 0
        for k, v in params.items():
            setattr(p, k, v)
        c = pika.BlockingConnection(p)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            if c.is_open:
                c.close()
        except Exception:
            pass


# Set to run the STOMP-only tests against another server (e.g. the reference RabbitMQ STOMP
# plugin: ``DWBROKER_STOMP_ADDR=127.0.0.1:26614``); tests that need dwbroker itself (cross-protocol,
# its documented limits, its stricter error handling) then skip.
STOMP_ADDR_ENV = "DWBROKER_STOMP_ADDR"


def external_stomp() -> tuple[str, int] | None:
    v = os.environ.get(STOMP_ADDR_ENV)
    if not v:
        return None
    host, _, port = v.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


@pytest.fixture(scope="session")
def stomp_addr(request) -> tuple[str, int]:
    """The STOMP (host, port) under test: ``$DWBROKER_STOMP_ADDR`` if set, else the shared broker's."""
    addr = external_stomp()
    if addr:
        return addr
    return request.getfixturevalue("broker").stomp_addr


# Mark for STOMP tests that need dwbroker itself; skips only when DWBROKER_STOMP_ADDR is set.
needs_dwbroker_stomp = pytest.mark.skipif(
    bool(external_stomp()),
    reason=f"needs dwbroker itself: {STOMP_ADDR_ENV} points the STOMP tests at another server")


@pytest.fixture
def stomp(stomp_addr):
    """``c = stomp()`` (or ``stomp(version="1.1", heartbeats=(1000, 1000), connect=False, ...)``):
    a stomp.py connection (``stomp_helpers.Stomp``), connected as guest/guest with ``host:/``
    unless ``connect=False``, disconnected after the test."""
    from stomp_helpers import Stomp

    made = []

    def make(version: str = "1.2", connect: bool = True, addr=None, name: str | None = None, **kw):
        c = Stomp(addr or stomp_addr, version, name=name or f"stomp{len(made) + 1}", **kw)
        made.append(c)
        if connect:
            c.connect()
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory):
    """A broker with small limits, for the limit tests."""
    b = start_broker(
        "[limits]\n"
        "max_message_size = 1024\n"
        "max_queued_messages = 5\n"
        "max_keep_alive = 10\n",
        tmp_path_factory.mktemp("cfg"),
    )
    yield b
    stop_broker(b)


@pytest.fixture
def uid(request) -> str:
    """A short name unique to this test (and this run): use it in topics and client ids."""
    return f"t{next(_counter)}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def topic(uid) -> str:
    """A unique topic prefix for this test."""
    return f"interop/{uid}"


@pytest.fixture
def clients():
    """``make = clients; c = make(broker, id, version, **kw)``: clients closed after the test."""
    made: list[Client] = []

    def make(broker, client_id, version="v5", connect=True, **kw) -> Client:
        c = Client(broker, client_id, version, **kw)
        made.append(c)
        if connect:
            c.connect()
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture(autouse=True)
def _broker_log_marks(request):
    """Remember where each running broker's output stood when the test started."""
    request.node._broker_marks = {id(b): len(b.lines) for b in _running}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the broker output produced during a failed test to its report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("call", "setup"):
        marks = getattr(item, "_broker_marks", {})
        out = []
        for b in list(_running):
            new = b.lines[marks.get(id(b), 0):]
            if new:
                out.append(f"--- broker :{b.port} ---")
                out.extend(new[-80:])
        for b in list(_running):
            if not b.alive():
                out.append(f"!!! broker :{b.port} is no longer running (exit {b.proc.returncode})")
        if out:
            rep.sections.append(("broker log", "\n".join(out)))


# nats-py 2.16 writes a PING straight to the socket while the commands before it (a SUB)
# may still wait in its pending buffer for the flusher task, so `subscribe(); flush()` can
# reach a server as PING, SUB: the PONG then comes before the subscription exists, and a
# publish right after the flush is missed (with nats-server as with dwbroker). The tests
# rely on flush as a barrier, so the pending commands go out first.
_send_ping = nats.aio.client.Client._send_ping


async def _send_ping_after_pending(self, future=None):
    if self._pending:
        self._transport.writelines(self._pending[:])
        self._pending = []
        self._pending_data_size = 0
    await _send_ping(self, future)


nats.aio.client.Client._send_ping = _send_ping_after_pending
