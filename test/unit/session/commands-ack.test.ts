/**
 * The command table's ACK, NACK, BEGIN, COMMIT and ABORT through a real StompSession on an
 * in-memory socket and the embedded broker: what an acknowledgement settles, what a transaction
 * holds back until COMMIT and drops at ABORT, and the limits on what a transaction may hold.
 */
import { expect } from 'chai';
import { header, type Frame } from '../../../app/stomp/frame';
import { sessionBench, type SessionBench } from '../../support/in-memory-session';
import type { RawStompClient } from '../../support/raw-stomp';
import { sleep } from '../../support/wait';

async function refused(client: RawStompClient): Promise<string> {
  return header(await client.expectErrorAndClose(), 'message') ?? '';
}

const bodies = (frames: Frame[]): string[] => frames.map((f) => f.body.toString());

describe('command table: acknowledgements and transactions', function () {
  let bench: SessionBench;
  beforeEach(
    async () => (bench = await sessionBench({ maxTransactionFrames: 3, maxTransactionBytes: 1024 })),
  );
  afterEach(async () => bench.stop());

  /** Puts `messages` on queue `name` (each confirmed) from a session of its own. */
  async function fill(name: string, ...messages: string[]): Promise<void> {
    const producer = await bench.connect('producer');
    for (const m of messages) await producer.sendWithReceipt('SEND', { destination: `/queue/${name}` }, m);
    producer.close();
  }

  /** A consumer of queue `name` in `ack` mode that has received `count` messages. */
  async function consumer(
    name: string,
    ack: string,
    count: number,
    version = '1.2',
  ): Promise<{ client: RawStompClient; got: Frame[] }> {
    const client = await bench.connect('alice', { 'accept-version': version });
    await client.sendWithReceipt('SUBSCRIBE', { id: 'q', destination: `/queue/${name}`, ack });
    const got: Frame[] = [];
    for (let i = 0; i < count; i++) got.push(await client.waitForFrame('MESSAGE'));
    return { client, got };
  }

  it('client-individual: an ACKed message is gone, an unacknowledged one comes back after the session ends', async function () {
    await fill('ci', 'one', 'two');
    const first = await consumer('ci', 'client-individual', 2);
    await first.client.sendWithReceipt('ACK', { id: header(first.got[1]!, 'ack')! });
    first.client.close();
    const second = await consumer('ci', 'client-individual', 1);
    expect(bodies(second.got)).to.deep.equal(['one']);
    expect(header(second.got[0]!, 'redelivered')).to.equal('true');
  });

  it('client: one ACK settles that message and every earlier one of the subscription', async function () {
    await fill('cum', 'one', 'two', 'three');
    const first = await consumer('cum', 'client', 3);
    await first.client.sendWithReceipt('ACK', { id: header(first.got[1]!, 'ack')! });
    first.client.close();
    const second = await consumer('cum', 'client', 1);
    expect(bodies(second.got)).to.deep.equal(['three']);
  });

  it('NACK gives the message back to the queue, redelivered', async function () {
    await fill('nack', 'one');
    const { client, got } = await consumer('nack', 'client-individual', 1);
    await client.sendWithReceipt('NACK', { id: header(got[0]!, 'ack')! });
    const again = await client.waitForFrame('MESSAGE');
    expect(again.body.toString()).to.equal('one');
    expect(header(again, 'redelivered')).to.equal('true');
  });

  it('STOMP 1.1 acknowledges by message-id and subscription', async function () {
    await fill('v11', 'one', 'two');
    const first = await consumer('v11', 'client-individual', 2, '1.1');
    expect(header(first.got[0]!, 'ack'), '1.1 MESSAGE frames carry no ack header').to.equal(undefined);
    await first.client.sendWithReceipt('ACK', {
      'message-id': header(first.got[0]!, 'message-id')!,
      subscription: 'q',
    });
    first.client.close();
    expect(bodies((await consumer('v11', 'client-individual', 1)).got)).to.deep.equal(['two']);
  });

  it('refuses an ACK without id, for no pending message, or for one already acknowledged', async function () {
    await fill('bad', 'one');
    const { client, got } = await consumer('bad', 'client-individual', 1);
    const token = header(got[0]!, 'ack')!;
    await client.sendWithReceipt('ACK', { id: token });
    client.send('ACK', { id: token });
    expect(await refused(client)).to.equal(
      'ACK for a message this session has no pending acknowledgement of',
    );

    const other = await bench.connect('bob');
    other.send('NACK', {});
    expect(await refused(other)).to.equal("NACK needs a 'id' header");
    const stranger = await bench.connect('bob');
    stranger.send('ACK', { id: token });
    expect(await refused(stranger), "another session's token").to.match(/no pending acknowledgement/);
  });

  it('a transaction SENDs nothing until COMMIT, and nothing at all after ABORT', async function () {
    const sub = await bench.connect('bob');
    await sub.sendWithReceipt('SUBSCRIBE', { id: 's', destination: '/topic/tx' });
    const pub = await bench.connect('alice');
    await pub.sendWithReceipt('BEGIN', { transaction: 'a' });
    await pub.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'a' }, 'dropped');
    await pub.sendWithReceipt('ABORT', { transaction: 'a' });
    await pub.sendWithReceipt('BEGIN', { transaction: 'c' });
    await pub.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'c' }, 'one');
    await pub.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'c' }, 'two');
    await sleep(50);
    expect(sub.all('MESSAGE'), 'before COMMIT').to.have.length(0);
    await pub.sendWithReceipt('COMMIT', { transaction: 'c' });
    await sub.waitForFrame('MESSAGE');
    await sub.waitForFrame('MESSAGE');
    await sleep(50);
    expect(bodies(sub.all('MESSAGE'))).to.deep.equal(['one', 'two']);
  });

  it('an ACK inside a transaction does nothing until COMMIT: after ABORT the message can still be acknowledged', async function () {
    await fill('txack', 'one', 'two');
    const { client, got } = await consumer('txack', 'client-individual', 2);
    const [one, two] = got.map((m) => header(m, 'ack')!);
    await client.sendWithReceipt('BEGIN', { transaction: 'a' });
    await client.sendWithReceipt('ACK', { id: one!, transaction: 'a' });
    await client.sendWithReceipt('ABORT', { transaction: 'a' });
    await client.sendWithReceipt('ACK', { id: one! });
    await client.sendWithReceipt('BEGIN', { transaction: 'b' });
    await client.sendWithReceipt('ACK', { id: two!, transaction: 'b' });
    await client.sendWithReceipt('BEGIN', { transaction: 'c' });
    client.send('ACK', { id: two!, transaction: 'c' });
    expect(await refused(client)).to.equal('ACK for a message already acknowledged in a transaction');
    // That session ended with 'b' open: its ACK never took effect, so 'two' is delivered again.
    expect(bodies((await consumer('txack', 'client-individual', 1)).got)).to.deep.equal(['two']);
  });

  it('an ACK inside a committed transaction settles the message', async function () {
    await fill('txcommit', 'one', 'two');
    const { client, got } = await consumer('txcommit', 'client-individual', 2);
    await client.sendWithReceipt('BEGIN', { transaction: 't' });
    await client.sendWithReceipt('ACK', { id: header(got[0]!, 'ack')!, transaction: 't' });
    await client.sendWithReceipt('COMMIT', { transaction: 't' });
    client.send('ACK', { id: header(got[0]!, 'ack')! });
    expect(await refused(client), 'settled at COMMIT').to.match(/no pending acknowledgement/);
    expect(bodies((await consumer('txcommit', 'client-individual', 1)).got)).to.deep.equal(['two']);
  });

  it('refuses BEGIN twice, and COMMIT, ABORT or a transactional SEND of a transaction never begun', async function () {
    const cases: [[string, Record<string, string>][], string][] = [
      [
        [
          ['BEGIN', { transaction: 't' }],
          ['BEGIN', { transaction: 't' }],
        ],
        "transaction 't' is already open",
      ],
      [[['COMMIT', { transaction: 'x' }]], "no transaction 'x'"],
      [[['ABORT', { transaction: 'x' }]], "no transaction 'x'"],
      [[['BEGIN', {}]], "BEGIN needs a 'transaction' header"],
      [[['SEND', { destination: '/topic/t', transaction: 'x' }]], "no transaction 'x' (send BEGIN first)"],
    ];
    for (const [frames, reason] of cases) {
      const client = await bench.connect('alice');
      for (const [command, headers] of frames) client.send(command, headers);
      expect(await refused(client), JSON.stringify(frames)).to.equal(reason);
    }
  });

  it('holds a transaction to maxTransactionFrames frames and maxTransactionBytes bytes, and a session to 16 open', async function () {
    const frames = await bench.connect('alice');
    await frames.sendWithReceipt('BEGIN', { transaction: 't' });
    for (let i = 0; i < 3; i++)
      await frames.sendWithReceipt('SEND', { destination: '/topic/t', transaction: 't' }, 'x');
    frames.send('SEND', { destination: '/topic/t', transaction: 't' }, 'x');
    expect(await refused(frames)).to.equal(
      'at most 3 frames per transaction (MAX_TRANSACTION_FRAMES): COMMIT or ABORT first',
    );

    const bytes = await bench.connect('alice');
    await bytes.sendWithReceipt('BEGIN', { transaction: 'a' });
    await bytes.sendWithReceipt('BEGIN', { transaction: 'b' });
    await bytes.sendWithReceipt('SEND', { destination: '/topic/t', transaction: 'a' }, 'x'.repeat(600));
    // Counted over every open transaction of the session, not per transaction.
    bytes.send('SEND', { destination: '/topic/t', transaction: 'b' }, 'x'.repeat(425));
    expect(await refused(bytes)).to.equal(
      'open transactions may hold at most 1024 bytes of messages: COMMIT or ABORT first',
    );

    const open = await bench.connect('alice');
    for (let i = 0; i < 16; i++) await open.sendWithReceipt('BEGIN', { transaction: `t${i}` });
    open.send('BEGIN', { transaction: 't16' });
    expect(await refused(open)).to.equal('at most 16 open transactions per session');
  });
});
