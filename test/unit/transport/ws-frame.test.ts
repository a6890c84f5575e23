import { expect } from 'chai';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { SharedWebSocketFrame, frameSender, webSocketFrame } from '../../../app/transport/ws-frame';

/** A real ws server and client; the server writes pre-built frames, the client reads messages. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket; close(): Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  const server = await accepted;
  return {
    server,
    client,
    close: async () => {
      client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

describe('unit: pre-built WebSocket frames', () => {
  it('a client reads each as one message with its bytes, text or binary as they are, at every length', async () => {
    const { server, client, close } = await pair();
    try {
      const sent: { parts: Buffer[]; binary: boolean }[] = [
        { parts: [Buffer.from('MESSAGE\n\nhi\0')], binary: false },
        { parts: [Buffer.from('a'.repeat(125))], binary: false },
        { parts: [Buffer.from('b'.repeat(126))], binary: false },
        { parts: [Buffer.from('c'.repeat(65_535))], binary: false },
        { parts: [Buffer.from('d'.repeat(65_536)), Buffer.from('\n')], binary: false },
        { parts: [Buffer.from('é€'), Buffer.from([0x00]), Buffer.from('z')], binary: false },
        { parts: [Buffer.from([0xff, 0xfe, 0x00]), Buffer.from('tail')], binary: true },
      ];
      const got: { data: Buffer; binary: boolean }[] = [];
      const all = new Promise<void>((resolve) =>
        client.on('message', (data: Buffer, binary: boolean) => {
          got.push({ data, binary });
          if (got.length === sent.length) resolve();
        }),
      );
      const sender = frameSender(server);
      expect(sender, 'ws sender takes pre-built frames').to.not.equal(undefined);
      for (const { parts } of sent) sender!.sendFrame([webSocketFrame(parts)]);
      await all;
      expect(got.map((g) => g.binary)).to.deep.equal(sent.map((s) => s.binary));
      got.forEach((g, i) =>
        expect(g.data.equals(Buffer.concat(sent[i].parts)), `message ${i}`).to.equal(true),
      );
    } finally {
      await close();
    }
  });

  it('the same buffers give the same frame object; other buffers, even with equal bytes, a new one', () => {
    const shared = new SharedWebSocketFrame();
    const one = Buffer.from('x');
    const two = Buffer.from('y');
    const first = shared.frameFor([one, two]);
    expect(shared.frameFor([one, two])).to.equal(first);
    const copy = shared.frameFor([one, Buffer.from('y')]);
    expect(copy).to.not.equal(first);
    expect(copy.equals(first)).to.equal(true);
    expect(shared.frameFor([one])).to.not.equal(copy);
  });
});
