"""The dashboard (``/`` on the HTTP listener) in a real browser: Debian's headless
Chromium, driven by playwright-core (``browser/dashboard.mjs``), at 1280x800.

The page loads with no console error, shows the MQTT connection this test opens, shows
a receive rate above zero on it while the test publishes, and its Close button closes
the connection: the client is sent DISCONNECT 0x98 (Administrative action)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

from helpers import WAIT, Client

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test_dashboard_shows_a_connection_its_rate_and_closes_it(broker, uid):
    node = shutil.which("node")
    assert node, "node is required: .ci/run installs it (apt-get install nodejs npm)"
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: .ci/run installs Debian's chromium"
    base = f"http://127.0.0.1:{broker.listening('http')}"

    client = Client(broker, f"{uid}-dash")
    client.connect()
    stop = threading.Event()

    def publish():
        while not stop.is_set() and not client.disconnected.is_set():
            client.c.publish(f"dash/{uid}", b"tick", qos=0)
            time.sleep(0.02)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    page = subprocess.Popen([node, "dashboard.mjs", base, f"{uid}-dash"], cwd=HERE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = page.communicate(timeout=60)
    finally:
        page.kill()
        stop.set()
        publisher.join(WAIT)
    assert page.returncode == 0, f"{out}\n{err}"
    lines = out.splitlines()
    assert lines[0].startswith("seen "), out
    assert lines[1].startswith("rate ") and float(lines[1].split()[1].replace(",", "")) > 0, out
    assert lines[-1] == "closed", out
    reason = client.wait_disconnected()
    assert (reason, client.disconnect_from_server) == (0x98, True)
