/**
 * The RabbitMQ relay against the local RabbitMQ: the shared broker suite with two instances forming
 * one service (so every semantic is also checked across instances), then what only the relay has:
 * a constant pool, queue names in the management UI and their removal, and surviving a broker
 * restart (on a node of its own: see restartTests). Client queues the suite creates (durable
 * `stomp-relay.queue.*`) are deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';

import type { Broker, Delivery } from '../../../app/broker/broker';
import type { MessageTarget } from '../../../app/destinations/destination';
import { createPresence } from '../../../app/broker/create-broker';
import { silentLogger } from '../../../app/observability/logger';
import type { PresenceDirectory } from '../../../app/presence/directory';
import {
  RabbitRelayBroker,
  type RabbitRelayBrokerOptions,
} from '../../../app/broker/rabbitmq/rabbit-relay-broker';
import { userRoutingKey } from '../../../app/broker/rabbitmq/topology';
import { brokerSuite } from '../../support/broker-suite';
import { message, unique } from '../../support/broker-harness';
import { cleanUp } from '../../support/cleanup';
import { startRabbitCluster, type RabbitCluster } from '../../support/rabbit-cluster';
import { LOCAL_RABBIT, RABBIT4, type RabbitNode } from '../../support/rabbit-nodes';
import {
  deleteQueue,
  deprecatedFeaturesUsed,
  listBindings,
  listQueues,
  ownConnectionsTo,
  queueNames,
  rabbitmqctl,
  waitForRabbit,
} from '../../support/rabbitmq';
import { sleep, waitFor } from '../../support/wait';

for (const node of [LOCAL_RABBIT, RABBIT4]) relayTests(node);
restartTests();

function relayOn(node: RabbitNode, overrides: Partial<RabbitRelayBrokerOptions> = {}): RabbitRelayBroker {
  return new RabbitRelayBroker({
    brokerUrl: `${node.stompUrl}/%2F`,
    amqpUrl: node.amqpUrl,
    instanceId: `relaytest-${randomBytes(3).toString('hex')}`,
    poolSize: 2,
    heartbeatMs: 2000,
    prefetch: 50,
    reconnectMaxMs: 1000,
    ...overrides,
  });
}

function relayTests(node: RabbitNode): void {
  describe(`RabbitMQ relay on ${node.name}`, function () {
    this.timeout(30_000);
    let existing: Set<string>;

    const relay = (overrides: Partial<RabbitRelayBrokerOptions> = {}): RabbitRelayBroker =>
      relayOn(node, overrides);

    before(async () => {
      await waitForRabbit(60_000, node);
      existing = new Set(await queueNames('stomp-relay.queue.', node));
    });

    after(async () => {
      // The suite's /queue names are unique per run: delete the durable queues it made. A few passes,
      // because the management API may not list every queue yet.
      await waitForRabbit(60_000, node);
      for (let pass = 0; pass < 5; pass++) {
        const left = (await queueNames('stomp-relay.queue.', node)).filter((name) => !existing.has(name));
        if (left.length === 0 && pass > 0) break;
        for (const name of left) await deleteQueue(name, node);
        await sleep(500);
      }
      // Nothing of an instance outlives it, and nothing the node would deprecate was used.
      await waitFor(
        async () => (await queueNames('stomp-relay.relay', node)).length === 0,
        10_000,
        'no instance queue left by the relay tests',
      );
      if (node === RABBIT4) expect(await deprecatedFeaturesUsed(node)).to.deep.equal([]);
    });

    brokerSuite('RabbitRelayBroker (two instances)', async () => [relay(), relay()]);

    describe('relay only', function () {
      const running: Broker[] = [];
      const presences: PresenceDirectory[] = [];
      afterEach(async () => {
        for (const presence of presences.splice(0)) await presence.stop();
        for (const broker of running.splice(0)) await broker.stop();
      });
      async function started(overrides: Partial<RabbitRelayBrokerOptions> = {}): Promise<RabbitRelayBroker> {
        const broker = relay(overrides);
        running.push(broker);
        await broker.start();
        return broker;
      }

      it('holds a constant number of broker connections, whatever the number of subscriptions', async function () {
        const baseline = ownConnectionsTo(node.stompPort);
        const broker = await started({ poolSize: 2 });
        expect(ownConnectionsTo(node.stompPort) - baseline).to.equal(2);
        const subscriptions = [];
        for (let i = 0; i < 200; i++) {
          const target =
            i % 3 === 0
              ? { kind: 'topic' as const, name: unique(`pool${i % 10}`) }
              : i % 3 === 1
                ? {
                    kind: 'user' as const,
                    user: `pool-user-${i % 7}`,
                    type: 'queue' as const,
                    name: 'greetings',
                  }
                : { kind: 'queue' as const, name: unique('poolq') };
          subscriptions.push(
            await broker.subscribe({
              sessionId: `s${i}`,
              user: target.kind === 'user' ? target.user : 'u',
              target,
              ackMode: 'auto',
              prefetch: 10,
              deliver() {},
            }),
          );
        }
        expect(ownConnectionsTo(node.stompPort) - baseline).to.equal(2);
        expect(broker.connectionCount).to.equal(2);
        for (const subscription of subscriptions) await subscription.close();
      });

      it('holds three exclusive queues per instance, with one binding per topic and per user key while held', async function () {
        const instanceId = `relaynames-${randomBytes(3).toString('hex')}`;
        const broker = await started({ instanceId });
        // Its presence directory, composed beside it as server.ts does, holds the third queue.
        const presence = createPresence(broker, { instanceId, announceMs: 500, logger: silentLogger });
        presences.push(presence);
        await presence.start();
        const topicName = unique('prices');
        const subscribe = (target: Parameters<Broker['subscribe']>[0]['target']) =>
          broker.subscribe({
            sessionId: 's',
            user: target.kind === 'user' ? target.user : 'alice',
            target,
            ackMode: 'auto',
            prefetch: 10,
            deliver() {},
          });
        const prefix = `stomp-relay.${instanceId}.`;
        const users = `${prefix}users`;
        const topics = `${prefix}topics`;
        const bindingsOf = async (queue: string): Promise<string[]> =>
          (await listBindings(node))
            .filter((b) => b.destination === queue && b.source !== '')
            .map((b) => `${b.source} ${b.routing_key}`)
            .sort();
        const topicA = await subscribe({ kind: 'topic', name: topicName });
        const topicB = await subscribe({ kind: 'topic', name: topicName });
        const user = await subscribe({ kind: 'user', user: 'alice.é', type: 'queue', name: 'greetings' });
        expect(userRoutingKey('alice.é')).to.equal('alice%2E%C3%A9');
        // Bindings are in place once subscribe() resolves: no waiting here.
        expect(await bindingsOf(topics)).to.deep.equal([`amq.topic ${topicName}`]);
        expect(await bindingsOf(users)).to.deep.equal(['stomp-relay.user alice%2E%C3%A9']);
        await waitFor(
          async () =>
            (await queueNames(prefix, node)).sort().join() === [`${prefix}directory`, topics, users].join(),
          5000,
          'the three instance queues in the management API',
        );
        for (const queue of (await listQueues(node)).filter((q) => q.name.startsWith(prefix))) {
          expect(queue, queue.name).to.include({ exclusive: true, durable: false });
        }
        await topicA.close();
        expect(await bindingsOf(topics), 'still held by the second subscriber').to.have.length(1);
        await topicB.close();
        await waitFor(async () => (await bindingsOf(topics)).length === 0, 5000, 'the topic binding to go');
        await user.close();
        await waitFor(async () => (await bindingsOf(users)).length === 0, 5000, "alice's binding to go");
        // A thousand users more cost bindings, not queues.
        const many = [];
        for (let i = 0; i < 1000; i++) {
          many.push(subscribe({ kind: 'user', user: `many-${i}`, type: 'queue', name: 'greetings' }));
        }
        const subscriptions = await Promise.all(many);
        expect(await bindingsOf(users)).to.have.length(1000);
        expect(broker.bindingCount).to.deep.equal({ users: 1000, topics: 0 });
        expect((await queueNames(prefix, node)).length).to.equal(3);
        await Promise.all(subscriptions.slice(0, 500).map((s) => s.close()));
        await waitFor(async () => (await bindingsOf(users)).length === 500, 10_000, '500 bindings left');
        await broker.stop();
        running.splice(0);
        await waitFor(
          async () => (await queueNames(prefix, node)).length === 0,
          10_000,
          `no ${prefix}* queue left`,
        );
      });

      it('cuts off a client-ack topic subscriber past its local backlog; the others get everything', async function () {
        const [a, b] = [await started({ maxBacklog: 5 }), await started()];
        const target = { kind: 'topic' as const, name: unique('backlog') };
        const ended: { code?: string }[] = [];
        const healthy: Delivery[] = [];
        await a.subscribe({
          sessionId: 'never-acks',
          user: 'u',
          target,
          ackMode: 'client-individual',
          prefetch: 1,
          deliver() {},
          ended: (reason) => ended.push(reason as { code?: string }),
        });
        await a.subscribe({
          sessionId: 'healthy',
          user: 'u',
          target,
          ackMode: 'auto',
          prefetch: 1,
          deliver: (d) => healthy.push(d),
        });
        // One outstanding (prefetch 1) and five waiting fill it; the seventh cuts it off.
        for (let i = 0; i < 10; i++) await b.publish(target, message(`m${i}`));
        await waitFor(() => healthy.length === 10, 5000, 'all ten to the healthy subscriber');
        expect(ended.map((e) => e.code)).to.deep.equal(['slow_consumer']);
      });

      it('strips broker headers, keeps application ones, and does not let a client header reach RabbitMQ', async function () {
        const [a, b] = [await started(), await started()];
        const got: Delivery[] = [];
        const target = { kind: 'queue' as const, name: unique('hdr') };
        const sub = await a.subscribe({
          sessionId: 's',
          user: 'u',
          target,
          ackMode: 'auto',
          prefetch: 10,
          deliver: (d) => got.push(d),
        });
        // x-expires or expiration would make the plugin refuse the publish and close the connection.
        await b.publish(
          target,
          message('m1', 'x', {
            'content-type': 'text/plain',
            'x-trace': 't:1',
            'x-expires': 'bad',
            expiration: 'bad',
            'x-relay-user-destination': 'queue/evil',
          }),
        );
        await waitFor(() => got.length === 1, 5000, 'm1');
        expect(got[0].messageId).to.equal('m1');
        expect(got[0].headers).to.deep.equal({ 'content-type': 'text/plain', 'x-trace': 't:1' });
        expect(b.readiness()).to.deep.equal({ ready: true });
        await sub.close();
      });

      it('start() rejects with a readable reason when the broker cannot be reached', async function () {
        const broker = relay({ brokerUrl: 'stomp://guest:secret@127.0.0.1:1/%2F' });
        let error: unknown;
        try {
          await broker.start();
        } catch (err: unknown) {
          error = err;
        }
        expect(error).to.be.instanceOf(Error);
        expect((error as Error).message).to.match(/127\.0\.0\.1:1/);
        expect((error as Error).message).not.to.match(/secret/);
        expect(broker.readiness().ready).to.equal(false);
      });

      it('fails over to the next BROKER_URL address when one is unreachable', async function () {
        const broker = await started({
          brokerUrl: `stomp://guest:guest@127.0.0.1:1/%2F,${node.stompUrl}/%2F`,
          poolSize: 2,
        });
        await waitFor(
          () => broker.readiness().ready,
          10_000,
          'both pool connections up via the second address',
        );
        expect(broker.connectionCount).to.equal(2);
      });
    });
  });
}

/**
 * The broker restart, on a RabbitMQ node of this test's own (sr-c1 from this machine's packages,
 * test/support/rabbit-cluster.ts): `stop_app` on a shared node would take RabbitMQ away from every
 * test that other engineers run beside this file under the shared lock, so a restart is never done
 * to one from here. The 4.x node has no second copy to restart (its tree is provisioned for one
 * node); the relay across a restart of it is in test/integration/inbox/restarts.test.ts.
 */
