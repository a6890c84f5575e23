/**
 * docker/nginx/nginx.conf routes the way SockJS needs, checked against three small stand-in
 * backends (no service, no broker): every request of one SockJS session reaches one backend,
 * sessions and session-less requests spread, WebSocket upgrades and the forwarding headers pass,
 * xhr-streaming chunks are not held back, and a session whose backend is down is never served by
 * another one (session-less requests are), before or after its backend comes back.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort } from '../../support/cluster';
import { findNginx, nginxArgs, writeNginxConfig } from '../../support/nginx';
import { waitFor } from '../../support/wait';

interface Seen {
  backend: number;
  url: string;
  headers: IncomingMessage['headers'];
}

/** A backend that answers with its number and what it received; `/ws/.../xhr_streaming` streams. */
function startBackend(backend: number, port = 0): Promise<Server> {
  const server = createServer((req, res) => {
    const seen: Seen = { backend, url: req.url ?? '', headers: req.headers };
    if (req.url?.endsWith('/xhr_streaming')) {
      // SockJS-like: a prelude at once, the next frame a moment later.
      res.writeHead(200, { 'content-type': 'application/javascript; charset=UTF-8' });
      res.write(`${JSON.stringify(seen)}\n`);
      setTimeout(() => res.end('second\n'), 1_500);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(seen));
  });
  const wss = new WebSocketServer({ server, handleProtocols: (protocols) => [...protocols][0] ?? false });
  wss.on('connection', (socket, req) => {
    socket.send(JSON.stringify({ backend, url: req.url, protocol: socket.protocol }));
    socket.on('message', (data) => socket.send(`echo:${String(data)}`));
  });
  return new Promise((resolveServer) => server.listen(port, '127.0.0.1', () => resolveServer(server)));
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

function sessionId(): string {
  return randomBytes(6).toString('hex');
}

describe('docker/nginx/nginx.conf routing (stand-in backends)', function () {
  this.timeout(30_000);
  let backends: Server[] = [];
  let nginx: ChildProcess | undefined;
  let dir = '';
  let base = '';

  before(async function () {
    const binary = findNginx();
    if (!binary) this.skip();
    backends = await Promise.all([1, 2, 3].map(startBackend));
    dir = mkdtempSync(join(tmpdir(), 'stomp-relay-nginx-routing-'));
    const lbPort = await freePort();
    const layout = writeNginxConfig(dir, lbPort, backends.map(portOf));
    nginx = spawn(binary!, nginxArgs(layout), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    base = `http://127.0.0.1:${lbPort}`;
    await waitFor(
      async () => {
        if (nginx?.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
        return (await fetch(`${base}/healthz`)).ok;
      },
      10_000,
      'nginx to answer',
    );
  });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolveExit) => nginx!.once('exit', resolveExit));
      nginx.kill('SIGTERM');
      await exited;
    }
    await Promise.all(backends.map((server) => new Promise((done) => server.close(done))));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function get(path: string, init?: RequestInit): Promise<Seen> {
    const res = await fetch(`${base}${path}`, init);
    expect(res.status, path).to.equal(200);
    return (await res.json()) as Seen;
  }

  it('sends every request of one SockJS session to one backend, and spreads sessions', async () => {
    const backendOfSession = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const session = sessionId();
      const server = String(100 + i);
      const seen = [
        await get(`/ws/${server}/${session}/xhr`, { method: 'POST' }),
        await get(`/ws/${server}/${session}/xhr_send`, { method: 'POST', body: '["x"]' }),
        await get(`/ws/${server}/${session}/xhr`, { method: 'POST' }),
        await get(`/ws/${server}/${session}/eventsource`),
      ];
      expect(new Set(seen.map((s) => s.backend)).size, `session ${session}`).to.equal(1);
      backendOfSession.set(session, seen[0]!.backend);
    }
    expect(new Set(backendOfSession.values()).size, 'backends that got sessions').to.equal(3);
  });

  it('spreads requests without a session (/ws/info, /api, /stomp) over the backends', async () => {
    const backends = new Set<number>();
    for (let i = 0; i < 30; i++)
      backends.add((await get(i % 2 ? '/ws/info' : '/api/users/alice/sessions')).backend);
    expect(backends.size).to.be.at.least(2);
  });

  it('passes Host with its port and the X-Forwarded-* headers', async () => {
    const { headers } = await get('/api/anything');
    expect(headers.host).to.equal(new URL(base).host);
    expect(headers['x-forwarded-host']).to.equal(new URL(base).host);
    expect(headers['x-forwarded-for']).to.equal('127.0.0.1');
    expect(headers['x-real-ip']).to.equal('127.0.0.1');
    expect(headers['x-forwarded-proto']).to.equal('http');
  });

  it('proxies WebSocket upgrades on /stomp and /ws/.../websocket, subprotocol included', async () => {
    for (const path of ['/stomp?access_token=t', `/ws/000/${sessionId()}/websocket`]) {
      const socket = new WebSocket(`${base.replace('http', 'ws')}${path}`, ['v12.stomp', 'v11.stomp']);
      const messages: string[] = [];
      socket.on('message', (data) => messages.push(String(data)));
      await new Promise<void>((resolveOpen, reject) => {
        socket.once('open', () => resolveOpen());
        socket.once('error', reject);
      });
      expect(socket.protocol).to.equal('v12.stomp');
      socket.send('ping');
      await waitFor(() => messages.length >= 2, 5_000, `hello and echo over ${path}`);
      expect((JSON.parse(messages[0]!) as { url: string }).url).to.equal(path);
      expect(messages[1]).to.equal('echo:ping');
      socket.close();
    }
  });

  it('logs which backend served which key, and never a query string (tokens ride in it)', async () => {
    const session = sessionId();
    const { backend } = await get(`/ws/000/${session}/xhr_send?access_token=secret-token`, {
      method: 'POST',
    });
    const port = portOf(backends[backend - 1]!);
    const log = (): string =>
      existsSync(join(dir, 'access.log')) ? readFileSync(join(dir, 'access.log'), 'utf8') : '';
    await waitFor(() => log().includes(`key=${session}`), 5_000, 'the access log line');
    const line = log()
      .split('\n')
      .find((l) => l.includes(`key=${session}`))!;
    expect(line).to.include(`"POST /ws/000/${session}/xhr_send HTTP/1.1" 200`);
    expect(line).to.include(`upstream=127.0.0.1:${port} `);
    expect(log()).to.not.include('access_token');
    expect(log()).to.not.include('secret-token');
  });

  it('passes xhr-streaming chunks on at once (no proxy buffering)', async () => {
    const path = `/ws/000/${sessionId()}/xhr_streaming`;
    const started = Date.now();
    const firstChunkAfter = await new Promise<number>((resolveChunk, reject) => {
      const req = request(`${base}${path}`, { method: 'POST' }, (res) => {
        res.once('data', () => {
          resolveChunk(Date.now() - started);
          res.resume();
        });
      });
      req.once('error', reject);
      req.end();
    });
    // The backend holds the rest for 1.5 s; the first chunk must not wait for it.
    expect(firstChunkAfter).to.be.below(1_000);
  });

  it('never moves a SockJS session off its backend, while that is down or once it is back', async () => {
    const sessions = Array.from({ length: 12 }, sessionId);
    const before = new Map<string, number>();
    for (const session of sessions)
      before.set(session, (await get(`/ws/0/${session}/xhr`, { method: 'POST' })).backend);
    const victim = before.get(sessions[0]!)!;
    const server = backends[victim - 1]!;
    const port = portOf(server);
    server.closeAllConnections();
    await new Promise((done) => server.close(done));

    for (const session of sessions) {
      const res = await fetch(`${base}/ws/0/${session}/xhr`, { method: 'POST' });
      if (before.get(session) === victim) {
        // Served elsewhere, the session would be split: its instance or nothing (the client starts over).
        expect(res.status, `session ${session} of the stopped backend`).to.equal(502);
        continue;
      }
      expect(res.status, session).to.equal(200);
      // Consistent hashing: sessions of the backends still up stay where they were.
      expect(((await res.json()) as Seen).backend, session).to.equal(before.get(session));
    }
    // Requests that belong to no session are still served, by the others.
    for (let i = 0; i < 10; i++) expect((await get('/ws/info')).backend).to.not.equal(victim);

    // Back at once: nothing marked it failed (max_fails=0), so its sessions' next requests reach it
    // and not, for a fail_timeout, whichever backend comes next on the hash ring.
    backends[victim - 1] = await startBackend(victim, port);
    for (const session of sessions)
      expect((await get(`/ws/0/${session}/xhr`, { method: 'POST' })).backend, session).to.equal(
        before.get(session),
      );
  });
});
