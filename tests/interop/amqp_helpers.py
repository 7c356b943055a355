"""Small synchronous helpers around pika's BlockingConnection for test_amqp.py.

Every wait is bounded.  A channel error is observed either as the exception pika raises
from a synchronous method, or (after an asynchronous method such as basic.publish or
basic.ack) by pumping the connection until the channel is closed.
"""

from __future__ import annotations

import time

import pika
import pika.exceptions as pex

from helpers import QUIET, WAIT


def channel_error(ch, fn=None, timeout: float = WAIT) -> pex.ChannelClosedByBroker:
    """Run ``fn`` (may be None) and return the broker's channel.close (fails if none comes)."""
    if fn is not None:
        try:
            fn()
        except pex.ChannelClosedByBroker as e:
            return e
    deadline = time.monotonic() + timeout
    while not ch.is_closed and time.monotonic() < deadline:
        try:
            ch.connection.process_data_events(time_limit=0.05)
        except pex.ChannelClosedByBroker as e:
            return e
    assert ch.is_closed, f"channel {ch.channel_number} still open {timeout}s after the bad method"
    reason = ch._closing_reason  # what pika recorded when the broker's channel.close arrived
    assert isinstance(reason, pex.ChannelClosedByBroker), f"channel closed but not by the broker: {reason!r}"
    return reason


def connection_error(conn, fn=None, timeout: float = WAIT) -> pex.ConnectionClosedByBroker:
    """Run ``fn`` and return the broker's connection.close (fails if none comes)."""
    try:
        if fn is not None:
            fn()
        deadline = time.monotonic() + timeout
        while conn.is_open and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
    except pex.ConnectionClosedByBroker as e:
        return e
    except pex.ChannelClosedByBroker as e:
        raise AssertionError(f"expected a connection close, got a channel close {e!r}") from None
    raise AssertionError(f"connection not closed by the broker within {timeout}s (open={conn.is_open})")


def assert_code(err, code: int, *texts: str) -> None:
    """``err`` (ChannelClosedByBroker / ConnectionClosedByBroker) has ``code`` and every text."""
    assert err.reply_code == code, f"expected {code}, got {err.reply_code} {err.reply_text!r}"
    for t in texts:
        assert t in err.reply_text, f"{t!r} not in reply text {err.reply_text!r}"


def round_trip(conn, body: bytes = b"round-trip") -> None:
    """A new channel on ``conn`` can declare, publish and get (used after every error)."""
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, body)
    _, _, got = get_one(ch, q)
    assert got == body
    ch.queue_delete(q)
    ch.close()


def get_one(ch, queue: str, auto_ack: bool = True, timeout: float = WAIT):
    """basic.get until a message arrives: (method, properties, body)."""
    deadline = time.monotonic() + timeout
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is not None:
            return m, p, b
        if time.monotonic() >= deadline:
            raise AssertionError(f"no message on {queue!r} within {timeout}s")
        ch.connection.process_data_events(time_limit=0.02)


def get_all(ch, queue: str, auto_ack: bool = True) -> list[bytes]:
    """Bodies basic.get returns until get-empty."""
    out = []
    while True:
        m, _, b = ch.basic_get(queue, auto_ack=auto_ack)
        if m is None:
            return out
        out.append(b)


def is_empty(ch, queue: str) -> bool:
    m, _, b = ch.basic_get(queue, auto_ack=True)
    assert m is None, f"unexpected message on {queue!r}: {b!r}"
    return True


def pump_until(conn, pred, timeout: float = WAIT, what: str = "condition") -> None:
    """Process I/O and callbacks until ``pred()`` is true."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        conn.process_data_events(time_limit=0.02)


def pump_for(conn, seconds: float = QUIET) -> None:
    """Process I/O and callbacks for ``seconds`` (only after a sentinel, to see nothing more)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        conn.process_data_events(time_limit=min(left, 0.05))


class Collector:
    """``on_message_callback`` that records (method, properties, body) deliveries."""

    def __init__(self, ch=None, ack: bool = False):
        self.ch = ch
        self.ack = ack
        self.items: list = []

    def __call__(self, ch, method, props, body):
        self.items.append((method, props, body))
        if self.ack:
            ch.basic_ack(method.delivery_tag)

    @property
    def bodies(self) -> list[bytes]:
        return [b for _, _, b in self.items]

    def wait(self, conn, n: int, timeout: float = WAIT) -> list:
        pump_until(conn, lambda: len(self.items) >= n, timeout,
                   f"{n} deliveries (got {len(self.items)}: {self.bodies})")
        return self.items


def props(**kw) -> pika.BasicProperties:
    return pika.BasicProperties(**kw)
