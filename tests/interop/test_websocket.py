"""MQTT over WebSocket with paho-mqtt's websockets transport against the real binary
(path /mqtt, subprotocol mqtt), to and from a plain TCP client."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt
import pytest

from helpers import WAIT, publish_until_received


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_paho_over_websocket_and_tcp(broker, version):
    topic = f"ws/{uuid.uuid4().hex[:8]}"
    got: queue.Queue = queue.Queue()
    subscribed: queue.Queue = queue.Queue()
    ws = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, transport="websockets", protocol=version)
    ws.ws_set_options(path="/mqtt")
    ws.on_message = lambda c, u, m: got.put((m.topic, m.payload))
    ws.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(mid)
    ws.connect("127.0.0.1", broker.listening("mqtt-ws"))
    ws.loop_start()
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=version)
    plain.connect(*broker.addr)
    plain.loop_start()
    try:
        ws.subscribe(topic, qos=1)
        subscribed.get(timeout=WAIT)
        plain.publish(topic, b"x" * 200_000, qos=1).wait_for_publish(WAIT)
        assert got.get(timeout=WAIT) == (topic, b"x" * 200_000)
        back = f"{topic}/back"
        plain.subscribe(back, qos=1)
        answers: queue.Queue = queue.Queue()
        plain.on_message = lambda c, u, m: answers.put(m.payload)
        publish_until_received(ws, back, b"from the websocket", answers)
    finally:
        ws.loop_stop()
        plain.loop_stop()
        ws.disconnect()
        plain.disconnect()
