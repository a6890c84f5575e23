/**
 * A bounded protocol fuzz against live sessions (the long run belongs to the soak script): valid
 * frames mutated (bytes flipped, inserted, dropped) and written split at random boundaries. Every
 * outcome must be one of: the session carries on (a probe gets its RECEIPT), the session ends with
 * an ERROR followed by the close, or the parser is still waiting for the rest of a frame. Never a
 * close without an ERROR, never an ERROR without the close, and a witness session is unaffected.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { sleep, waitFor } from '../../support/wait';

const SEEDS = [
  'SUBSCRIBE\nid:s1\ndestination:/topic/fuzz\nack:auto\n\n\0',
  'SEND\ndestination:/app/echo\ncontent-type:text/plain\n\nhello\0',
  'SEND\ndestination:/app/chat/fuzz\ncontent-length:5\n\nhe\0lo\0',
  'UNSUBSCRIBE\nid:s1\n\n\0',
  'BEGIN\ntransaction:t\n\n\0',
  'ACK\nid:s1:1\n\n\0',
  'SEND\ndestination:/topic/fuzz\nx-h:a\\cb\\n\n\nbody\0',
].map((s) => Buffer.from(s));
const INTERESTING = [0x00, 0x0a, 0x0d, 0x3a, 0x5c, 0x41, 0xff];

type Mutation = { op: 'flip' | 'insert' | 'delete'; at: number; byte: number };

function mutate(seed: Buffer, mutations: Mutation[]): Buffer {
  let bytes = Buffer.from(seed);
  for (const { op, at, byte } of mutations) {
    const i = at % (bytes.length + 1);
    if (op === 'insert')
      bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([byte]), bytes.subarray(i)]);
    else if (bytes.length === 0) continue;
    else if (op === 'delete') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + 1)]);
    else bytes[i % bytes.length] = byte;
  }
  return bytes;
}

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    parts.push(bytes.subarray(from, p));
    from = p;
  }
  parts.push(bytes.subarray(from));
  return parts.filter((p) => p.length > 0);
}

describe('session: protocol fuzz (bounded)', function () {
  this.timeout(30000);
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, maxFramesPerSecond: 100000 });
  });
  after(async () => {
    clients.closeAll();
    await service.stop();
  });

  it('mutated frames split at random boundaries: carry on, or ERROR then close; never anything else', async () => {
    const witness = clients.add(await connectRaw(service, 'witness'));
    await witness.sendWithReceipt('SUBSCRIBE', { id: 'w', destination: '/topic/witness' });
    const outcomes = { alive: 0, refused: 0, waiting: 0 };

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SEEDS),
        fc.array(
          fc.record({
            op: fc.constantFrom<Mutation['op']>('flip', 'insert', 'delete'),
            at: fc.nat(),
            byte: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })),
          }),
          { minLength: 1, maxLength: 3 },
        ),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.constantFrom<'tcp' | 'websocket'>('tcp', 'websocket'),
        async (seed, mutations, cuts, transport) => {
          const client: RawStompClient = clients.add(await connectRaw(service, 'fuzzer', { transport }));
          for (const part of split(mutate(seed, mutations), cuts)) client.sendRaw(part);
          client.sendRaw('SEND\ndestination:/app/echo\nreceipt:probe\n\n\0');
          await waitFor(
            () =>
              client.closed ||
              client.frames.some((f) => f.command === 'ERROR' || header(f, 'receipt-id') === 'probe'),
            300,
            'an answer',
          ).catch(() => undefined);
          const error = client.all('ERROR')[0];
          if (error) {
            expect(header(error, 'message'), 'ERROR has a message')
              .to.be.a('string')
              .with.length.greaterThan(0);
            await client.waitForClose(2000);
            outcomes.refused++;
          } else {
            expect(client.closed, 'closed without an ERROR').to.equal(false);
            if (client.frames.some((f) => header(f, 'receipt-id') === 'probe')) outcomes.alive++;
            else outcomes.waiting++;
          }
          client.close();
        },
      ),
      { numRuns: 60 },
    );

    await sleep(100);
    expect(service.registry.countForUser('fuzzer')).to.equal(0);
    await witness.sendWithReceipt('SEND', { destination: '/app/chat/x' }, 'ok');
    expect(witness.closed).to.equal(false);
    expect(outcomes.refused, JSON.stringify(outcomes)).to.be.greaterThan(0);
  });
});
