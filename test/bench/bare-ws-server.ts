/**
 * The ceiling: a bare `ws` server, no STOMP, no broker. Clients on any path but /pub are
 * subscribers; each message a /pub client sends is written to every subscriber as is, then acked
 * to the publisher with `k` (so publishers are flow-controlled the way STOMP RECEIPTs do it).
 * Prints `{"port":N}` once listening. Run in its own process, like the service.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const subscribers = new Set<WebSocket>();
const server = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  if (req.url === '/pub') {
    ws.on('message', (data: Buffer) => {
      for (const s of subscribers) s.send(data, { binary: false });
      ws.send('k');
    });
    return;
  }
  subscribers.add(ws);
  ws.on('close', () => subscribers.delete(ws));
  ws.on('error', () => subscribers.delete(ws));
});

server.listen(0, '0.0.0.0', () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`,
  );
});
process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
});
