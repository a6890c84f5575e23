/**
 * SockJS stickiness through nginx (docker/nginx/nginx.conf, as `npm run cluster` runs it) while the
 * three instances behind it restart one after another: xhr-streaming and xhr-polling clients (one
 * user each) and a plain WebSocket one either stay connected or, when their instance drains, are
 * told so and reconnect through nginx; after each restart every client gets a push again. nginx's
 * access log then shows that no request of one SockJS session reached two instances and none was
 * answered 404 (what a session split looks like: an xhr_send reaching an instance that does not
 * hold the session).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { startCluster, type Cluster } from '../../support/cluster';
import { ReconnectingStomp, type ReconnectingTransport } from '../../support/stomp-clients';
import { waitFor } from '../../support/wait';

const TRANSPORTS: ReconnectingTransport[] = [
  'xhr-streaming',
  'xhr-polling',
  'xhr-streaming',
  'xhr-polling',
  'websocket',
];

interface SessionRequest {
  status: number;
  transport: string;
  upstream: string;
}

/** nginx's access log by SockJS session: `"POST /ws/{server}/{session}/{transport} ..." status ... upstream=...`. */
function sockJsRequests(lines: string[]): Map<string, SessionRequest[]> {
  const bySession = new Map<string, SessionRequest[]>();
  for (const line of lines) {
    const match = /"\w+ \/ws\/[^/]+\/([^/]+)\/(\w+) [^"]*" (\d{3}) .* upstream=(.+) key=\S+$/.exec(line);
    if (!match) continue;
    const [, session, transport, status, upstream] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
    ];
    const requests = bySession.get(session) ?? [];
    requests.push({ status: Number(status), transport, upstream });
    bySession.set(session, requests);
  }
  return bySession;
}

describe('rolling restart behind nginx: SockJS sessions stay on one instance', function () {
  this.timeout(240_000);
  const run = randomBytes(3).toString('hex');
  let cluster: Cluster | undefined;
  const clients: ReconnectingStomp[] = [];

  before(async () => {
    cluster = await startCluster({
      instances: 3,
      basePort: 0,
      lbPort: 0,
      instancePrefix: `roll-${run}-`,
      logLevel: 'warn',
      env: { SHUTDOWN_TIMEOUT_MS: '2000' },
    });
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed' || !cluster) return;
    console.log(`      nginx access log:\n        ${cluster.accessLog().slice(-60).join('\n        ')}`);
    console.log(`      cluster logs:\n        ${cluster.recentLogs().slice(-30).join('\n        ')}`);
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.stop()));
    await cluster?.stop();
  });

  const user = (i: number): string => `roll-${run}-${i}`;

  function token(subject: string, scope = ''): string {
    return jwt.sign({ scope }, cluster!.secret, { algorithm: 'HS256', subject, expiresIn: 600 });
  }

  /** Pushes one message to each client's user through nginx; every client must get its own. */
  async function pushToEveryone(label: string): Promise<void> {
    const push = token(`roll-${run}-backend`, 'push');
    const text = `${label}-${Date.now()}`;
    for (const [i] of clients.entries()) {
      const res = await fetch(`${cluster!.lbUrl}/api/users/${user(i)}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${push}`, 'content-type': 'application/json' },
        body: JSON.stringify({ destination: '/queue/greetings', body: text }),
      });
      expect(res.status, await res.clone().text()).to.equal(202);
    }
    for (const client of clients)
      await waitFor(() => client.bodies.includes(text), 15_000, `${client.label} to get ${label}`);
  }

  it('keeps every client connected or cleanly reconnected through three restarts, and delivering', async () => {
    for (const [i, transport] of TRANSPORTS.entries()) {
      const client = new ReconnectingStomp({
        user: user(i),
        urls: [cluster!.lbUrl],
        transport,
        token: token(user(i)),
        destination: '/user/queue/greetings',
        reconnectDelay: 300,
      });
      clients.push(client);
      client.start();
      await client.waitLive();
    }
    // Directory and broker bindings settle before the first push.
    await pushToEveryone('before');

    for (const [index, instance] of cluster!.instances.entries()) {
      const onIt = clients.filter((client) => client.instances.at(-1) === instance.id);
      const errorsBefore = new Map(clients.map((client) => [client, client.errors.length]));
      await cluster!.restartInstance(index);
      for (const client of onIt) {
        const told = client.errors.slice(errorsBefore.get(client));
        expect(
          told.some((m) => /draining/.test(m)),
          `${client.label} on ${instance.id} was told ${told}`,
        ).to.equal(true);
      }
      await waitFor(
        () => clients.every((client) => client.live !== undefined),
        30_000,
        'every client subscribed again',
      );
      await pushToEveryone(`after-${instance.id}`);
    }

    for (const client of clients) {
      const other = client.errors.filter((m) => !/draining/.test(m));
      expect(other, `${client.label}: ERRORs other than the drain`).to.deep.equal([]);
    }
  });

  it("sends no SockJS session's requests to two instances, and none is answered 404", () => {
    const bySession = sockJsRequests(cluster!.accessLog());
    expect(bySession.size, 'SockJS sessions in the access log').to.be.at.least(4);
    for (const [session, requests] of bySession) {
      const upstreams = new Set(requests.map((r) => r.upstream));
      expect([...upstreams], `session ${session}: ${JSON.stringify(requests)}`).to.have.length(1);
      expect([...upstreams][0], `session ${session} tried several instances`).to.not.include(',');
      const lost = requests.filter((r) => r.status === 404);
      expect(lost, `session ${session}: requests for a session its instance does not hold`).to.deep.equal([]);
    }
  });
});
