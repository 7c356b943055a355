"""MQTT over WebSocket with paho-mqtt's websockets transport (path /mqtt, subprotocol
mqtt), NATS over WebSocket with nats-py's (aiohttp) and STOMP over WebSocket with
stomp.py's (websocket-client) against the real binary, to and from plain TCP clients."""

from __future__ import annotations

import asyncio
import queue
import uuid

import nats
import paho.mqtt.client as mqtt
import pytest
import stomp

from helpers import WAIT, bounded_async, publish_until_received


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


@bounded_async(20)
async def test_nats_py_over_websocket_and_tcp(broker, uid):
    """nats-py's WebSocket transport (aiohttp) on the NATS WebSocket listener, to and
    from a NATS client on TCP, a request answered across the two included."""
    ws = await asyncio.wait_for(nats.connect(f"ws://127.0.0.1:{broker.listening('nats-ws')}"), WAIT)
    tcp = await asyncio.wait_for(nats.connect(broker.nats_url), WAIT)
    try:
        inbox = await ws.subscribe(f"ws.{uid}.in")

        async def upper(msg):
            await msg.respond(msg.data.upper())

        await ws.subscribe(f"ws.{uid}.upper", cb=upper)
        await ws.flush()
        big = bytes(i % 251 for i in range(300_000))
        await tcp.publish(f"ws.{uid}.in", big)
        got = await inbox.next_msg(timeout=WAIT)
        assert got.data == big
        reply = await tcp.request(f"ws.{uid}.upper", b"over the websocket", timeout=WAIT)
        assert reply.data == b"OVER THE WEBSOCKET"
        back = await tcp.subscribe(f"ws.{uid}.back")
        await tcp.flush()
        await ws.publish(f"ws.{uid}.back", b"from the websocket")
        assert (await back.next_msg(timeout=WAIT)).data == b"from the websocket"
    finally:
        await ws.close()
        await tcp.close()


def test_stomp_py_over_websocket_and_tcp(broker, uid):
    """stomp.py's WebSocket connection (websocket-client) on the Web-STOMP listener
    (path /ws), to and from a stomp.py client on TCP."""
    ws = stomp.WSStompConnection([("127.0.0.1", broker.listening("stomp-ws"))], ws_path="/ws")
    tcp = stomp.Connection([broker.stomp_addr])
    to_ws: queue.Queue = queue.Queue()
    to_tcp: queue.Queue = queue.Queue()

    receipts: queue.Queue = queue.Queue()

    class Into(stomp.ConnectionListener):
        def __init__(self, inbox):
            self.inbox = inbox

        def on_message(self, frame):
            self.inbox.put(frame.body)

        def on_receipt(self, frame):
            receipts.put(frame.headers["receipt-id"])

    ws.set_listener("in", Into(to_ws))
    tcp.set_listener("in", Into(to_tcp))
    ws.connect(wait=True)
    tcp.connect(wait=True)
    try:
        ws.subscribe(f"/topic/ws.{uid}.in", id="1", ack="auto", headers={"receipt": "s1"})
        tcp.subscribe(f"/queue/ws.{uid}.back", id="1", ack="auto", headers={"receipt": "s2"})
        assert {receipts.get(timeout=WAIT), receipts.get(timeout=WAIT)} == {"s1", "s2"}
        big = "x" * 100_000
        tcp.send(f"/topic/ws.{uid}.in", big)
        assert to_ws.get(timeout=WAIT) == big
        ws.send(f"/queue/ws.{uid}.back", "from the websocket")
        assert to_tcp.get(timeout=WAIT) == "from the websocket"
    finally:
        ws.disconnect()
        tcp.disconnect()
