/**
 * What a SEND carries reaches subscribers intact: content-type and custom headers (escaped per the
 * receiver's version), control headers not forgeable, and binary bodies with NUL bytes byte-exact
 * with the right content-length over /stomp (binary WebSocket messages) and raw TCP.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';

describe('session: headers and bodies', () => {
  let service: RunningService;
  const clients = new RawClients();

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, authorizationFile: openAuthorizationFile() });
  });
  afterEach(() => clients.closeAll());
  after(async () => {
    await service.stop();
  });

  const connect = async (user: string, transport: RawTransport = 'websocket', version?: string) =>
    clients.add(
      await connectRaw(service, user, { transport, headers: version ? { 'accept-version': version } : {} }),
    );
  const listen = async (destination: string, transport: RawTransport = 'websocket', version?: string) => {
    const c = await connect('bob', transport, version);
    await c.sendWithReceipt('SUBSCRIBE', { id: 's', destination });
    return c;
  };

  it('content-type and custom headers pass through', async () => {
    const listener = await listen('/topic/h1');
    const sender = await connect('alice');
    await sender.sendWithReceipt(
      'SEND',
      {
        destination: '/topic/h1',
        'content-type': 'application/json;charset=utf-8',
        'x-trace-id': 'abc-123',
        priority_hint: 'high',
      },
      '{"a":1}',
    );
    const m = await listener.waitForFrame('MESSAGE');
    expect(header(m, 'content-type')).to.equal('application/json;charset=utf-8');
    expect(header(m, 'x-trace-id')).to.equal('abc-123');
    expect(header(m, 'priority_hint')).to.equal('high');
    expect(m.body.toString()).to.equal('{"a":1}');
  });

  it('header values with ":" "\\\\" and line breaks survive escaping, for 1.2 and 1.1 receivers', async () => {
    const v12 = await listen('/topic/h2');
    const v11 = await listen('/topic/h2', 'tcp', '1.1');
    const sender = await connect('alice');
    await sender.sendWithReceipt('SEND', { destination: '/topic/h2', 'x-odd': 'a:b\\c\nd' }, 'x');
    for (const listener of [v12, v11]) {
      expect(header(await listener.waitForFrame('MESSAGE'), 'x-odd')).to.equal('a:b\\c\nd');
    }
    // On the wire the 1.1 receiver saw escapes, not raw line breaks inside a header.
    expect(Buffer.concat(v11.bytesIn).toString()).to.include('x-odd:a\\cb\\\\c\\nd');
  });

  it('a 1.2 SEND with an escaped LF or CR in a header reaches 1.0 and 1.1 subscribers, without what they cannot carry', async () => {
    const v12 = await listen('/topic/h-old', 'websocket', '1.2');
    const v11 = await listen('/topic/h-old', 'websocket', '1.1');
    const v10 = await listen('/topic/h-old', 'tcp', '1.0');
    const dropped = async () =>
      Promise.all(
        ['1.0', '1.1'].map((version) =>
          metricValue(service.url, 'stomp_message_headers_dropped_total', { version }),
        ),
      );
    const before = await dropped();
    const sender = await connect('alice', 'tcp', '1.2');
    await sender.sendWithReceipt(
      'SEND',
      { destination: '/topic/h-old', 'x-lf': 'one\ntwo', 'x-cr': 'one\rtwo', 'x-plain': 'kept' },
      'the body',
    );
    const received = await Promise.all([v12, v11, v10].map((c) => c.waitForFrame('MESSAGE')));
    const seen = received.map((m) => ({
      body: m.body.toString(),
      lf: header(m, 'x-lf'),
      cr: header(m, 'x-cr'),
      plain: header(m, 'x-plain'),
    }));
    expect(seen).to.deep.equal([
      { body: 'the body', lf: 'one\ntwo', cr: 'one\rtwo', plain: 'kept' },
      // 1.1 escapes a LF (\n) but has no escape for CR.
      { body: 'the body', lf: 'one\ntwo', cr: undefined, plain: 'kept' },
      // 1.0 escapes nothing: neither fits on one header line.
      { body: 'the body', lf: undefined, cr: undefined, plain: 'kept' },
    ]);
    const after = await dropped();
    expect(
      after.map((n, i) => n - before[i]),
      'headers left off, counted for 1.0 and 1.1',
    ).to.deep.equal([2, 1]);
  });

  it('a raw CR inside a header, which no 1.0/1.1 reply could echo, is refused with an ERROR, not lost', async () => {
    const sender = await connect('alice', 'tcp', '1.1');
    sender.sendRaw('SEND\ndestination:/topic/h-cr\nreceipt:a\rb\n\nx\0');
    const error = await sender.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/^carriage return inside a header line/);
  });

  it('a sender cannot forge subscription, message-id, destination or sender; repeated headers: first wins', async () => {
    const listener = await listen('/topic/h3');
    const sender = await connect('alice');
    sender.sendRaw(
      'SEND\ndestination:/topic/h3\ndestination:/topic/other\nsubscription:fake\nmessage-id:fake\n' +
        'sender:mallory\nx-dup:first\nx-dup:second\nreceipt:r\n\nbody\0',
    );
    await sender.waitForFrame('RECEIPT');
    const m = await listener.waitForFrame('MESSAGE');
    expect(header(m, 'subscription')).to.equal('s');
    expect(header(m, 'message-id')).to.not.equal('fake');
    expect(header(m, 'destination')).to.equal('/topic/h3');
    expect(header(m, 'sender')).to.equal(undefined);
    expect(header(m, 'x-dup')).to.equal('first');
    expect(m.headers.filter(([k]) => k === 'subscription')).to.have.length(1);
  });

  const binary = Buffer.concat([
    Buffer.from([0, 0, 1, 2, 0]),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.from('\0\n\n\0NUL at the end\0'),
  ]);
  const routes: [RawTransport, RawTransport][] = [
    ['websocket', 'websocket'],
    ['tcp', 'tcp'],
    ['tcp', 'websocket'],
    ['websocket', 'tcp'],
  ];
  for (const [from, to] of routes) {
    it(`a binary body with NUL bytes arrives byte-exact with content-length (${from} → ${to})`, async () => {
      const destination = `/topic/bin-${from}-${to}`;
      const listener = await listen(destination, to);
      const sender = await connect('alice', from);
      await sender.sendWithReceipt(
        'SEND',
        { destination, 'content-type': 'application/octet-stream' },
        binary,
      );
      const m = await listener.waitForFrame('MESSAGE');
      expect(m.body.equals(binary)).to.equal(true);
      expect(header(m, 'content-length')).to.equal(String(binary.length));
      expect(header(m, 'content-type')).to.equal('application/octet-stream');
    });
  }

  it('a UTF-8 text body arrives intact, content-length in bytes', async () => {
    const listener: RawStompClient = await listen('/topic/utf8');
    const sender = await connect('alice');
    const text = 'grüße, 世界 🌍';
    await sender.sendWithReceipt(
      'SEND',
      { destination: '/topic/utf8', 'content-type': 'text/plain;charset=utf-8' },
      text,
    );
    const m = await listener.waitForFrame('MESSAGE');
    expect(m.body.toString('utf8')).to.equal(text);
    expect(header(m, 'content-length')).to.equal(String(Buffer.byteLength(text)));
  });
});
