/**
 * Idle keep-alive connections: the server must not be the side that idles out first, or a backend's
 * HTTP agent sends its next push on a connection the server is closing and gets "socket hang up".
 * Read from a raw socket, as a client sees it: the Keep-Alive hint and when the server closes.
 */
import { connect, type Socket } from 'node:net';
import { expect } from 'chai';

import { startRestApp, type RestApp } from './harness';

interface Exchange {
  head: string;
  /** Milliseconds from the end of the answer to the server closing the connection. */
  closedAfter: Promise<number>;
}

/** One GET /healthz on a fresh keep-alive connection; the socket stays open for the next. */
function exchange(app: RestApp): Promise<Exchange & { socket: Socket }> {
  const { hostname, port } = new URL(app.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    socket.setEncoding('latin1');
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(`GET /healthz HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`),
    );
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text);
      if (end < 0 || length === null || text.length < end + 4 + Number(length[1])) return;
      socket.removeAllListeners('data');
      const answered = Date.now();
      const closedAfter = new Promise<number>((closed) =>
        socket.on('close', () => closed(Date.now() - answered)),
      );
      resolve({ head: text.slice(0, end), closedAfter, socket });
    });
  });
}

describe('HTTP keep-alive: idle connections outlive the clients that reuse them', function () {
  this.timeout(20_000);
  let app: RestApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it("by default tells clients it keeps an idle connection 65 s, and is still open after Node's 5 s default", async () => {
    app = await startRestApp();
    const first = await exchange(app);
    expect(first.head).to.match(/^HTTP\/1\.1 200/);
    expect(first.head).to.match(/\r\nkeep-alive: timeout=65(\r\n|$)/i);
    const early = await Promise.race([
      first.closedAfter,
      new Promise<'open'>((r) => setTimeout(() => r('open'), 6000)),
    ]);
    expect(early, 'the server closed the idle connection before 6 s').to.equal('open');
    // And the connection still serves the next request.
    const answer = new Promise<string>((resolve) =>
      first.socket.once('data', (chunk: string) => resolve(chunk)),
    );
    first.socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(await answer).to.match(/^HTTP\/1\.1 200/);
    first.socket.destroy();
  });

  it('HTTP_KEEP_ALIVE_TIMEOUT_MS sets the hint and when the server closes an idle connection', async () => {
    app = await startRestApp({ settings: { httpKeepAliveTimeoutMs: 1500 } });
    const first = await exchange(app);
    expect(first.head).to.match(/\r\nkeep-alive: timeout=1(\r\n|$)/i);
    const closedAfter = await first.closedAfter;
    // Node checks idle connections on its own timer: allow it a second past the setting.
    expect(closedAfter).to.be.within(1000, 3500);
  });
});
