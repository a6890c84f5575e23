/**
 * Fault point 4: a client that stops reading (a paused TCP socket, a WebSocket whose socket is
 * paused, a SockJS session on any of its sub-transports whose response is left unread or that stops
 * polling) is cut off once what waits for it passes SEND_BUFFER_LIMIT_BYTES, or once it has been
 * behind for SEND_TIME_LIMIT_MS, while the other sessions keep receiving everything at full rate
 * and the instance's memory stays bounded. npm test uses 200 other sessions (the soak, 1,000).
 */
import { expect } from 'chai';
import { connectRaw, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';
import type { Frame } from '../../../app/stomp/frame';
import { openSockJs, SOCKJS_RAW_TRANSPORTS } from '../../support/sockjs-raw';
import {
  behind,
  Counter,
  stalledSockJs,
  stalledTcp,
  stalledWebSocket,
  type CounterTransport,
  type Stalled,
} from './consumers';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { liveMemoryMb } from './harness';

const FAST_SESSIONS = Number(process.env.SLOW_TEST_SESSIONS ?? 200);
/** Every SockJS sub-transport; each stalls in its own way (see consumers.ts). */
const SOCKJS = SOCKJS_RAW_TRANSPORTS;

/** Healthy sessions: every tenth over SockJS (each sub-transport in turn), the rest TCP and /stomp. */
function fastTransport(i: number): CounterTransport {
  if (i % 10 === 0) return `sockjs/${SOCKJS[(i / 10) % SOCKJS.length]!}`;
  return i % 2 === 0 ? 'tcp' : 'websocket';
}

describe('faults: slow consumers', function () {
  this.timeout(90_000);
  const clients = new RawClients();
  afterEach(() => clients.closeAll());

  describe(`send buffer limit, with ${FAST_SESSIONS} other sessions at full rate`, () => {
    let service: RunningService;
    const stalled: Stalled[] = [];

    before(async () => {
      service = await startTestService({
        stompTcpPort: 0,
        sendBufferLimitBytes: 256 * 1024,
        sendTimeLimitMs: 30_000,
        maxSessionsPerUser: 10_000,
        authorizationFile: openAuthorizationFile(),
      });
    });
    after(async () => {
      for (const s of stalled) s.close();
      await service.stop();
    });

    it('the stalled TCP, WebSocket and SockJS clients (every sub-transport) are cut off; everyone else gets every message; memory stays bounded', async () => {
      const fast: Counter[] = [];
      for (let i = 0; i < FAST_SESSIONS; i++) {
        fast.push(
          await Counter.open(
            service,
            tokenFor(service, `fast${i % 50}`),
            fastTransport(i),
            '/topic/firehose',
          ),
        );
      }
      stalled.push(
        await stalledTcp(service, tokenFor(service, 'stalled-tcp'), ['/topic/firehose', '/topic/bulk']),
      );
      stalled.push(
        await stalledWebSocket(service, tokenFor(service, 'stalled-ws'), ['/topic/firehose', '/topic/bulk']),
      );
      for (const transport of SOCKJS) {
        stalled.push(
          await stalledSockJs(
            service,
            tokenFor(service, `stalled-${transport}`),
            ['/topic/firehose', '/topic/bulk'],
            transport,
          ),
        );
      }
      expect(service.registry.size).to.equal(FAST_SESSIONS + stalled.length);
      const hitsBefore = await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'send_buffer' });

      const baseline = liveMemoryMb();
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, liveMemoryMb())), 50);
      const messages = 1000;
      const window = 50;
      const small = Buffer.alloc(1024, 0x66);
      const bulk = Buffer.alloc(32 * 1024, 0x62);
      const started = Date.now();
      // Full rate: as fast as the healthy sessions take it (a window of 50 messages in flight).
      for (let i = 0; i < messages; i++) {
        await service.broker.publish(
          { kind: 'topic', name: 'firehose' },
          { id: `m${i}`, headers: { seq: String(i) }, body: small },
        );
        if (i % 4 === 0)
          await service.broker.publish(
            { kind: 'topic', name: 'bulk' },
            { id: `b${i}`, headers: {}, body: bulk },
          );
        if (i % window === window - 1)
          await waitFor(
            () => fast.every((c) => c.received > i - window),
            30_000,
            `message ${i - window} everywhere`,
          ).catch((err: unknown) => {
            throw new Error(`${String(err)}; behind: ${behind(fast, i - window + 1)}`);
          });
      }
      await waitFor(
        () => fast.every((c) => c.received === messages),
        30_000,
        `every fast session to get ${messages} messages`,
      );
      const seconds = (Date.now() - started) / 1000;
      clearInterval(sampler);

      await waitFor(
        () => service.registry.size === FAST_SESSIONS,
        10_000,
        'every stalled session to be cut off',
      );
      expect(await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'send_buffer' })).to.equal(
        hitsBefore + stalled.length,
      );
      expect(await metricValue(service.url, 'stomp_errors_total', { kind: 'slow_consumer' })).to.be.at.least(
        stalled.length,
      );
      expect(
        fast.filter((c) => c.closed || c.outOfOrder > 0).length,
        'fast sessions closed or out of order',
      ).to.equal(0);
      for (const c of fast) c.close();
      console.log(
        `      ${FAST_SESSIONS} sessions x ${messages} messages (${(FAST_SESSIONS * messages) / 1000}k deliveries) in ${seconds.toFixed(1)} s; ` +
          `memory (heap + buffers) ${baseline.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB`,
      );
      // The stalled clients were each sent 9 MB of bulk: had one of them been buffered, it would
      // show here (the nine cut off as they should be, with the SockJS readers, left 8-13 MiB).
      expect(peak - baseline, 'peak growth MiB').to.be.below(20);
    });
  });

  describe('send time limit', () => {
    let service: RunningService;
    const stalled: Stalled[] = [];

    before(async () => {
      service = await startTestService({
        stompTcpPort: 0,
        // A buffer limit no test reaches: only time can cut these clients off.
        sendBufferLimitBytes: 512 * 1024 * 1024,
        sendTimeLimitMs: 1500,
        authorizationFile: openAuthorizationFile(),
      });
    });
    after(async () => {
      for (const s of stalled) s.close();
      await service.stop();
    });

    it('a client that stays behind longer than SEND_TIME_LIMIT_MS is cut off, TCP, WebSocket and every SockJS sub-transport alike', async () => {
      const healthy = clients.add(await connectRaw(service, 'healthy', { transport: 'tcp' }));
      await healthy.sendWithReceipt('SUBSCRIBE', { id: 'h', destination: '/topic/trickle' });
      stalled.push(await stalledTcp(service, tokenFor(service, 'slow-tcp'), ['/topic/trickle']));
      stalled.push(await stalledWebSocket(service, tokenFor(service, 'slow-ws'), ['/topic/trickle']));
      for (const transport of SOCKJS) {
        stalled.push(
          await stalledSockJs(service, tokenFor(service, `slow-${transport}`), ['/topic/trickle'], transport),
        );
      }
      const body = Buffer.alloc(64 * 1024, 0x74);
      let sent = 0;
      // Behind once the kernel buffers are full (200 messages fill them); if every stalled client is
      // cut off sooner, the first message is the (earlier) reference.
      let behindAt = Date.now();
      const deadline = Date.now() + 20_000;
      // Fill the kernel buffers, then keep a trickle going so the clients stay behind.
      while (service.registry.size > 1 && Date.now() < deadline) {
        await service.broker.publish(
          { kind: 'topic', name: 'trickle' },
          { id: `t${sent}`, headers: {}, body },
        );
        sent++;
        if (sent === 200) behindAt = Date.now();
        await sleep(sent < 200 ? 0 : 100);
      }
      expect(service.registry.size, 'sessions left: only the healthy one').to.equal(1);
      const cutAfter = Date.now() - behindAt;
      expect(cutAfter, 'ms from falling behind to the cut-off').to.be.below(6000);
      expect(await metricValue(service.url, 'stomp_errors_total', { kind: 'slow_consumer' })).to.equal(
        stalled.length,
      );
      await waitFor(
        () => healthy.all('MESSAGE').length === sent,
        10_000,
        'the healthy client to get everything',
      );
      expect(healthy.closed).to.equal(false);
    });
  });

  describe('one user: a stalled SockJS tab with 100 subscriptions to a chat room, another tab sending to it', () => {
    let service: RunningService;
    const open: Counter[] = [];
    let stalled: Stalled | undefined;

    before(async () => {
      // The default limits: SEND_BUFFER_LIMIT_BYTES 512 KiB, SEND_TIME_LIMIT_MS 10 s.
      service = await startTestService({});
    });
    after(async () => {
      stalled?.close();
      for (const c of open) c.close();
      await service.stop();
    });

    it('100 x 60 KB to /app/chat/room: the stalled tab is cut off within the limits, the others get all, memory stays bounded', async () => {
      const seqOf = (f: Frame): string => String(parseInt(f.body.toString('latin1', 0, 8), 10));
      for (const transport of [
        'websocket',
        'sockjs/websocket',
        'sockjs/xhr-streaming',
        'sockjs/xhr-polling',
        'sockjs/eventsource',
      ] as const) {
        open.push(
          await Counter.open(
            service,
            tokenFor(service, `reader-${transport}`),
            transport,
            '/topic/chat.room',
            seqOf,
          ),
        );
      }
      const token = tokenFor(service, 'carol');
      stalled = await stalledSockJs(service, token, Array(100).fill('/topic/chat.room'), 'websocket');
      const sender = await openSockJs(service.url, 'websocket');
      await sender.connect(token);
      const hitsBefore = await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'send_buffer' });
      const baseline = liveMemoryMb();
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, liveMemoryMb())), 50);
      // A chat tab's pace: each message once the last was taken (a burst of 6 MB would cut off the
      // polling readers too, rightly: it is more than SEND_BUFFER_LIMIT_BYTES waiting for a poll).
      for (let i = 0; i < 100; i++) {
        await sender.sendWithReceipt('SEND', { destination: '/app/chat/room' }, `${i}`.padEnd(60_000, '.'));
      }
      await waitFor(
        () => open.every((c) => c.received === 100),
        30_000,
        'every reader to get 100 messages',
      ).catch((err: unknown) => {
        throw new Error(
          `${String(err)}; behind: ${behind(open, 100)}; errors: ${sender
            .all('ERROR')
            .map((f) => f.body.toString())
            .join()}`,
        );
      });
      clearInterval(sampler);
      sender.close();
      await waitFor(() => service.registry.size === open.length, 5000, 'the stalled tab to be cut off');
      expect(await metricValue(service.url, 'stomp_limits_hit_total', { limit: 'send_buffer' })).to.equal(
        hitsBefore + 1,
      );
      expect(open.filter((c) => c.closed || c.outOfOrder > 0).map((c) => c.transport)).to.deep.equal([]);
      console.log(`      memory (heap + buffers) ${baseline.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB`);
      // Had the stalled tab's 100 x 100 x 60 KB been buffered, this would be 600 MB.
      expect(peak - baseline, 'peak growth MiB').to.be.below(20);
    });
  });
});
