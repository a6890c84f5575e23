/**
 * The backend bridge against real RabbitMQ: a client SEND to /app/<service>/... that no handler in
 * the service claims goes over AMQP to `stomp-relay.app`; the example backends (Node and Python,
 * run as child processes) answer the sender on /user/queue/orders through `stomp-relay.user`.
 * Also: what a backend receives (headers, escaping), the ERROR when nobody listens, the ERROR for a
 * service the user may not reach, and no bridge at all with the embedded broker.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Connection, type AsyncMessage } from 'rabbitmq-client';
import { userRoutingKey } from '../../../app/broker/rabbitmq/topology';
import { ServiceError } from '../../../app/errors';
import { BackendBridge, backendRoutingKey } from '../../../app/messaging/backend-bridge';
import { BackendServices } from '../../../app/messaging/backend-services';
import { projectPath } from '../../../app/paths';
import { AMQP_URL, listBindings, queueNames, STOMP_URL } from '../../support/rabbitmq';
import { startTestService, type RunningService } from '../../support/service';
import { StompClients, type ConnectedStomp } from '../../support/stomp-clients';
import { sleep, waitFor } from '../../support/wait';
import { ChildRun } from './child-process';

async function expectError(client: ConnectedStomp, pattern: RegExp): Promise<void> {
  await waitFor(() => client.errors.length > 0, 5_000, `an ERROR frame for ${client.user}`);
  expect(client.errors[0].headers.message).to.match(pattern);
}

describe('backend bridge over AMQP (RabbitMQ)', function () {
  this.timeout(60_000);
  let service: RunningService;
  let dir: string;
  const clients = new StompClients();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'backends-'));
    const backendsFile = join(dir, 'backends.json');
    writeFileSync(
      backendsFile,
      JSON.stringify({
        services: [
          { name: 'orders', users: '*' },
          { name: 'orders.admin', users: '*' },
          { name: 'probe', users: '*' },
          { name: 'nobody', users: '*' },
          { name: 'payroll', users: ['carol'] },
        ],
      }),
    );
    service = await startTestService({ brokerUrl: STOMP_URL, backendsFile });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('configuration', () => {
    it('refuses a missing or malformed backends file, naming BACKENDS_FILE', () => {
      expect(() => BackendServices.fromFile(join(dir, 'missing.json'))).to.throw(
        /BACKENDS_FILE: cannot read/,
      );
      expect(() => new BackendServices([{ name: 'a/b', users: '*' }])).to.throw(
        /BACKENDS_FILE.*services\[0\]\.name/,
      );
      expect(() => new BackendServices([{ name: 'a', users: 'alice' }])).to.throw(/services\[0\]\.users/);
    });

    it('lets the first entry naming the service decide; "*" matches any service', () => {
      const services = new BackendServices([
        { name: 'payroll', users: ['carol'] },
        { name: '*', users: '*' },
      ]);
      expect(services.canReach('carol', 'payroll')).to.equal(true);
      expect(services.canReach('alice', 'payroll')).to.equal(false);
      expect(services.canReach('alice', 'anything')).to.equal(true);
      expect(new BackendServices([]).canReach('alice', 'orders')).to.equal(false);
    });
  });

  describe('routing keys', () => {
    it('joins route segments with "." and escapes a "." inside a segment, so no client adds words', () => {
      expect(backendRoutingKey('orders/create')).to.equal('orders.create');
      expect(backendRoutingKey('orders')).to.equal('orders');
      expect(backendRoutingKey('orders.admin/x')).to.equal('orders%2Eadmin.x');
      expect(backendRoutingKey('orders/v1.2/a:b@c_d-e')).to.equal('orders.v1%2E2.a:b@c_d-e');
    });
  });

  for (const backend of ['node', 'python'] as const) {
    describe(`round trip through the ${backend} example backend`, () => {
      let run: ChildRun;
      const queue = `orders-backend-test-${randomBytes(3).toString('hex')}`;

      before(async () => {
        run =
          backend === 'node'
            ? ChildRun.start(
                'orders-backend.js',
                process.execPath,
                [projectPath('docker/examples/orders-backend.js')],
                {
                  AMQP_URL,
                  ORDERS_QUEUE: queue,
                },
              )
            : ChildRun.start(
                'orders_backend.py',
                '/usr/bin/python3',
                [projectPath('docker/examples/orders_backend.py')],
                {
                  AMQP_URL: `${AMQP_URL}/%2F`,
                  ORDERS_QUEUE: queue,
                },
              );
        await run.waitForLine(/ready/, 20_000);
      });
      after(async () => {
        expect(await run.stop()).to.equal(0);
        // Auto-delete: the backend's queue goes with it.
        await waitFor(async () => !(await queueNames(queue)).includes(queue), 10_000, `queue ${queue} to go`);
      });

      it('/app/orders/create reaches the backend, whose reply arrives on /user/queue/orders at the sender only', async () => {
        const binding = (await listBindings()).find((b) => b.destination === queue && b.source !== '');
        expect(binding).to.include({
          source: 'stomp-relay.app',
          destination_type: 'queue',
          routing_key: 'orders.#',
        });
        const alice = await clients.connect(service, 'alice');
        const bob = await clients.connect(service, 'bob');
        const aliceLog = await alice.subscribe('/user/queue/orders');
        const bobLog = await bob.subscribe('/user/queue/orders');
        // A forged identity header is dropped: the backend hears who really sent it.
        await alice.publishWithReceipt('/app/orders/create', JSON.stringify({ item: 'book', qty: 2 }), {
          'content-type': 'application/json',
          'x-relay-user': 'bob',
        });
        await aliceLog.waitForCount(1, 10_000);
        const reply = aliceLog.messages[0];
        const body = JSON.parse(reply.body) as Record<string, unknown>;
        expect(body).to.include({ status: 'created', action: 'create', user: 'alice' });
        expect(body.request).to.deep.equal({ item: 'book', qty: 2 });
        expect(reply.headers.destination).to.equal('/user/queue/orders');
        expect(reply.headers['content-type']).to.equal('application/json');
        expect(reply.headers['message-id']).to.equal(body.orderId);
        expect(reply.headers['in-reply-to']).to.be.a('string').and.not.equal('undefined');
        expect(Object.keys(reply.headers).filter((h) => h.startsWith('x-relay-'))).to.deep.equal([]);
        await sleep(300);
        expect(bobLog.messages).to.have.length(0);
        expect(run.output).to.match(/\/app\/orders\/create from alice/);
      });
    });
  }

  it('gives the backend the body unchanged and headers naming the sender, session, instance and message', async () => {
    const received: AsyncMessage[] = [];
    const queue = `bridge-probe-${randomBytes(3).toString('hex')}`;
    const rabbit = new Connection({ url: AMQP_URL, connectionName: 'bridge test probe' });
    const consumer = rabbit.createConsumer(
      {
        queue,
        queueOptions: { exclusive: true, autoDelete: true },
        queueBindings: [{ exchange: 'stomp-relay.app', queue, routingKey: 'probe.#' }],
      },
      (msg) => {
        received.push(msg);
      },
    );
    try {
      await new Promise((resolve) => consumer.once('ready', resolve));
      const alice = await clients.connect(service, 'alice');
      await alice.publishWithReceipt('/app/probe/a.b/c', 'plain text body', {
        'content-type': 'text/plain',
        'x-request': 'r1',
        'x-relay-session': 'forged',
        CC: 'orders.create',
      });
      await waitFor(() => received.length === 1, 5_000, 'the probe message');
      const msg = received[0];
      expect(msg.routingKey).to.equal('probe.a%2Eb.c');
      expect(msg.exchange).to.equal('stomp-relay.app');
      expect(msg.contentType).to.equal('text/plain');
      expect(msg.body).to.equal('plain text body');
      const h = msg.headers ?? {};
      expect(h).to.include({
        'x-relay-user': 'alice',
        'x-relay-user-key': userRoutingKey('alice'),
        'x-relay-instance': service.settings.instanceId,
        'x-relay-destination': '/app/probe/a.b/c',
        'x-relay-service': 'probe',
        'x-relay-path': 'a.b/c',
        'x-request': 'r1',
      });
      expect(h['x-relay-session']).to.be.a('string').and.not.equal('forged');
      expect(h['x-relay-message-id']).to.equal(msg.messageId);
      expect(h).to.not.have.property('CC');
    } finally {
      await consumer.close();
      await rabbit.close();
    }
  });

  it('a service nobody consumes → ERROR saying no backend is listening (mandatory publish returned)', async () => {
    const alice = await clients.connect(service, 'alice');
    alice.publish('/app/nobody/x', '{}');
    await expectError(alice, /no backend service 'nobody' is listening/);
  });

  it('a "." inside the service segment cannot reach another service: /app/orders.admin/x is not orders.#', async () => {
    const run = ChildRun.start(
      'orders-backend.js',
      process.execPath,
      [projectPath('docker/examples/orders-backend.js')],
      {
        AMQP_URL,
        ORDERS_QUEUE: `orders-backend-test-${randomBytes(3).toString('hex')}`,
      },
    );
    try {
      await run.waitForLine(/ready/, 20_000);
      const alice = await clients.connect(service, 'alice');
      alice.publish('/app/orders.admin/x', '{}');
      await expectError(alice, /no backend service 'orders\.admin' is listening/);
    } finally {
      expect(await run.stop()).to.equal(0);
    }
    expect(run.output).to.not.match(/orders\.admin/);
  });

  it('a service the user may not reach → ERROR forbidden, and so is a service not configured at all', async () => {
    const alice = await clients.connect(service, 'alice');
    alice.publish('/app/payroll/run', '{}');
    await expectError(alice, /not allowed to reach backend service 'payroll'/);
    const bob = await clients.connect(service, 'bob');
    bob.publish('/app/unlisted/x', '{}');
    await expectError(bob, /not allowed to reach backend service 'unlisted'/);
  });

  it('the in-process handlers still come first: /app/echo is answered by the service itself', async () => {
    const alice = await clients.connect(service, 'alice');
    const log = await alice.subscribe('/user/queue/echo');
    await alice.publishWithReceipt('/app/echo', 'hi');
    await log.waitForCount(1);
    expect(log.bodies()).to.deep.equal(['hi']);
  });

  it('while its AMQP connection is down, a SEND is refused at once with broker_unavailable', async () => {
    // A connection that never comes up, as the relay's is while RabbitMQ is away.
    const connection = new Connection({ url: 'amqp://guest:guest@127.0.0.1:1', retryLow: 1000 });
    connection.on('error', () => undefined);
    const bridge = new BackendBridge({
      connection,
      instanceId: 'bridge-test',
      services: new BackendServices([{ name: 'orders', users: '*' }]),
      logger: { info: () => undefined, warn: () => undefined },
    });
    try {
      const message = {
        route: 'orders/create',
        params: {},
        user: 'alice',
        sessionId: 's',
        messageId: 'm',
        headers: {},
      };
      const error = await bridge.forward({ ...message, body: Buffer.from('{}') }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).to.be.instanceOf(ServiceError).and.include({ code: 'broker_unavailable' });
    } finally {
      await bridge.stop();
      connection.unsafeDestroy();
    }
  });

  describe('with the embedded broker', () => {
    let embedded: RunningService;
    before(async () => {
      embedded = await startTestService();
    });
    after(() => embedded.stop());

    it('has no bridge: an unhandled /app route stays no_route', async () => {
      const alice = await clients.connect(embedded, 'alice');
      alice.publish('/app/orders/create', '{}');
      await expectError(alice, /no handler for '\/app\/orders\/create'/);
    });
  });
});
