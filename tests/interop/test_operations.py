"""The HTTP listener with tools a user would point at it: Prometheus's own Python
client library parses ``/metrics`` (OpenMetrics), plain ``urllib`` uses the HTTP bus
next to paho-mqtt and nats-py clients, and reads nats-server's ``/varz``."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request

import nats
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from helpers import WAIT, Client, bounded_async

run = bounded_async(20.0)


def http(broker, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         listener: str = "http"):
    """(status, body) of one request to the broker's listener named ``listener``."""
    # `>`, `#` and `+` in subjects and topics are percent-encoded, as in any URL.
    url = f"http://127.0.0.1:{broker.listening(listener)}{urllib.parse.quote(path, safe='/?=&')}"
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=WAIT) as resp:
        return resp.status, resp.read()


def received(broker, protocol: str) -> float:
    """dwbroker_messages_received_total for ``protocol``, as Prometheus reads it."""
    _, text = http(broker, "GET", "/metrics")
    for family in text_string_to_metric_families(text.decode()):
        if family.name == "dwbroker_messages_received":
            for sample in family.samples:
                if sample.labels.get("protocol") == protocol:
                    return sample.value
    raise AssertionError("no dwbroker_messages_received sample for " + protocol)


def test_metrics_parse_as_openmetrics_and_count_what_paho_published(broker, uid):
    before = received(broker, "mqtt")
    c = Client(broker, f"{uid}-metrics")
    c.connect()
    for i in range(3):
        c.publish(f"metrics/{uid}", f"m{i}".encode(), qos=1)
    c.disconnect()
    # A disconnected client's counts stay in the totals (counters are cumulative).
    assert received(broker, "mqtt") >= before + 3


def test_the_http_bus_reaches_paho_and_returns_what_nats_published(broker, uid):
    sub = Client(broker, f"{uid}-sub")
    sub.connect()
    sub.subscribe([(f"bus/{uid}/+", 1)])
    status, answer = http(broker, "POST", f"/mqtt/bus/{uid}/kitchen", b"21.5", {"X-QoS": "1"})
    assert status == 200 and json.loads(answer)["matched"] >= 1
    m = sub.get()
    assert (m.topic, m.payload) == (f"bus/{uid}/kitchen", b"21.5")
    sub.disconnect()

    # A held GET subscription, then nats-py publishes, then the next poll has it.
    path = f"/nats/bus.{uid}.>"
    assert http(broker, "GET", path, headers={"X-Client-Id": uid}) == (200, b"[]")

    @run
    async def publish():
        nc = await asyncio.wait_for(nats.connect(broker.nats_url, allow_reconnect=False), WAIT)
        await nc.publish(f"bus.{uid}.garage", b"19")
        await nc.flush()
        await nc.close()

    publish()
    _, answer = http(broker, "GET", path + "?wait_ms=3000", headers={"X-Client-Id": uid})
    got = json.loads(answer)
    assert [(m["subject"], m["payload"]) for m in got] == [(f"bus.{uid}.garage", "19")]
    assert http(broker, "DELETE", path, headers={"X-Client-Id": uid})[0] == 204


def test_nats_server_monitoring_reads_as_nats_server_s(broker):
    _, answer = http(broker, "GET", "/varz", listener="nats-monitor")
    varz = json.loads(answer)
    assert varz["port"] == broker.listening("nats")
    for key in ("server_id", "version", "in_msgs", "out_msgs", "connections", "uptime"):
        assert key in varz, key
    _, answer = http(broker, "GET", "/connz?subs=1", listener="nats-monitor")
    assert "connections" in json.loads(answer)
