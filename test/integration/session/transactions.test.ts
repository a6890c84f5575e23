/**
 * Transactions (spec 1.2 §BEGIN, §COMMIT, §ABORT): SENDs and ACKs inside a transaction take effect
 * together at COMMIT, never after ABORT, and a frame naming an unknown transaction is an error.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';

describe('session: transactions', () => {
  let service: RunningService;
  const clients = new RawClients();
  let listener: RawStompClient;
  let client: RawStompClient;

  before(async () => {
    service = await startTestService({ authorizationFile: openAuthorizationFile() });
  });
  beforeEach(async () => {
    listener = clients.add(await connectRaw(service, 'bob'));
    await listener.sendWithReceipt('SUBSCRIBE', { id: 's', destination: '/topic/tx' });
    client = clients.add(await connectRaw(service, 'alice'));
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const bodies = (): string[] => listener.all('MESSAGE').map((f) => f.body.toString());

  it('SENDs in a transaction are delivered only at COMMIT, all of them, in order', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'one');
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'two');
    await sleep(100);
    expect(bodies()).to.deep.equal([]);
    await client.sendWithReceipt('COMMIT', { transaction: 't1' });
    await listener.waitForFrame('MESSAGE');
    await listener.waitForFrame('MESSAGE');
    expect(bodies()).to.deep.equal(['one', 'two']);
  });

  it('a SEND outside the transaction is not held back by it', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'held');
    await client.sendWithReceipt('SEND', { destination: '/topic/tx' }, 'now');
    await listener.waitForFrame('MESSAGE');
    expect(bodies()).to.deep.equal(['now']);
    await client.sendWithReceipt('COMMIT', { transaction: 't1' });
    await listener.waitForFrame('MESSAGE');
    expect(bodies()).to.deep.equal(['now', 'held']);
  });

  it('ABORT: nothing of the transaction is ever delivered', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'never');
    await client.sendWithReceipt('ABORT', { transaction: 't1' });
    await sleep(150);
    expect(bodies()).to.deep.equal([]);
    // The name is free again, and a commit of the new transaction carries only its own frames.
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'second');
    await client.sendWithReceipt('COMMIT', { transaction: 't1' });
    await listener.waitForFrame('MESSAGE');
    await sleep(50);
    expect(bodies()).to.deep.equal(['second']);
  });

  it('a transaction left open when the session ends is discarded', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 't1' }, 'orphan');
    client.close();
    await sleep(150);
    expect(bodies()).to.deep.equal([]);
  });

  it('an ACK inside an aborted transaction does not settle the message', async () => {
    const consumer = clients.add(await connectRaw(service, 'carol'));
    await consumer.sendWithReceipt('SUBSCRIBE', {
      id: 'q',
      destination: '/queue/tx-jobs',
      ack: 'client-individual',
    });
    await client.sendWithReceipt('SEND', { destination: '/queue/tx-jobs' }, 'job');
    const m = await consumer.waitForFrame('MESSAGE');
    await consumer.sendWithReceipt('BEGIN', { transaction: 'a' });
    await consumer.sendWithReceipt('ACK', { id: header(m, 'ack')!, transaction: 'a' });
    await consumer.sendWithReceipt('ABORT', { transaction: 'a' });
    consumer.close();
    await consumer.waitForClose();
    const next = clients.add(await connectRaw(service, 'dave'));
    await next.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: '/queue/tx-jobs', ack: 'auto' });
    const again = await next.waitForFrame('MESSAGE');
    expect(again.body.toString()).to.equal('job');
    expect(header(again, 'redelivered')).to.equal('true');
  });

  it('after ABORT, a message ACKed inside the transaction can still be acknowledged', async () => {
    const consumer = clients.add(await connectRaw(service, 'erin'));
    await consumer.sendWithReceipt('SUBSCRIBE', {
      id: 'q',
      destination: '/queue/tx-abort-ack',
      ack: 'client-individual',
    });
    await client.sendWithReceipt('SEND', { destination: '/queue/tx-abort-ack' }, 'job');
    const m = await consumer.waitForFrame('MESSAGE');
    await consumer.sendWithReceipt('BEGIN', { transaction: 'a' });
    await consumer.sendWithReceipt('ACK', { id: header(m, 'ack')!, transaction: 'a' });
    await consumer.sendWithReceipt('ABORT', { transaction: 'a' });
    await consumer.sendWithReceipt('ACK', { id: header(m, 'ack')! });
    // Settled for good now: the same ack id is no longer pending.
    consumer.send('ACK', { id: header(m, 'ack')!, receipt: 'again' });
    const error = await consumer.expectErrorAndClose();
    expect(header(error, 'receipt-id')).to.equal('again');
  });

  it('a COMMITted ACK settles the message: acknowledging it again is an error', async () => {
    const consumer = clients.add(await connectRaw(service, 'frank'));
    await consumer.sendWithReceipt('SUBSCRIBE', {
      id: 'q',
      destination: '/queue/tx-commit-ack',
      ack: 'client-individual',
    });
    await client.sendWithReceipt('SEND', { destination: '/queue/tx-commit-ack' }, 'job');
    const m = await consumer.waitForFrame('MESSAGE');
    await consumer.sendWithReceipt('BEGIN', { transaction: 'c' });
    await consumer.sendWithReceipt('ACK', { id: header(m, 'ack')!, transaction: 'c' });
    await consumer.sendWithReceipt('COMMIT', { transaction: 'c' });
    consumer.send('ACK', { id: header(m, 'ack')!, receipt: 'again' });
    const error = await consumer.expectErrorAndClose();
    expect(header(error, 'message')).to.include('no pending acknowledgement');
  });

  const unknown: [string, Record<string, string>][] = [
    ['SEND', { destination: '/topic/tx', transaction: 'nope' }],
    ['COMMIT', { transaction: 'nope' }],
    ['ABORT', { transaction: 'nope' }],
  ];
  for (const [command, headers] of unknown) {
    it(`${command} naming an unknown transaction → ERROR naming it`, async () => {
      client.send(command, headers, command === 'SEND' ? 'x' : undefined);
      expect(header(await client.expectErrorAndClose(), 'message')).to.match(/no transaction 'nope'/);
      await sleep(50);
      expect(bodies()).to.deep.equal([]);
    });
  }

  it('BEGIN of a transaction that is already open → ERROR', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    client.send('BEGIN', { transaction: 't1' });
    expect(header(await client.expectErrorAndClose(), 'message')).to.match(/already open/);
  });

  it('a committed transaction cannot be committed again', async () => {
    await client.sendWithReceipt('BEGIN', { transaction: 't1' });
    await client.sendWithReceipt('COMMIT', { transaction: 't1' });
    client.send('COMMIT', { transaction: 't1' });
    expect(header(await client.expectErrorAndClose(), 'message')).to.match(/no transaction 't1'/);
  });
  it('open transactions hold at most MAX_TRANSACTION_BYTES of messages: ERROR, counted in /metrics', async () => {
    const small = await startTestService({
      authorizationFile: openAuthorizationFile(),
      maxTransactionBytes: 2048,
    });
    try {
      const sender = clients.add(await connectRaw(small, 'alice'));
      await sender.sendWithReceipt('BEGIN', { transaction: 'a' });
      await sender.sendWithReceipt('BEGIN', { transaction: 'b' });
      await sender.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'a' }, 'x'.repeat(1000));
      await sender.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'b' }, 'x'.repeat(1000));
      sender.send('SEND', { destination: '/topic/tx', transaction: 'a', receipt: 'r3' }, 'x'.repeat(100));
      const error = await sender.expectErrorAndClose();
      expect(header(error, 'message')).to.include('at most 2048 bytes');
      expect(header(error, 'receipt-id')).to.equal('r3');
      expect(await metricValue(small.url, 'stomp_limits_hit_total', { limit: 'transaction_bytes' })).to.equal(
        1,
      );
    } finally {
      await small.stop();
    }
  });

  it('a transaction collects at most MAX_TRANSACTION_FRAMES frames, apart from MAX_FRAMES_IN_FLIGHT', async () => {
    const small = await startTestService({
      authorizationFile: openAuthorizationFile(),
      maxTransactionFrames: 3,
      maxFramesInFlight: 1000,
    });
    try {
      const sender = clients.add(await connectRaw(small, 'alice'));
      await sender.sendWithReceipt('BEGIN', { transaction: 'a' });
      for (let i = 0; i < 3; i++) {
        await sender.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'a' }, `m${i}`);
      }
      sender.send('SEND', { destination: '/topic/tx', transaction: 'a', receipt: 'r4' }, 'one too many');
      const error = await sender.expectErrorAndClose();
      expect(header(error, 'message')).to.include(
        'at most 3 frames per transaction (MAX_TRANSACTION_FRAMES)',
      );
      expect(header(error, 'receipt-id')).to.equal('r4');
      expect(
        await metricValue(small.url, 'stomp_limits_hit_total', { limit: 'transaction_frames' }),
      ).to.equal(1);
    } finally {
      await small.stop();
    }
  });
});
