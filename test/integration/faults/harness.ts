/**
 * Helpers shared by the fault tests: REST pushes, heap measurements and a bystander session that
 * must keep receiving while a test attacks others. Authorization files and /metrics reads are in
 * test/support/authorization.ts and test/support/metrics.ts.
 */
import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { userTarget } from '../../support/broker-harness';
import { publishDirect, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';

/** POST /api/users/{user}/messages; resolves with the status and the parsed body. */
export async function pushToUser(
  url: string,
  token: string,
  user: string,
  body: unknown,
  destination = '/queue/greetings',
  timeoutMs = 10_000,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/users/${encodeURIComponent(user)}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ destination, body }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

let gcFunction: (() => void) | undefined;

/** V8's gc(), made reachable without --expose-gc on the command line. */
export function gc(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

/** heapUsed after a full collection, in MiB. */
export function heapUsedMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

/**
 * Heap and Buffer memory still reachable after a full collection, in MiB: what the service holds (a
 * stalled client's backlog, say). Without the collection a reading also counts the garbage of a
 * load not yet collected, which varied from 15 to 65 MiB between runs with nothing held. Two
 * collections: V8 frees the Buffer memory a collection found dead on a background sweep that the
 * next collection finishes, so after one alone `arrayBuffers` still counted up to 26 MiB of dead
 * Buffers under load (4 pipelined publishers at ~3,000 SENDs/s each).
 */
export function liveMemoryMb(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 1024 / 1024;
}

/**
 * A session that must not notice what a test does to others: subscribed to its own user queue and
 * fed by a timer straight through the service's broker, with a sequence number in every body.
 */
export class Bystander {
  private sent = 0;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly service: RunningService,
    readonly client: RawStompClient,
    readonly user: string,
  ) {}

  static async start(service: RunningService, transport: RawTransport, everyMs = 20): Promise<Bystander> {
    const user = `bystander-${randomUUID().slice(0, 8)}`;
    const client = await connectRaw(service, user, { transport });
    await client.sendWithReceipt('SUBSCRIBE', { id: 'b', destination: '/user/queue/bystander' });
    const bystander = new Bystander(service, client, user);
    bystander.timer = setInterval(() => bystander.pushOne(), everyMs);
    return bystander;
  }

  private pushOne(): void {
    const seq = this.sent++;
    publishDirect(this.service, userTarget(this.user, 'bystander'), String(seq)).catch(() => {
      this.sent = Number.NaN; // makes check() fail loudly: the broker refused a bystander push
    });
  }

  /** Stops pushing and checks every push arrived, in order, on a session that is still open. */
  async stopAndCheck(minPushes = 1): Promise<number> {
    clearInterval(this.timer);
    const sent = this.sent;
    expect(sent, 'bystander pushes').to.be.at.least(minPushes);
    await waitFor(
      () => this.client.all('MESSAGE').length >= sent,
      10_000,
      `bystander to receive ${sent} pushes`,
    );
    const bodies = this.client.all('MESSAGE').map((f) => Number(f.body.toString()));
    expect(bodies).to.deep.equal([...Array(sent).keys()]);
    expect(this.client.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
    expect(this.client.closed, 'bystander still connected').to.equal(false);
    this.client.close();
    return sent;
  }

  stop(): void {
    clearInterval(this.timer);
    this.client.close();
  }
}
