// A WebSocket-shaped wrapper over a plain TCP socket, so that @stomp/stompjs can
// speak STOMP to a TCP listener (what stompjs does over a real WebSocket, minus the framing).
import net from 'node:net';

export class TcpWebSocket {
  constructor(host, port) {
    this.readyState = 0; // CONNECTING
    this.binaryType = 'arraybuffer';
    this.url = `tcp://${host}:${port}`;
    this.onopen = null; this.onmessage = null; this.onclose = null; this.onerror = null;
    this.socket = net.connect(port, host, () => {
      this.readyState = 1;
      this.onopen && this.onopen({});
    });
    this.socket.on('data', (buf) => {
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      this.onmessage && this.onmessage({ data: ab });
    });
    this.socket.on('error', (e) => { this.onerror && this.onerror(e); });
    this.socket.on('close', () => {
      this.readyState = 3;
      this.onclose && this.onclose({ code: 1000, reason: '', wasClean: true });
    });
  }
  send(data) { this.socket.write(typeof data === 'string' ? data : Buffer.from(data)); }
  close() { this.readyState = 2; this.socket.end(); }
  terminate() { this.readyState = 3; this.socket.destroy(); }
}
