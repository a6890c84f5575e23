/**
 * Receipts and protocol errors, over plain WebSocket and raw TCP alike: RECEIPT for every frame
 * with a `receipt` header (spec 1.2 §RECEIPT), ERROR with `receipt-id` and a `message` before the
 * close (§ERROR), and bad input (unknown commands, frames before CONNECT, malformed frames, frames
 * over the limits) ending only the offending session while another keeps working.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, openRaw, RawClients, type RawStompClient } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { sleep } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';

describe('session: receipts and errors', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      maxFrameBytes: 4096,
      maxHeaders: 16,
      maxHeaderBytes: 1024,
      authorizationFile: openAuthorizationFile(),
    });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  for (const transport of ['websocket', 'tcp'] as const) {
    describe(`over ${transport}`, () => {
      const connect = async (user = 'alice'): Promise<RawStompClient> =>
        clients.add(await connectRaw(service, user, { transport }));

      /** A second session that must be unaffected by whatever the first one did. */
      const expectStillWorking = async (witness: RawStompClient): Promise<void> => {
        expect(witness.closed).to.equal(false);
        await witness.sendWithReceipt('SUBSCRIBE', { id: `w${Date.now()}`, destination: '/topic/witness' });
        await witness.sendWithReceipt('SEND', { destination: '/topic/witness' }, 'still here');
        const message = await witness.waitForFrame('MESSAGE');
        expect(message.body.toString()).to.equal('still here');
      };

      it('answers SUBSCRIBE, SEND, UNSUBSCRIBE, BEGIN, COMMIT, ABORT with a RECEIPT naming the receipt', async () => {
        const client = await connect();
        const frames: [string, Record<string, string>][] = [
          ['SUBSCRIBE', { id: 's1', destination: '/topic/a' }],
          ['SEND', { destination: '/topic/a' }],
          ['UNSUBSCRIBE', { id: 's1' }],
          ['BEGIN', { transaction: 't1' }],
          ['COMMIT', { transaction: 't1' }],
          ['BEGIN', { transaction: 't2' }],
          ['ABORT', { transaction: 't2' }],
        ];
        for (const [i, [command, headers]] of frames.entries()) {
          client.send(command, { ...headers, receipt: `rcpt-${i}` });
        }
        for (let i = 0; i < frames.length; i++) {
          const receipt = await client.waitForFrame('RECEIPT');
          expect(header(receipt, 'receipt-id')).to.equal(`rcpt-${i}`); // in order, one each
        }
        expect(client.all('ERROR')).to.have.length(0);
      });

      it('DISCONNECT with a receipt: the RECEIPT is the last frame, then the close', async () => {
        const client = await connect();
        client.send('DISCONNECT', { receipt: 'bye' });
        const receipt = await client.waitForFrame('RECEIPT');
        expect(header(receipt, 'receipt-id')).to.equal('bye');
        await client.waitForClose();
        expect(client.all('ERROR')).to.have.length(0);
      });

      it('an ERROR for a frame that asked for a receipt carries receipt-id, and no RECEIPT is sent', async () => {
        const client = await connect();
        client.send('SUBSCRIBE', { id: 's1', destination: '/exchange/x', receipt: 'r-77' });
        const error = await client.expectErrorAndClose();
        expect(header(error, 'receipt-id')).to.equal('r-77');
        expect(header(error, 'message')).to.include('/exchange/x');
        expect(client.all('RECEIPT')).to.have.length(0);
      });

      it('an unknown command → ERROR naming it, then close; another session keeps working', async () => {
        const witness = await connect('bob');
        const client = await connect();
        client.send('FROBNICATE', { receipt: 'r1' });
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.match(/unknown command 'FROBNICATE'/);
        expect(header(error, 'receipt-id')).to.equal('r1');
        await expectStillWorking(witness);
      });

      it('SEND before CONNECT → ERROR, then close, without delivering', async () => {
        const witness = await connect('bob');
        await witness.sendWithReceipt('SUBSCRIBE', { id: 'x', destination: '/topic/early' });
        const client = clients.add(await openRaw(service, transport));
        client.send('SEND', { destination: '/topic/early' }, 'sneaky');
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.match(/SEND before CONNECT/);
        await sleep(100);
        expect(witness.all('MESSAGE')).to.have.length(0);
      });

      const malformed: [string, string | Buffer, RegExp][] = [
        ['garbage bytes', Buffer.from([0xff, 0xfe, 0x01, 0x0a, 0x0a, 0x00]), /invalid command/],
        ['a lower-case command', 'send\ndestination:/topic/a\n\n\0', /invalid command/],
        ['a header without colon', 'SEND\ndestination /topic/a\n\n\0', /header line without ':'/],
        ['an undefined escape', 'SEND\ndestination:/topic/a\nx:a\\tb\n\n\0', /undefined escape sequence/],
        ['a NUL inside a header', 'SEND\ndestination:/topic/\0a\n\n\0', /NUL byte in header line/],
        ['a bad content-length', 'SEND\ndestination:/topic/a\ncontent-length:abc\n\nx\0', /content-length/],
        [
          'content-length smaller than the body',
          'SEND\ndestination:/topic/a\ncontent-length:2\n\nabcdef\0',
          /content-length does not match body/,
        ],
      ];
      for (const [name, bytes, why] of malformed) {
        it(`a malformed frame (${name}) → ERROR, then close; another session keeps working`, async () => {
          const witness = await connect('bob');
          const client = await connect();
          client.sendRaw(bytes);
          const error = await client.expectErrorAndClose();
          expect(header(error, 'message')).to.match(why);
          await expectStillWorking(witness);
        });
      }

      it('content-length larger than the body swallows what follows, and the frame still ends in ERROR', async () => {
        const client = await connect();
        client.sendRaw('SEND\ndestination:/topic/a\ncontent-length:10\n\nabc\0SEND\n\nxyz\0');
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.match(/content-length does not match body/);
      });

      it('a frame over MAX_FRAME_BYTES → ERROR naming the limit, then close', async () => {
        const witness = await connect('bob');
        const client = await connect();
        client.send('SEND', { destination: '/topic/a' }, Buffer.alloc(5000, 0x61));
        const error = await client.expectErrorAndClose();
        expect(header(error, 'message')).to.match(/larger than 4096 bytes/);
        await expectStillWorking(witness);
      });

      it('a frame just under MAX_FRAME_BYTES is accepted', async () => {
        const client = await connect();
        await client.sendWithReceipt('SEND', { destination: '/topic/a' }, Buffer.alloc(3900, 0x61));
      });

      it('too many headers, or a header line over MAX_HEADER_BYTES → ERROR, then close', async () => {
        const many = await connect();
        const headers: Record<string, string> = { destination: '/topic/a' };
        for (let i = 0; i < 20; i++) headers[`h${i}`] = 'v';
        many.send('SEND', headers);
        expect(header(await many.expectErrorAndClose(), 'message')).to.match(/more than 16 headers/);

        const long = await connect();
        long.send('SEND', { destination: '/topic/a', long: 'x'.repeat(2000) });
        expect(header(await long.expectErrorAndClose(), 'message')).to.match(/longer than 1024 bytes/);
      });

      it('a frame split into single bytes is read like a whole one', async () => {
        const client = await connect();
        const bytes = Buffer.from(
          'SUBSCRIBE\r\nid:s1\r\ndestination:/topic/split\r\nreceipt:r-split\r\n\r\n\0',
        );
        for (const byte of bytes) client.sendRaw(Buffer.from([byte]));
        const receipt = await client.waitForFrame('RECEIPT');
        expect(header(receipt, 'receipt-id')).to.equal('r-split');
      });

      it('frames after DISCONNECT are ignored', async () => {
        const witness = await connect('bob');
        await witness.sendWithReceipt('SUBSCRIBE', { id: 'x', destination: '/topic/after' });
        const client = await connect();
        client.sendRaw('DISCONNECT\nreceipt:bye\n\n\0SEND\ndestination:/topic/after\nreceipt:r2\n\nlate\0');
        await client.waitForClose();
        await sleep(100);
        expect(client.all('RECEIPT').map((f) => header(f, 'receipt-id'))).to.deep.equal(['bye']);
        expect(witness.all('MESSAGE')).to.have.length(0);
      });
    });
  }

  it('a 1 MB line with no newline over TCP is refused as soon as it outgrows the header limit', async () => {
    const client = clients.add(await openRaw(service, 'tcp'));
    await client.connect(tokenFor(service, 'alice'));
    const line = Buffer.alloc(1024 * 1024, 0x41);
    client.sendRaw(line);
    const error = await client.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/longer than 1024 bytes/);
  });
});
