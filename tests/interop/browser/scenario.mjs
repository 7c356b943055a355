// Runs in the page: MQTT.js, @stomp/stompjs and nats.ws, each over dwbroker's WebSocket
// listener, talk to each other and to the test's Python clients.  run.mjs calls
// `window.dwConnect` (subscribe everything, then the test publishes) and
// `window.dwExchange` (publish across protocols, wait for every expected message).
import { connect as natsConnect, StringCodec } from "/nats.js";

const sc = StringCodec();
const text = (bytes) => new TextDecoder().decode(bytes);
const WAIT_MS = 10000;

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), WAIT_MS)),
  ]);
}

// One promise per expected message, settled by whichever client's callback sees it.
class Expect {
  constructor() { this.waiting = new Map(); this.log = []; }
  promise(key) {
    let resolve;
    const p = new Promise((r) => { resolve = r; });
    this.waiting.set(key, { p, resolve });
    return p;
  }
  deliver(key, body) {
    const w = this.waiting.get(key);
    if (w) { w.resolve(body); }
  }
  all() {
    return [...this.waiting.entries()].map(([key, w]) =>
      withTimeout(w.p, key).then((body) => ({ key, body })));
  }
}

const expect = new Expect();
let clients = null;

window.dwConnect = async function (ports, uid) {
  const host = location.hostname;
  for (const k of ["mqtt:in", "mqtt:to-mqtt", "stomp:in", "stomp:to-stomp", "nats:in", "nats:to-nats"]) {
    expect.promise(k);
  }

  const m = mqtt.connect(`ws://${host}:${ports.mqtt}/mqtt`, {
    protocolVersion: 5, clientId: `browser-${uid}`, reconnectPeriod: 0, connectTimeout: WAIT_MS,
  });
  m.on("message", (topic, payload) => {
    const leaf = topic.split("/").pop();
    expect.deliver(`mqtt:${leaf}`, payload);
  });
  await withTimeout(new Promise((resolve, reject) => {
    m.once("connect", resolve);
    m.once("error", reject);
  }), "MQTT.js connect");
  await withTimeout(m.subscribeAsync([`browser/${uid}/in`, `browser/${uid}/to-mqtt`], { qos: 1 }),
    "MQTT.js subscribe");

  const s = new StompJs.Client({
    brokerURL: `ws://${host}:${ports.stomp}/ws`, reconnectDelay: 0,
    heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  await withTimeout(new Promise((resolve, reject) => {
    s.onConnect = resolve;
    s.onStompError = (frame) => reject(new Error(`STOMP ERROR ${frame.headers.message}`));
    s.onWebSocketError = () => reject(new Error("STOMP WebSocket error"));
    s.activate();
  }), "stompjs connect");
  for (const leaf of ["in", "to-stomp"]) {
    const receipt = `sub-${leaf}`;
    const done = new Promise((resolve) => s.watchForReceipt(receipt, resolve));
    s.subscribe(`/topic/browser.${uid}.${leaf}`, (msg) => expect.deliver(`stomp:${leaf}`, msg.binaryBody),
      { receipt });
    await withTimeout(done, `stompjs SUBSCRIBE receipt ${leaf}`);
  }

  const n = await withTimeout(natsConnect({ servers: `ws://${host}:${ports.nats}` }), "nats.ws connect");
  for (const leaf of ["in", "to-nats"]) {
    const sub = n.subscribe(`browser.${uid}.${leaf}`);
    (async () => { for await (const msg of sub) { expect.deliver(`nats:${leaf}`, msg.data); } })();
  }
  // A service the test's Python NATS client calls through the bus.
  const svc = n.subscribe(`browser.${uid}.upper`);
  // The page stays until the service has answered: the test's request may arrive
  // after every other expected message.
  let answered;
  const served = new Promise((resolve) => { answered = resolve; });
  (async () => {
    for await (const msg of svc) {
      msg.respond(sc.encode(text(msg.data).toUpperCase()));
      answered();
    }
  })();
  await n.flush();

  clients = { m, s, n, uid, served };
  document.getElementById("state").textContent = "connected";
  return "connected";
};

window.dwExchange = async function (inLength) {
  const { m, s, n, uid, served } = clients;
  const results = [];
  // Each client publishes to another protocol's subscriber and to the test's MQTT client.
  m.publish(`browser/${uid}/to-nats`, "from MQTT.js", { qos: 1 });
  s.publish({ destination: `/topic/browser.${uid}.to-mqtt`, body: "from stompjs" });
  n.publish(`browser.${uid}.to-stomp`, sc.encode("from nats.ws"));
  m.publish(`browser/${uid}/out/mqtt`, "out from MQTT.js", { qos: 1 });
  s.publish({ destination: `/topic/browser.${uid}.out.stomp`, body: "out from stompjs" });
  n.publish(`browser.${uid}.out.nats`, sc.encode("out from nats.ws"));
  await n.flush();

  const expected = {
    "mqtt:to-mqtt": "from stompjs",
    "stomp:to-stomp": "from nats.ws",
    "nats:to-nats": "from MQTT.js",
  };
  for (const { key, body } of await Promise.all(expect.all())) {
    const bytes = new Uint8Array(body);
    if (key.endsWith(":in")) {
      // The test's message: inLength bytes of "0123456789" repeated.
      const ok = bytes.length === inLength && bytes.every((b, i) => b === 48 + (i % 10));
      if (!ok) { throw new Error(`${key}: ${bytes.length} bytes, wanted ${inLength} in the pattern`); }
    } else if (text(bytes) !== expected[key]) {
      throw new Error(`${key}: got ${JSON.stringify(text(bytes))}, wanted ${JSON.stringify(expected[key])}`);
    }
    results.push(`ok ${key} ${bytes.length} bytes`);
  }

  await withTimeout(served, "nats.ws service answered the request");
  await m.endAsync();
  await s.deactivate();
  await n.drain();
  results.sort();
  return results;
};

document.getElementById("state").textContent = "loaded";