function restartTests(): void {
  describe('RabbitMQ relay on a node of its own', function () {
    this.timeout(120_000);
    let cluster: RabbitCluster | undefined;
    let node: RabbitNode;
    const running: Broker[] = [];

    before(async function () {
      // Booting the node (and waiting for another run's test cluster, which shares the ports).
      this.timeout(360_000);
      cluster = await startRabbitCluster(1);
      node = cluster.nodes[0];
    });
    after(() => cleanUp(...running.splice(0).map((broker) => () => broker.stop()), () => cluster?.stop()));
    async function started(overrides: Partial<RabbitRelayBrokerOptions> = {}): Promise<RabbitRelayBroker> {
      const broker = relayOn(node, overrides);
      running.push(broker);
      await broker.start();
      return broker;
    }

    it('survives a broker restart: readiness goes and comes back, subscriptions keep receiving', async function () {
      this.timeout(120_000);
      let reconnects = 0;
      const changes: boolean[] = [];
      const broker = await started({ onReconnect: () => reconnects++ });
      broker.onReadinessChange((r) => changes.push(r.ready));
      const got: Delivery[] = [];
      const userGot: Delivery[] = [];
      const target = { kind: 'topic' as const, name: unique('restart') };
      const userT = {
        kind: 'user' as const,
        user: 'restart-user',
        type: 'queue' as const,
        name: 'greetings',
      };
      // One session's two subscriptions, ack auto: what it gets is all that is checked.
      const subscribe = (user: string, to: MessageTarget, into: Delivery[]) =>
        broker.subscribe({
          sessionId: 's',
          user,
          target: to,
          ackMode: 'auto',
          prefetch: 10,
          deliver: (d) => into.push(d),
        });
      await subscribe('u', target, got);
      await subscribe('restart-user', userT, userGot);
      await broker.publish(target, message('before'));
      await waitFor(() => got.length === 1, 5000, 'before');
      await rabbitmqctl(['stop_app'], 60_000, node);
      try {
        await waitFor(() => !broker.readiness().ready, 15_000, 'readiness to drop');
        const down = broker.readiness();
        expect(down.ready).to.equal(false);
        if (!down.ready) expect(down.reason).to.include(`127.0.0.1:${node.stompPort}`);
        let refused: unknown;
        await broker.publish(target, message('during')).catch((err: unknown) => (refused = err));
        expect((refused as { code?: string }).code).to.equal('broker_unavailable');
      } finally {
        await rabbitmqctl(['start_app'], 60_000, node);
      }
      await waitForRabbit(60_000, node);
      await waitFor(() => broker.readiness().ready, 30_000, 'readiness to return');
      expect(changes).to.deep.equal([false, true]);
      expect(reconnects).to.equal(2);
      await broker.publish(target, message('after'));
      await broker.publish(userT, message('after-user'));
      await waitFor(() => got.length === 2 && userGot.length === 1, 5000, 'deliveries after the restart');
      expect(got.map((d) => d.messageId)).to.deep.equal(['before', 'after']);
    });
  });
}
