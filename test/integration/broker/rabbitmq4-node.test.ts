/**
 * The RabbitMQ 4.x test node (test/support/ensure-rabbitmq4.cjs, started by `npm test`) is what the
 * tests against it assume: a 4.x node beside the machine's own, answering AMQP and STOMP, and
 * refusing what RabbitMQ 4.3 refuses by default. The STOMP case is the one that breaks a relay whose
 * topology declares a transient, non-exclusive queue per topic or user. Leaves the node with no
 * queue and no connection of its own.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Connection, type AsyncMessage, type Channel } from 'rabbitmq-client';

import { header } from '../../../app/stomp/frame';
import { LOCAL_RABBIT, RABBIT4, RABBIT4_WEB_STOMP_PORT } from '../../support/rabbit-nodes';
import {
  deprecatedFeaturesUsed,
  listConnections,
  listQueues,
  managementGet,
  rabbitVersion,
  rabbitmqctl,
  tcpOpen,
  waitForRabbit,
} from '../../support/rabbitmq';
import { openTcpPort, type RawStompClient } from '../../support/raw-stomp';
import { waitFor } from '../../support/wait';

const CONNECTION_PREFIX = 'rabbitmq4-node-test';
const QUEUE_PREFIX = `rabbitmq4-node-test.${randomBytes(3).toString('hex')}`;
/** Denied by default in RabbitMQ 4.3, or removed by then (ram_node_type, classic_queue_mirroring). */
const DENIED_IN_4_3 = [
  'transient_nonexcl_queues',
  'global_qos',
  'queue_master_locator',
  'amqp_address_v1',
  'amqp_filter_set_bug',
  'ram_node_type',
  'classic_queue_mirroring',
];

/** The error `attempt` ends in; throws if it succeeds. */
async function refusal(attempt: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await attempt;
  } catch (err: unknown) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    return { code, message: err instanceof Error ? err.message : String(err) };
  }
  throw new Error('RabbitMQ accepted what 4.3 refuses');
}

