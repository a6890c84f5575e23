/**
 * Fault: a `/queue/` deleted under the relay while REST pushes to it flow (issue 16.1), once by an
 * operator (management API DELETE) and once by a policy whose `expires` removes the idle queue,
 * on RabbitMQ 3.10 and the 4.x node. Every push that answered 202 after the queue was gone must be
 * in the queue once the pushes stop: the relay re-declares what was deleted, or refuses the push.
 * Pushes whose answer overlapped a deletion may legitimately have gone with the queue; they are
 * counted apart and not required.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import { header } from '../../../app/stomp/frame';
import { openAuthorizationFile } from '../../support/authorization';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import { cleanUp } from '../../support/cleanup';
import { deleteQueue, queueNames } from '../../support/rabbitmq';
import { connectRaw, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

const AUTH = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
const PUSHES_BEFORE = 40;
const PUSHES_AFTER = 100;

interface Push {
  id?: string;
  startedAt: number;
  status: number;
}

async function management(node: RabbitNode, method: string, path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${node.managementUrl}${path}`, {
    method,
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok && res.status !== 404) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

for (const node of [LOCAL_RABBIT, RABBIT4] as RabbitNode[]) {
  describe(`faults: a /queue/ deleted while pushes flow (${node.name})`, function () {
    this.timeout(60_000);
    let service: RunningService;
    const clients = new RawClients();
    const name = `qdel${randomBytes(3).toString('hex')}`;
    const queue = `stomp-relay.queue.${name}`;
    const policy = `stomp-relay-test-${name}`;

    before(async () => {
      service = await startTestService({
        brokerUrl: `${node.stompUrl}/%2F`,
        amqpUrl: node.amqpUrl,
        brokerPoolSize: 2,
        authorizationFile: openAuthorizationFile(),
      });
    });
    // Each step whatever the one before did: a failed test must not leave its policy or queue.
    after(() =>
      cleanUp(
        () => clients.closeAll(),
        () => management(node, 'DELETE', `/policies/%2F/${policy}`),
        () => service?.stop(),
        async () => {
          for (const q of await queueNames(queue, node)) await deleteQueue(q, node);
        },
      ),
    );

    /**
     * Pushes four at a time; `fault` runs beside them once PUSHES_BEFORE have been sent, and the
     * pushes go on until PUSHES_AFTER more started after it was done (bounded in time too).
     */
    async function pushWhile(fault: () => Promise<void>): Promise<{ pushes: Push[]; faultDoneAt: number }> {
      const token = tokenFor(service, 'backend', 'push', 600);
      const pushes: Push[] = [];
      const deadline = Date.now() + 40_000;
      let seq = 0;
      let faultDoneAt = Number.POSITIVE_INFINITY;
      let faultRun: Promise<void> | undefined;
      const after = (): number => pushes.filter((p) => p.startedAt > faultDoneAt).length;
      const worker = async (): Promise<void> => {
        while (after() < PUSHES_AFTER && Date.now() < deadline) {
          const n = seq++;
          if (n === PUSHES_BEFORE) {
            faultRun = fault().then(() => {
              faultDoneAt = Date.now();
            });
          }
          const push: Push = { startedAt: Date.now(), status: 0 };
          pushes.push(push);
          const res = await fetch(`${service.url}/api/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ destination: `/queue/${name}`, body: `m${n}` }),
            signal: AbortSignal.timeout(15_000),
          });
          push.status = res.status;
          if (res.status === 202) push.id = ((await res.json()) as { id: string }).id;
          else await res.text();
          await sleep(5);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      await faultRun;
      return { pushes, faultDoneAt };
    }

    /** Every message id left in the queue, read by a STOMP consumer until it goes quiet. */
    async function drain(): Promise<Set<string>> {
      const consumer = clients.add(await connectRaw(service, 'drainer', { transport: 'websocket' }));
      await consumer.sendWithReceipt('SUBSCRIBE', { id: 'd', destination: `/queue/${name}` });
      let seen = -1;
      await waitFor(
        async () => {
          const now = consumer.all('MESSAGE').length;
          const quiet = now === seen;
          seen = now;
          if (!quiet) await sleep(500);
          return quiet;
        },
        20_000,
        'the queue to be drained',
      );
      const ids = new Set(consumer.all('MESSAGE').map((f) => header(f, 'message-id') ?? ''));
      consumer.close();
      await sleep(200);
      return ids;
    }

    function check(pushes: Push[], faultDoneAt: number, found: Set<string>): void {
      const owed = pushes.filter((p) => p.status === 202 && p.startedAt > faultDoneAt);
      const missing = owed.filter((p) => !found.has(p.id!));
      const other = pushes.filter((p) => p.status !== 202 && p.status !== 503);
      expect(owed.length, 'pushes answered 202 after the queue was gone').to.be.at.least(PUSHES_AFTER - 4);
      expect(
        missing.map((p) => p.id),
        'answered 202 and not in the queue',
      ).to.deep.equal([]);
      expect(
        other.map((p) => p.status),
        'answers other than 202 or 503',
      ).to.deep.equal([]);
      expect(service.broker.readiness()).to.deep.equal({ ready: true });
    }

    it('deleted by an operator: every push confirmed after the delete is in the queue', async () => {
      const { pushes, faultDoneAt } = await pushWhile(async () => {
        await waitFor(async () => (await queueNames(queue, node)).includes(queue), 10_000, 'the queue');
        await deleteQueue(queue, node);
      });
      check(pushes, faultDoneAt, await drain());
    });

    it('expired by a policy: every push confirmed after it expired is in the queue', async () => {
      const { pushes, faultDoneAt } = await pushWhile(async () => {
        await waitFor(async () => (await queueNames(queue, node)).includes(queue), 10_000, 'the queue');
        await management(node, 'PUT', `/policies/%2F/${policy}`, {
          pattern: `^${queue.replace(/\./g, '\\.')}$`,
          definition: { expires: 300 },
          'apply-to': 'queues',
          priority: 100,
        });
        // Publishing does not count as use: the queue expires while the pushes go on.
        await waitFor(
          async () => !(await queueNames(queue, node)).includes(queue),
          15_000,
          'the queue to expire',
        );
        await management(node, 'DELETE', `/policies/%2F/${policy}`);
      });
      check(pushes, faultDoneAt, await drain());
    });
  });
}
