"""Durable state across kill -9 with Python clients: pika publishes persistent messages
with confirms into a durable queue, paho-mqtt leaves an MQTT 5 session with an expiry
and a retained message, stomp.py sends a persistent message with a receipt; the broker
is killed with SIGKILL and started again on the same data dir, and every client finds
what it was acknowledged for (the Rust suite, tests/durability.rs, covers every row of
the durability table with lapin and rumqttc).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import paho.mqtt.client as mqtt
import pika
import pytest
import stomp
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import needs_dwbroker, needs_dwbroker_stomp
from helpers import WAIT, Broker

pytestmark = [needs_dwbroker, needs_dwbroker_stomp]


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="dwbroker-durability-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start(data_dir: str) -> Broker:
    return Broker(data_dir=data_dir).start()


def crash(b: Broker) -> None:
    assert b.proc is not None
    b.proc.kill()
    b.proc.wait(5)


def amqp(b: Broker) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(b.amqp_url))


def v5_session(b: Broker, client_id: str, clean_start: bool, got: list):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    present = []
    c.on_connect = lambda c, u, flags, rc, p: present.append(flags.session_present)
    c.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos, m.retain))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(*b.addr, clean_start=clean_start, properties=props)
    c.loop_start()
    deadline = time.monotonic() + WAIT
    while not present and time.monotonic() < deadline:
        time.sleep(0.01)
    assert present, "no CONNACK"
    return c, present[0]


def wait_for(pred, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_pika_confirmed_persistent_messages_survive_kill_9(data_dir):
    b = start(data_dir)
    try:
        c = amqp(b)
        ch = c.channel()
        ch.queue_declare("orders", durable=True)
        ch.confirm_delivery()
        for i in range(50):
            ch.basic_publish("", "orders", f"order {i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("", "orders", b"transient", pika.BasicProperties(delivery_mode=1))
        crash(b)
    finally:
        b.stop()
    b = start(data_dir)
    try:
        ch = amqp(b).channel()
        q = ch.queue_declare("orders", durable=True, passive=True)
        assert q.method.message_count == 50
        got = []
        while True:
            m, _, body = ch.basic_get("orders", auto_ack=True)
            if m is None:
                break
            got.append(body.decode())
        assert got == [f"order {i}" for i in range(50)]
    finally:
        b.stop()


def test_paho_session_and_retained_message_survive_kill_9(data_dir):
    b = start(data_dir)
    try:
        got: list = []
        s, present = v5_session(b, "durable-paho", True, got)
        assert not present
        s.subscribe("jobs/#", qos=2)
        time.sleep(0.2)
        s.disconnect()
        s.loop_stop()
        p = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher",
                        protocol=mqtt.MQTTv5)
        p.connect(*b.addr)
        p.loop_start()
        # wait_for_publish returns once the PUBACK / PUBCOMP is in: stored.
        p.publish("jobs/1", b"one", qos=1).wait_for_publish(WAIT)
        p.publish("jobs/2", b"two", qos=2).wait_for_publish(WAIT)
        p.publish("status/door", b"open", qos=1, retain=True).wait_for_publish(WAIT)
        p.loop_stop()
        crash(b)
    finally:
        b.stop()
    b = start(data_dir)
    try:
        got = []
        s, present = v5_session(b, "durable-paho", False, got)
        assert present, "the session survived the crash"
        wait_for(lambda: len(got) >= 2, "the queued messages")
        assert sorted((t, pl, q) for t, pl, q, _ in got) == [("jobs/1", b"one", 1),
                                                            ("jobs/2", b"two", 2)]
        s.subscribe("status/#", qos=1)
        wait_for(lambda: len(got) >= 3, "the retained message")
        assert got[2] == ("status/door", b"open", 1, True)
        s.disconnect()
        s.loop_stop()
    finally:
        b.stop()


class Receipts(stomp.ConnectionListener):
    def __init__(self):
        self.receipts: list[str] = []
        self.messages: list[str] = []

    def on_receipt(self, frame):
        self.receipts.append(frame.headers["receipt-id"])

    def on_message(self, frame):
        self.messages.append(frame.body)


def test_stomp_py_persistent_send_with_receipt_survives_kill_9(data_dir):
    b = start(data_dir)
    try:
        c = stomp.Connection12([b.stomp_addr])
        listener = Receipts()
        c.set_listener("", listener)
        c.connect(wait=True)
        c.send("/queue/durable-stomp", "kept", headers={"persistent": "true", "receipt": "r1"})
        c.send("/queue/durable-stomp", "lost", headers={"receipt": "r2"})
        wait_for(lambda: listener.receipts == ["r1", "r2"], "the receipts")
        crash(b)
    finally:
        b.stop()
    b = start(data_dir)
    try:
        c = stomp.Connection12([b.stomp_addr])
        listener = Receipts()
        c.set_listener("", listener)
        c.connect(wait=True)
        c.subscribe("/queue/durable-stomp", id="1", ack="auto")
        c.send("/queue/durable-stomp", "sentinel")
        wait_for(lambda: "sentinel" in listener.messages, "the sentinel")
        assert listener.messages == ["kept", "sentinel"]
        c.disconnect()
    finally:
        b.stop()