describe('RabbitMQ 4.x test node', function () {
  this.timeout(20_000);
  const connections: Connection[] = [];
  const stompClients: RawStompClient[] = [];

  function amqp(): Connection {
    const connection = new Connection({
      url: RABBIT4.amqpUrl,
      connectionName: `${CONNECTION_PREFIX}-${connections.length}`,
      retryLow: 100,
      retryHigh: 500,
    });
    // A refused declaration closes the whole connection (541); the test looks at the channel's error.
    connection.on('error', () => undefined);
    connections.push(connection);
    return connection;
  }

  async function stomp(): Promise<RawStompClient> {
    const client = await openTcpPort(RABBIT4.stompPort);
    stompClients.push(client);
    await client.connect(undefined, { login: 'guest', passcode: 'guest', host: '/' });
    return client;
  }

  before(async () => {
    await waitForRabbit(30_000, RABBIT4);
  });

  after(async () => {
    for (const client of stompClients.splice(0)) client.close();
    await Promise.all(connections.splice(0).map((c) => c.close()));
    for (const queue of await listQueues(RABBIT4)) {
      if (queue.name.startsWith(QUEUE_PREFIX))
        await rabbitmqctl(['delete_queue', queue.name, '-q'], 30_000, RABBIT4);
    }
    await waitFor(
      async () => (await listConnections(RABBIT4)).length === 0,
      15_000,
      'no connection left on the 4.x node',
    );
    expect(await deprecatedFeaturesUsed(RABBIT4)).to.deep.equal([]);
  });

  it('is a 4.x node of its own, apart from the machine node', async () => {
    expect(await rabbitVersion(RABBIT4)).to.match(/^4\./);
    const overview = await managementGet<{ node: string }>('/overview', RABBIT4);
    expect(overview.node).to.equal(RABBIT4.name);
    expect((await managementGet<{ node: string }>('/overview', LOCAL_RABBIT)).node).to.not.equal(
      RABBIT4.name,
    );
    expect(await tcpOpen(RABBIT4_WEB_STOMP_PORT), 'Web-STOMP').to.equal(true);
    expect(await rabbitmqctl(['-q', 'eval', 'node().'], 30_000, RABBIT4)).to.contain(RABBIT4.name);
  });

  it('answers AMQP: an exclusive transient queue and a durable one are declared and used', async () => {
    const ch = await amqp().acquire();
    const { queue } = await ch.queueDeclare({ queue: `${QUEUE_PREFIX}.excl`, exclusive: true });
    await ch.basicPublish(queue, 'hello');
    const got = await ch.basicGet({ queue, noAck: true });
    expect(got?.body).to.equal('hello');
    const durable = `${QUEUE_PREFIX}.durable`;
    await ch.queueDeclare({ queue: durable, durable: true });
    await ch.queueDelete({ queue: durable });
    await ch.close();
  });

  it('refuses a transient non-exclusive queue (transient_nonexcl_queues), closing the connection', async () => {
    const connection = amqp();
    const ch = await connection.acquire();
    const queue = `${QUEUE_PREFIX}.transient`;
    const refused = await refusal(
      ch.queueDeclare({ queue, durable: false, exclusive: false, autoDelete: true }),
    );
    expect(refused.code).to.equal('INTERNAL_ERROR');
    expect(refused.message).to.contain('Feature `transient_nonexcl_queues` is deprecated');
    expect((await listQueues(RABBIT4)).map((q) => q.name)).to.not.include(queue);
  });

  it('refuses the x-queue-master-locator argument (queue_master_locator)', async () => {
    const ch = await amqp().acquire();
    const refused = await refusal(
      ch.queueDeclare({
        queue: `${QUEUE_PREFIX}.locator`,
        durable: true,
        arguments: { 'x-queue-master-locator': 'min-masters' },
      }),
    );
    expect(refused.code).to.equal('INTERNAL_ERROR');
    expect(refused.message).to.contain('Feature `queue_master_locator` is deprecated');
  });

  it('takes basic.qos global=true as per consumer (global_qos)', async () => {
    const ch: Channel = await amqp().acquire();
    await ch.basicQos({ prefetchCount: 1, global: true });
    const received: string[] = [];
    for (const name of ['a', 'b']) {
      const { queue } = await ch.queueDeclare({ queue: `${QUEUE_PREFIX}.qos-${name}`, exclusive: true });
      await ch.basicPublish(queue, `${name}1`);
      await ch.basicPublish(queue, `${name}2`);
      await ch.basicConsume({ queue }, (msg: AsyncMessage) => received.push(String(msg.body)));
    }
    // Global: one unacked message on the channel. Per consumer: one for each consumer.
    await waitFor(() => received.length === 2, 5_000, 'one delivery per consumer');
    expect(received.sort()).to.deep.equal(['a1', 'b1']);
    await ch.close();
  });

  it('answers STOMP, and refuses a SUBSCRIBE to /topic/x, whose queue would be transient non-exclusive', async () => {
    const client = await stomp();
    client.send('SUBSCRIBE', { id: 'sub-0', destination: '/topic/x', receipt: 'r-sub' });
    const error = await client.waitForFrame('ERROR', 5_000);
    expect(header(error, 'message')).to.equal('Processing error');
    const died = await client.waitForFrame('ERROR', 5_000);
    expect(header(died, 'message')).to.equal('AMQP channel died');
    expect(died.body.toString('utf8')).to.contain('Feature `transient_nonexcl_queues` is deprecated');
    await client.waitForClose(5_000);
  });

  it('takes a SUBSCRIBE to /topic/x that asks for an exclusive queue', async () => {
    const client = await stomp();
    await client.sendWithReceipt('SUBSCRIBE', { id: 'sub-0', destination: '/topic/x', exclusive: 'true' });
    client.send('SEND', { destination: '/topic/x' }, 'to the exclusive queue');
    const message = await client.waitForFrame('MESSAGE', 5_000);
    expect(message.body.toString('utf8')).to.equal('to the exclusive queue');
    client.close();
  });

  it('has every deprecated feature that RabbitMQ 4.3 denies or removed denied', async () => {
    const known = new Set(
      (await managementGet<{ name: string }[]>('/deprecated-features', RABBIT4)).map((f) => f.name),
    );
    // amqp_filter_set_bug came after 4.0: a 4.0 node does not know it, a later one must deny it.
    const expected = DENIED_IN_4_3.filter((name) => known.has(name) || name !== 'amqp_filter_set_bug');
    const checks = expected.map((name) => `rabbit_deprecated_features:is_permitted(${name})`).join(', ');
    const output = await rabbitmqctl(['-q', 'eval', `[${checks}].`], 30_000, RABBIT4);
    // The first check of a denied feature in a node's life also logs its warning to our stdout,
    // before or after the answer: the answer is the one line that is an Erlang list of booleans.
    const answer = output
      .split('\n')
      .map((line) => line.trim())
      .find((line) => /^\[(true|false)(,(true|false))*\]$/.test(line));
    expect(answer, expected.join(', ')).to.equal(`[${expected.map(() => 'false').join(',')}]`);
  });
});
