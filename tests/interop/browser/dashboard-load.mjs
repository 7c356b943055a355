// Load for scripts/dashboard-screenshot.sh's picture; runs until killed:
//
//   node dashboard-load.mjs MQTT_WS_PORT NATS_WS_PORT STOMP_PORT
//
// two MQTT.js publishers and a subscriber over WebSocket, a nats.ws publisher and
// subscriber, and a STOMP queue nobody consumes (so the queue table shows a depth).
import net from "node:net";
import mqtt from "mqtt";
import { WebSocket } from "ws";

globalThis.WebSocket ??= WebSocket;
const { connect } = await import("nats.ws");
const [mqttWs, natsWs, stomp] = process.argv.slice(2);

const sub = mqtt.connect(`ws://127.0.0.1:${mqttWs}/mqtt`, { clientId: "dashboard-viewer", protocolVersion: 5 });
sub.on("connect", () => sub.subscribe(["sensors/+/temperature", "alerts/#"]));
for (const name of ["sensor-kitchen", "sensor-garage"]) {
  const c = mqtt.connect(`ws://127.0.0.1:${mqttWs}/mqtt`, { clientId: name });
  c.on("connect", () => setInterval(() => c.publish(`sensors/${name}/temperature`, "21.5"), 20));
}

const nc = await connect({ servers: `ws://127.0.0.1:${natsWs}`, name: "orders-service" });
nc.subscribe("orders.>");
setInterval(() => nc.publish("orders.created", "{}"), 10);

const s = net.connect(Number(stomp), "127.0.0.1", () => {
  s.write("CONNECT\naccept-version:1.2\nhost:/\nclient-id:billing-batch\n\n\0");
  for (let i = 0; i < 42; i++) {
    s.write(`SEND\ndestination:/queue/invoices\npersistent:true\n\ninvoice ${i}\0`);
  }
});
s.on("data", () => {});
