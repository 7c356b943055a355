"""MQTT.js, @stomp/stompjs and nats.ws in a real browser (Debian's headless Chromium,
driven by playwright-core) against the WebSocket listeners of the real binary.

``browser/run.mjs`` serves ``browser/page.html`` on loopback and runs
``browser/scenario.mjs`` in the page: the three clients subscribe over ws://, then
publish to each other (MQTT.js -> nats.ws -> stompjs -> MQTT.js) and to this test's paho
client, and each receives this test's 100 kB MQTT message; nats.ws also answers an MQTT 5
request.  ``.ci/run`` installs chromium and the pinned packages (``npm ci``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

from helpers import WAIT, Client, publish_props

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
IN_LENGTH = 100_000
# The page reports one line per message it received: "in" and one cross-protocol message
# for each of its three clients.
RECEIVED = ["mqtt:in", "mqtt:to-mqtt", "nats:in", "nats:to-nats", "stomp:in", "stomp:to-stomp"]


def test_browser_clients_over_websocket(broker, uid):
    node = shutil.which("node")
    assert node, "node is required: .ci/run installs it (apt-get install nodejs npm)"
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: .ci/run installs Debian's chromium"
    assert os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")), \
        "run `npm ci --prefix tests/interop/browser` (.ci/run does)"
    b = broker
    ports = [str(b.listening(p)) for p in ("mqtt-ws", "stomp-ws", "nats-ws")]

    outside = Client(b, f"{uid}-outside")
    outside.connect()
    outside.subscribe([(f"browser/{uid}/out/+", 1), (f"browser/{uid}/reply", 1)])

    page = subprocess.Popen([node, "run.mjs", *ports, uid, str(IN_LENGTH)], cwd=HERE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Bounds the whole exchange: a hung browser is killed, and the asserts below fail.
    watchdog = threading.Timer(60, page.kill)
    watchdog.start()
    try:
        first = page.stdout.readline()
        assert first == "ready\n", f"page not ready: {first!r}\n{page.stderr.read()}"
        outside.publish(f"browser/{uid}/in", bytes(48 + i % 10 for i in range(IN_LENGTH)), qos=1)
        # An MQTT 5 request answered by the page's nats.ws responder.
        outside.publish(f"browser/{uid}/upper", b"shout",
                        props=publish_props(ResponseTopic=f"browser/{uid}/reply"), qos=1)
        got = {(m.topic, m.payload) for m in outside.get_n(4, timeout=3 * WAIT)}
        out, err = page.communicate(timeout=3 * WAIT)
    finally:
        watchdog.cancel()
        page.kill()
        outside.disconnect()
    assert page.returncode == 0, f"{out}\n{err}"
    assert got == {
        (f"browser/{uid}/out/mqtt", b"out from MQTT.js"),
        (f"browser/{uid}/out/stomp", b"out from stompjs"),
        (f"browser/{uid}/out/nats", b"out from nats.ws"),
        (f"browser/{uid}/reply", b"SHOUT"),
    }
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == RECEIVED, out
    assert all(line.startswith("ok ") for line in lines), out
