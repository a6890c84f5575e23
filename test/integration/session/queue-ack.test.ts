/**
 * `/queue/<name>` over the wire: competing consumers, ack modes `auto`, `client` (cumulative) and
 * `client-individual`, NACK redelivery, and acknowledgements that only the receiving session can
 * give. Spec 1.2 §SUBSCRIBE ack Header, §ACK, §NACK. Needs rules allowing /queue/** (harness).
 */
import { expect } from 'chai';
import { header, type Frame } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';

describe('session: queues and acknowledgements', () => {
  let service: RunningService;
  const clients = new RawClients();
  let queueNo = 0;
  let queue: string;

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, authorizationFile: openAuthorizationFile() });
  });
  beforeEach(() => {
    queue = `/queue/jobs-${++queueNo}`;
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = async (user = 'alice', version?: string): Promise<RawStompClient> =>
    clients.add(await connectRaw(service, user, { headers: version ? { 'accept-version': version } : {} }));
  const consumer = async (ack: string, user = 'alice'): Promise<RawStompClient> => {
    const c = await connect(user);
    await c.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: queue, ack });
    return c;
  };
  const produce = async (...bodies: string[]): Promise<void> => {
    const producer = await connect('producer');
    for (const body of bodies) await producer.sendWithReceipt('SEND', { destination: queue }, body);
  };
  const text = (f: Frame): string => f.body.toString();
  const messages = async (c: RawStompClient, n: number): Promise<Frame[]> => {
    const out: Frame[] = [];
    for (let i = 0; i < n; i++) out.push(await c.waitForFrame('MESSAGE'));
    return out;
  };

  it('auto: competing consumers share the messages, each delivered exactly once', async () => {
    const a = await consumer('auto');
    const b = await consumer('auto', 'bob');
    await produce('m1', 'm2', 'm3', 'm4');
    await sleep(150);
    const got = [...a.all('MESSAGE'), ...b.all('MESSAGE')].map(text);
    expect(got.sort()).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
    expect(a.all('MESSAGE')).to.have.length.greaterThan(0);
    expect(b.all('MESSAGE')).to.have.length.greaterThan(0);
  });

  it('a message sent before anyone subscribed waits in the queue', async () => {
    await produce('early');
    const a = await consumer('auto');
    expect(text(await a.waitForFrame('MESSAGE'))).to.equal('early');
  });

  it('client-individual: ACK settles only that message; the unacked one is redelivered after the close', async () => {
    const a = await consumer('client-individual');
    await produce('m1', 'm2');
    const [m1, m2] = await messages(a, 2);
    expect(header(m1, 'ack')).to.be.a('string');
    await a.sendWithReceipt('ACK', { id: header(m2, 'ack')! });
    a.close();
    await a.waitForClose();
    const b = await consumer('client-individual', 'bob');
    const again = await b.waitForFrame('MESSAGE');
    expect(text(again)).to.equal(text(m1));
    expect(header(again, 'redelivered')).to.equal('true');
    await sleep(100);
    expect(b.all('MESSAGE')).to.have.length(1);
  });

  it('client: ACK is cumulative, settling every earlier message of the subscription', async () => {
    const a = await consumer('client');
    await produce('m1', 'm2', 'm3');
    const [, m2] = await messages(a, 3);
    await a.sendWithReceipt('ACK', { id: header(m2, 'ack')! });
    a.close();
    await a.waitForClose();
    const b = await consumer('client', 'bob');
    expect(text(await b.waitForFrame('MESSAGE'))).to.equal('m3');
    await sleep(100);
    expect(b.all('MESSAGE')).to.have.length(1);
  });

  it('NACK returns the message, which is delivered again with redelivered:true', async () => {
    const a = await consumer('client-individual');
    await produce('retry-me');
    const first = await a.waitForFrame('MESSAGE');
    expect(header(first, 'redelivered')).to.equal(undefined);
    await a.sendWithReceipt('NACK', { id: header(first, 'ack')! });
    const second = await a.waitForFrame('MESSAGE');
    expect(text(second)).to.equal('retry-me');
    expect(header(second, 'redelivered')).to.equal('true');
    await a.sendWithReceipt('ACK', { id: header(second, 'ack')! });
    a.close();
    await a.waitForClose();
    const b = await consumer('client-individual', 'bob');
    await sleep(150);
    expect(b.all('MESSAGE')).to.have.length(0);
  });

  it('auto: closing a consumer loses nothing already delivered, and nothing is redelivered', async () => {
    const a = await consumer('auto');
    await produce('once');
    await a.waitForFrame('MESSAGE');
    a.close();
    await a.waitForClose();
    const b = await consumer('auto', 'bob');
    await sleep(150);
    expect(b.all('MESSAGE')).to.have.length(0);
  });

  it('STOMP 1.1: ACK quotes message-id and subscription', async () => {
    const a = await connect('alice', '1.1');
    await a.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: queue, ack: 'client-individual' });
    await produce('v11');
    const m = await a.waitForFrame('MESSAGE');
    expect(header(m, 'ack')).to.equal(undefined);
    await a.sendWithReceipt('ACK', { 'message-id': header(m, 'message-id')!, subscription: 'q' });
    a.close();
    await a.waitForClose();
    const b = await consumer('client-individual', 'bob');
    await sleep(150);
    expect(b.all('MESSAGE')).to.have.length(0);
  });

  it('ACK of an unknown id → ERROR', async () => {
    const a = await consumer('client-individual');
    a.send('ACK', { id: 'q:zzz' });
    expect(header(await a.expectErrorAndClose(), 'message')).to.match(/no pending acknowledgement/);
  });

  it("bob cannot ACK or NACK alice's delivery, even with her ack id", async () => {
    const alice = await consumer('client-individual');
    await produce('hers');
    const m = await alice.waitForFrame('MESSAGE');
    for (const command of ['ACK', 'NACK']) {
      const bob = await consumer('client-individual', 'bob');
      bob.send(command, { id: header(m, 'ack')! });
      expect(header(await bob.expectErrorAndClose(), 'message')).to.match(/no pending acknowledgement/);
    }
    // Alice's delivery is still hers to settle.
    await alice.sendWithReceipt('ACK', { id: header(m, 'ack')! });
  });

  it('a second ACK of the same message → ERROR', async () => {
    const a = await consumer('client-individual');
    await produce('m');
    const m = await a.waitForFrame('MESSAGE');
    await a.sendWithReceipt('ACK', { id: header(m, 'ack')! });
    a.send('ACK', { id: header(m, 'ack')! });
    expect(header(await a.expectErrorAndClose(), 'message')).to.match(/no pending acknowledgement/);
  });
});
