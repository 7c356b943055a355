// @stomp/stompjs 7 against dwbroker: node scenario.mjs <port> <unique prefix>.
// Runs every step in order, prints one line per step, exits 0 only if all passed.
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import { TcpWebSocket } from './tcp-websocket.mjs';

const [port, uid] = [Number(process.argv[2]), process.argv[3]];
const deadline = setTimeout(() => fail(new Error('scenario timed out')), 20000);

function fail(e) {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
}

function connect() {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new TcpWebSocket('127.0.0.1', port),
      // dwbroker accepts any host (stompjs users often send the server's name);
      // RabbitMQ needs a vhost: STOMP_HOST=/ when pointing this at it.
      connectHeaders: { login: 'guest', passcode: 'guest', host: process.env.STOMP_HOST || '127.0.0.1' },
      heartbeatIncoming: 500,
      heartbeatOutgoing: 500,
      reconnectDelay: 0,
      debug: () => {},
    });
    client.onConnect = (frame) => resolve({ client, frame });
    client.onStompError = (f) => reject(new Error(`ERROR ${f.headers.message}: ${f.body}`));
    client.onWebSocketClose = () => reject(new Error('socket closed'));
    client.activate();
  });
}

// Messages of one subscription, taken in order.
function inbox(client, destination, headers = {}) {
  const queue = [];
  const waiting = [];
  const sub = client.subscribe(destination, (m) => {
    const w = waiting.shift();
    if (w) w(m); else queue.push(m);
  }, headers);
  const next = () => new Promise((resolve) => {
    const m = queue.shift();
    if (m) resolve(m); else waiting.push(resolve);
  });
  return { sub, next };
}

function receipt(client, id) {
  return new Promise((resolve) => client.watchForReceipt(id, resolve));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { client: c, frame } = await connect();
  assert.equal(frame.headers.version, '1.2');
  // Both ways on, at the client's 500 ms or slower (RabbitMQ answers 1000,1000).
  const [sx, sy] = frame.headers['heart-beat'].split(',').map(Number);
  assert.ok(sx >= 500 && sy >= 500, frame.headers['heart-beat']);
  console.log(`ok connect 1.2 with heart-beat ${sx},${sy}`);

  const q = `/queue/${uid}-js`;
  const subscribed = receipt(c, 'sub-1');
  const box = inbox(c, q, { ack: 'client-individual', id: 'js-1', receipt: 'sub-1' });
  await subscribed;
  c.publish({ destination: q, body: 'hello', headers: { 'content-type': 'text/plain', 'x-k': 'a:b\nc\\d' } });
  let m = await box.next();
  assert.equal(m.body, 'hello');
  assert.equal(m.headers['content-type'], 'text/plain');
  assert.equal(m.headers['x-k'], 'a:b\nc\\d');
  assert.equal(m.headers.destination, q);
  assert.equal(m.headers.redelivered, 'false');
  m.nack();
  m = await box.next();
  assert.equal(m.body, 'hello');
  assert.equal(m.headers.redelivered, 'true');
  m.ack();
  console.log('ok escaped headers, NACK redelivers, ACK');

  c.publish({ destination: q, binaryBody: new Uint8Array([0, 1, 255, 0]) });
  m = await box.next();
  assert.deepEqual([...m.binaryBody], [0, 1, 255, 0]);
  m.ack();
  console.log('ok binary body with NUL bytes');

  const tx = c.begin();
  c.publish({ destination: q, body: 'in tx', headers: { transaction: tx.id } });
  // Not delivered before COMMIT: a message sent after it outside the transaction
  // arrives first.
  c.publish({ destination: q, body: 'outside tx' });
  m = await box.next();
  assert.equal(m.body, 'outside tx');
  m.ack();
  tx.commit();
  m = await box.next();
  assert.equal(m.body, 'in tx');
  m.ack();
  console.log('ok transaction delivered at commit');

  const replies = `/temp-queue/${uid}`;
  const responder = inbox(c, `/queue/${uid}-svc`);
  const requesterReplies = [];
  c.publish({ destination: `/queue/${uid}-svc`, body: 'ping', headers: { 'reply-to': replies } });
  c.onUnhandledMessage = (msg) => requesterReplies.push(msg);
  const req = await responder.next();
  assert.match(req.headers['reply-to'], /^\/reply-queue\//);
  c.publish({ destination: req.headers['reply-to'], body: 'pong' });
  for (let i = 0; i < 100 && requesterReplies.length === 0; i++) await sleep(20);
  assert.equal(requesterReplies.length, 1);
  assert.equal(requesterReplies[0].body, 'pong');
  assert.equal(requesterReplies[0].headers.subscription, replies);
  console.log('ok temp-queue request/reply');

  // Idle for 3 heart-beat intervals of each side: beats keep the connection up.
  await sleep(2000);
  assert.equal(c.connected, true);
  c.publish({ destination: q, body: 'after idle' });
  m = await box.next();
  assert.equal(m.body, 'after idle');
  m.ack();
  console.log('ok heart-beats keep an idle connection');

  await c.deactivate();
  assert.equal(c.connected, false);
  console.log('ok disconnect with receipt');
  clearTimeout(deadline);
}

main().then(() => process.exit(0), fail);
