"""Users and permissions with off-the-shelf clients: paho-mqtt, pika, stomp.py, nats-py and
Confluent's schema registry client log in with a password file written by `dwbroker passwd`,
and a refusal reaches each in its protocol's idiom.

alice may publish `sensors.>`, read it and the `orders.*` queues, declare those queues and
use the `sensors-*` schema subjects; bob may only read `sensors.>`.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess

import paho.mqtt.client as mqtt
import pika
import pytest
import stomp
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import helpers
from conftest import start_broker, stop_broker
from helpers import WAIT, bounded_async, reason_value

USERS = {"alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    passwords = d / "users.pw"
    binary = os.environ.get("DWBROKER_BIN") or str(helpers.DEFAULT_BIN)
    for user, password in USERS.items():
        subprocess.run([binary, "passwd", str(passwords), user, "--password", password],
                       check=True, timeout=60)
    config = f"""
[auth]
password_file = "{passwords}"

[auth.permissions.alice]
publish = ["sensors.>"]
subscribe = ["sensors.>", "_INBOX.>", "queue:orders.*", "schema:sensors-*"]
configure = ["queue:orders.*", "schema:sensors-*"]

[auth.permissions.bob]
subscribe = ["sensors.>"]
"""
    b = start_broker(config, d, kafka_rest=True)
    yield b
    stop_broker(b)


def mqtt5(broker, client_id: str, user: str, password: str):
    """A paho-mqtt MQTT 5 client: (client, CONNACK reason code, received messages, PUBACK
    reason codes by mid, SUBACK reason codes)."""
    connack: queue.Queue[int] = queue.Queue()
    messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
    pubacks: dict[int, int] = {}
    subacks: queue.Queue[list[int]] = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                    reconnect_on_failure=False)
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, reason, _p: connack.put(reason_value(reason))
    c.on_message = lambda _c, _u, m: messages.put((m.topic, bytes(m.payload)))
    c.on_publish = lambda _c, _u, mid, reason, _p: pubacks.__setitem__(mid, reason_value(reason))
    c.on_subscribe = lambda _c, _u, _mid, reasons, _p: subacks.put([reason_value(r) for r in reasons])
    c.connect(*broker.addr, clean_start=True, properties=Properties(PacketTypes.CONNECT))
    c.loop_start()
    return c, connack.get(timeout=WAIT * 2), messages, pubacks, subacks


def test_paho_mqtt_logs_in_and_meets_the_acl(secured, uid):
    c, code, *_ = mqtt5(secured, f"{uid}-wrong", "alice", "not-alices")
    c.loop_stop()
    assert code == 0x86, "bad user name or password"

    bob, code, inbox, _, subacks = mqtt5(secured, f"{uid}-bob", "bob", USERS["bob"])
    alice, code2, _, pubacks, _ = mqtt5(secured, f"{uid}-alice", "alice", USERS["alice"])
    try:
        assert (code, code2) == (0, 0)
        bob.subscribe([(f"sensors/{uid}/#", 1), (f"orders/{uid}/#", 1)])
        assert subacks.get(timeout=WAIT) == [1, 0x87], "orders.> is not bob's to read"
        refused = alice.publish(f"orders/{uid}/new", b"denied", qos=1)
        allowed = alice.publish(f"sensors/{uid}/temp", b"21", qos=1)
        allowed.wait_for_publish(WAIT)
        refused.wait_for_publish(WAIT)
        assert pubacks[refused.mid] == 0x87 and pubacks[allowed.mid] == 0
        assert inbox.get(timeout=WAIT) == (f"sensors/{uid}/temp", b"21")
    finally:
        for c in (alice, bob):
            c.disconnect()
            c.loop_stop()


def test_pika_logs_in_with_plain_and_gets_403(secured, uid):
    url = f"amqp://alice:not-alices@127.0.0.1:{secured.amqp_port}/%2F"
    with pytest.raises((pika.exceptions.ProbableAuthenticationError,
                        pika.exceptions.AuthenticationError)):
        pika.BlockingConnection(pika.URLParameters(url))
    url = f"amqp://alice:{USERS['alice']}@127.0.0.1:{secured.amqp_port}/%2F"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.queue_declare(f"orders.{uid}", auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare(f"billing.{uid}")
        assert refused.value.reply_code == 403
        assert "ACCESS_REFUSED" in refused.value.reply_text
    finally:
        conn.close()


def test_stomp_py_logs_in_and_a_refused_send_is_an_error(secured, uid):
    host, port = secured.stomp_addr
    wrong = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    with pytest.raises(stomp.exception.ConnectFailedException):
        wrong.connect("alice", "not-alices", wait=True)

    errors: queue.Queue[str] = queue.Queue()

    class Listener(stomp.ConnectionListener):
        def on_error(self, frame):
            errors.put(frame.headers.get("message", ""))

    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0))
    conn.set_listener("errors", Listener())
    conn.connect("alice", USERS["alice"], wait=True)
    try:
        conn.send(f"/topic/orders.{uid}", "denied")
        assert errors.get(timeout=WAIT) == "access_refused"
    finally:
        if conn.is_connected():
            conn.disconnect()


@bounded_async(20)
async def test_nats_py_user_password_and_permission_violations(secured, uid):
    import nats
    from nats.errors import NoServersError

    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(secured.nats_url, user="alice", password="not-alices",
                           allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    violations: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(e):
        await violations.put(str(e))

    nc = await nats.connect(secured.nats_url, user="alice", password=USERS["alice"],
                            error_cb=on_error, allow_reconnect=False)
    try:
        sub = await nc.subscribe(f"sensors.{uid}")
        await nc.publish(f"orders.{uid}", b"denied")
        await nc.publish(f"sensors.{uid}", b"allowed")
        msg = await sub.next_msg(timeout=WAIT)
        assert msg.data == b"allowed"
        violation = await asyncio.wait_for(violations.get(), WAIT)
        assert "permissions violation for publish" in violation.lower(), violation
        assert f"orders.{uid}" in violation, violation
    finally:
        await nc.close()


def test_schema_registry_client_uses_basic_auth(secured, uid):
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    schema = Schema('{"type": "string"}', "AVRO")
    subject = f"sensors-{uid}-value"

    def client(user=None):
        conf = {"url": secured.kafka_rest_url}
        if user:
            conf["basic.auth.user.info"] = f"{user}:{USERS[user]}"
        return SchemaRegistryClient(conf)

    assert client("alice").register_schema(subject, schema) >= 1
    with pytest.raises(SchemaRegistryError) as refused:
        client("bob").register_schema(subject, schema)
    assert refused.value.http_status_code == 403
    with pytest.raises(SchemaRegistryError) as anonymous:
        client().get_subjects()
    assert anonymous.value.http_status_code == 401
