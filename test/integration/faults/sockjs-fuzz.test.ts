/**
 * Fault point 1 on SockJS, the volume part: random SockJS message shapes (JSON arrays of
 * non-strings, objects, nested and deeply nested arrays, huge `length` fields, `__proto__` tricks,
 * invalid JSON, huge strings, many small messages, messages over the limit) thrown at /ws over the
 * websocket transport, xhr_send and jsonp_send, each answer checked (sockjs-fuzz-support.ts). The
 * instance runs in its own process, so that its liveness is its own: its event loop must never be
 * held for half a second (its own event-loop delay histogram), /healthz, probed from another thread
 * every 10 ms, must answer throughout and within a second, and bystander sessions on SockJS must get
 * every push, in order. Liveness bounds, not speed targets: both readings also count the time the
 * machine did not run the process (with other work on these 2 cores a healthy instance showed 219 ms
 * of event-loop delay and a 167 ms /healthz answer), while an input that holds the loop (a
 * quadratic parse, a synchronous walk of a huge message) holds it for seconds. FUZZ_SEED replays a
 * run.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { startInstances, type Instance } from '../../support/instances';
import { HealthzProbe } from '../../support/latency-probe';
import { metricSum } from '../../support/metrics';
import { openSockJs, type SockJsRawClient, type SockJsRawTransport } from '../../support/sockjs-raw';
import { sleep, waitFor } from '../../support/wait';
import { Rng } from './fuzz-support';
import { sockJsWorker, type Route, type SockJsTally } from './sockjs-fuzz-support';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const TARGET = Number(process.env.SOCKJS_FUZZ_MESSAGES ?? 20_000);
const SECONDS = Number(process.env.SOCKJS_FUZZ_SECONDS ?? 15);
/** The instance's SockJS message limit with default settings: 8 x (MAX_FRAME_BYTES + MAX_HEADER_BYTES). */
const MAX_MESSAGE_BYTES = 8 * (65_536 + 8192);

/** A SockJS session of its own user, fed through REST with numbered pushes. */
class SockJsBystander {
  private sent = 0;
  private failed = '';
  private stopped = false;
  private pushing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly instance: Instance,
    readonly client: SockJsRawClient,
    private readonly user: string,
  ) {}

  static async start(instance: Instance, transport: SockJsRawTransport): Promise<SockJsBystander> {
    const user = `bystander-${randomUUID().slice(0, 8)}`;
    const client = await openSockJs(instance.url, transport);
    await client.connect(instance.token(user));
    await client.sendWithReceipt('SUBSCRIBE', { id: 'b', destination: '/user/queue/bystander' });
    const b = new SockJsBystander(instance, client, user);
    b.pushing = b.pushAll();
    return b;
  }

  /** One push every 25 ms, each once the last was accepted: their order is the order sent. */
  private async pushAll(): Promise<void> {
    while (!this.stopped) {
      await this.pushOne();
      await sleep(25);
    }
  }

  private async pushOne(): Promise<void> {
    const seq = this.sent++;
    const res = await fetch(`${this.instance.url}/api/users/${this.user}/messages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${this.instance.token('pusher', 'push')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ destination: '/queue/bystander', body: String(seq) }),
    }).catch((err: unknown) => err);
    if (!(res instanceof Response) || res.status !== 202)
      this.failed ||= `push ${seq}: ${res instanceof Response ? res.status : String(res)}`;
  }

  async stopAndCheck(): Promise<number> {
    this.stopped = true;
    await this.pushing;
    await waitFor(
      () => this.client.all('MESSAGE').length >= this.sent,
      10_000,
      `bystander to get ${this.sent} pushes`,
    );
    expect(this.failed, 'bystander pushes refused').to.equal('');
    const bodies = this.client.all('MESSAGE').map((f) => Number(f.body.toString()));
    expect(bodies).to.deep.equal([...Array(this.sent).keys()]);
    expect(this.client.all('ERROR').map((f) => header(f, 'message'))).to.deep.equal([]);
    expect(this.client.closed, 'bystander still connected').to.equal(false);
    this.client.close();
    return this.sent;
  }
}

describe('faults: SockJS message fuzzing (an instance in its own process)', function () {
  this.timeout(90_000);
  let instance: Instance;

  before(async () => {
    // The embedded broker: this is about what reaches the instance, not the relay.
    [instance] = await startInstances(1, { env: { BROKER_URL: '', MAX_SESSIONS_PER_USER: '100000' } });
  });
  after(async () => {
    await instance.stop();
  });

  it(`random SockJS shapes over websocket, xhr_send and jsonp_send: every answer right, the event loop never held 500 ms, /healthz always answering, bystanders unaffected`, async () => {
    const bystanders = [
      await SockJsBystander.start(instance, 'websocket'),
      await SockJsBystander.start(instance, 'xhr-streaming'),
    ];
    const heapBefore = await metricSum(instance.url, 'nodejs_heap_size_used_bytes');
    const refusedBefore = await metricSum(instance.url, 'stomp_sockjs_messages_refused_total');
    const probe = new HealthzProbe(instance.url);
    const tally: SockJsTally = { messages: 0, sessions: 0, byKind: {}, failures: [] };
    const started = Date.now();
    const limits = { maxMessageBytes: MAX_MESSAGE_BYTES, deadline: started + SECONDS * 1000, target: TARGET };
    const routes: Route[] = ['websocket', 'websocket', 'xhr_send', 'xhr_send', 'jsonp_send'];
    await Promise.all(
      routes.map((route, i) =>
        sockJsWorker(instance.url, route, instance.token(`fuzz${i}`), new Rng(SEED * 8 + i), tally, limits),
      ),
    );
    const seconds = (Date.now() - started) / 1000;
    const live = await probe.stop();
    const pushes = [];
    for (const b of bystanders) pushes.push(await b.stopAndCheck());
    // The instance's own view (its event-loop delay since the scrape before the fuzz), for the log.
    const lagMs = (await metricSum(instance.url, 'nodejs_eventloop_lag_max_seconds')) * 1000;
    const refused = (await metricSum(instance.url, 'stomp_sockjs_messages_refused_total')) - refusedBefore;
    const heapAfter = await metricSum(instance.url, 'nodejs_heap_size_used_bytes');
    console.log(
      `      sockjs fuzz seed ${SEED}: ${tally.messages} messages over ${tally.sessions} sessions in ${seconds.toFixed(1)} s ` +
        `(${Object.entries(tally.byKind)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}); refused and counted ${refused}; ` +
        `/healthz worst ${live.worstMs.toFixed(1)} ms over ${live.answers} answers (event-loop delay at most ${lagMs.toFixed(1)} ms); ` +
        `bystander pushes ${pushes.join(' + ')}; ` +
        `heap ${(heapBefore / 2 ** 20).toFixed(1)} -> ${(heapAfter / 2 ** 20).toFixed(1)} MiB (no forced GC)`,
    );
    expect(tally.failures, `seed ${SEED}`).to.deep.equal([]);
    expect(instance.exited, 'instance exited').to.equal(false);
    expect(live.failures, '/healthz failures').to.equal(0);
    expect(lagMs, 'longest event-loop delay of the instance, ms').to.be.below(500);
    expect(live.worstMs, 'worst /healthz answer, ms').to.be.below(1000);
    expect(tally.messages).to.be.greaterThan(500);
    expect(refused, 'refusals counted').to.be.greaterThan(200);
  });
});
