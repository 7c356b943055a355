"""@stomp/stompjs 7.5.0, the browser STOMP client, against the STOMP listener.

stompjs speaks STOMP over a WebSocket; ``stompjs/tcp-websocket.mjs`` gives it a
WebSocket-shaped plain TCP socket, so its parser, heart-beating, escaping, receipts,
transactions and temp-queue handling run unchanged against the TCP listener
(``test_browser.py`` runs it in Chromium over the WebSocket listener).  ``stompjs/scenario.mjs`` runs the steps
and asserts each; ``.ci/run`` installs node and the pinned package (``npm ci``).  Point
it at RabbitMQ with ``DWBROKER_STOMP_ADDR`` like the stomp.py suite (it then sends
``host:/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from conftest import external_stomp

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stompjs")
STEPS = 7


def test_stompjs_scenario(stomp_addr, uid):
    node = shutil.which("node")
    assert node, "node is required: .ci/run installs it (apt-get install nodejs npm)"
    assert os.path.isdir(os.path.join(HERE, "node_modules", "@stomp", "stompjs")), \
        "run `npm ci --prefix tests/interop/stompjs` (.ci/run does)"
    env = dict(os.environ)
    if external_stomp():
        env["STOMP_HOST"] = "/"
    r = subprocess.run([node, "scenario.mjs", str(stomp_addr[1]), uid], cwd=HERE, env=env,
                       capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert out.count("\nok ") + out.startswith("ok ") == STEPS, out
