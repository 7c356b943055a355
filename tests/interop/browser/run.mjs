// Serves page.html with the clients' browser bundles on loopback, opens it in headless
// Chromium (Debian's, through playwright-core) and runs scenario.mjs's two stages:
//
//   node run.mjs MQTT_WS_PORT STOMP_WS_PORT NATS_WS_PORT UID IN_LENGTH
//
// prints "ready" once the page's three clients are subscribed (the test then publishes
// its IN_LENGTH-byte message), then one "ok ..." line per message the page received.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium } from "./chromium.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const [mqttPort, stompPort, natsPort, uid, inLength] = process.argv.slice(2);
const files = {
  "/": ["page.html", "text/html"],
  "/scenario.mjs": ["scenario.mjs", "text/javascript"],
  "/mqtt.min.js": ["node_modules/mqtt/dist/mqtt.min.js", "text/javascript"],
  "/stomp.umd.min.js": ["node_modules/@stomp/stompjs/bundles/stomp.umd.min.js", "text/javascript"],
  "/nats.js": ["node_modules/nats.ws/esm/nats.js", "text/javascript"],
};

const server = http.createServer((req, res) => {
  const file = files[req.url];
  if (!file) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "content-type": file[1] });
  fs.createReadStream(path.join(here, file[0])).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));

const browser = await launchChromium();
let code = 1;
try {
  const page = await browser.newPage();
  page.on("console", (msg) => console.error(`page ${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => document.getElementById("state").textContent === "loaded");
  const ports = { mqtt: mqttPort, stomp: stompPort, nats: natsPort };
  await page.evaluate(([p, u]) => window.dwConnect(p, u), [ports, uid]);
  console.log("ready");
  const lines = await page.evaluate((n) => window.dwExchange(n), Number(inLength));
  for (const line of lines) { console.log(line); }
  code = 0;
} catch (err) {
  console.error(`failed: ${err.message}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
