/**
 * What a SEND carries reaches subscribers intact: content-type and custom headers (escaped per the
 * receiver's version), control headers not forgeable, and binary bodies with NUL bytes byte-exact
 * with the right content-length over /stomp (binary WebSocket messages) and raw TCP; subscribers
 * of one message whose frames are shared still get each their own.
 */
import { expect } from 'chai';
import { header, type Frame } from '../../../app/stomp/frame';
import { connectRaw, RawClients, type RawStompClient, type RawTransport } from '../../support/raw-stomp';
import { publishDirect, startTestService, tokenFor, type RunningService } from '../../support/service';
import { openSockJs } from '../../support/sockjs-raw';
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

  // One topic message is encoded once for every subscriber whose MESSAGE is the same bytes
  // (session/shared-frames.ts), its WebSocket message built once (transport/ws-frame.ts): each
  // subscriber still gets exactly its own frame.
  const subscriber = async (
    subscription: Record<string, string>,
    options: { transport?: RawTransport; version?: string } = {},
  ): Promise<RawStompClient> => {
    const headers = options.version ? { 'accept-version': options.version } : {};
    const c = clients.add(await connectRaw(service, 'bob', { transport: options.transport, headers }));
    await c.sendWithReceipt('SUBSCRIBE', { destination: '/topic/shared', ...subscription });
    return c;
  };
  const headersOf = (f: Frame): string[] => f.headers.map(([name, value]) => `${name}:${value}`);

  it('equal subscribers get equal bytes; an id, an ack mode or a version of its own gets its own frame', async () => {
    const [a, b] = [await subscriber({ id: 'sub-0' }), await subscriber({ id: 'sub-0' })];
    const other = await subscriber({ id: 'sub-1' });
    const acking = await subscriber({ id: 'sub-0', ack: 'client-individual' });
    const old = await subscriber({ id: 'sub-0' }, { transport: 'tcp', version: '1.0' });
    const dropsBefore = await metricValue(service.url, 'stomp_message_headers_dropped_total', {
      version: '1.0',
    });

    for (const body of ['one', 'two'])
      await publishDirect(service, { kind: 'topic', name: 'shared' }, body, {
        'x-note': 'a:b',
        'x-lines': 'l1\nl2',
      });

    const received = async (c: RawStompClient): Promise<Frame[]> => [
      await c.waitForFrame('MESSAGE'),
      await c.waitForFrame('MESSAGE'),
    ];
    const [fa, fb, fo, fk, f0] = [
      await received(a),
      await received(b),
      await received(other),
      await received(acking),
      await received(old),
    ];
    expect(fa.map(headersOf)).to.deep.equal(fb.map(headersOf));
    expect(fa.map((f) => f.body.toString())).to.deep.equal(['one', 'two']);
    for (const frames of [fa, fb, fo, fk, f0]) {
      expect(frames.map((f) => f.body.toString())).to.deep.equal(['one', 'two']);
      expect(frames.map((f) => header(f, 'destination'))).to.deep.equal(['/topic/shared', '/topic/shared']);
      expect(header(frames[0], 'message-id')).to.equal(header(fa[0], 'message-id'));
    }
    expect(fa.map((f) => header(f, 'subscription'))).to.deep.equal(['sub-0', 'sub-0']);
    expect(fo.map((f) => header(f, 'subscription'))).to.deep.equal(['sub-1', 'sub-1']);
    expect(fa.map((f) => header(f, 'ack'))).to.deep.equal([undefined, undefined]);
    expect(fo.map((f) => header(f, 'ack'))).to.deep.equal([undefined, undefined]);
    expect(fa.map((f) => header(f, 'x-lines'))).to.deep.equal(['l1\nl2', 'l1\nl2']);

    // The client-ack subscriber has an ack token per delivery, and each one works.
    const tokens = fk.map((f) => header(f, 'ack'));
    expect(tokens[0]).to.be.a('string');
    expect(tokens[1]).to.be.a('string').and.not.equal(tokens[0]);
    for (const id of tokens) await acking.sendWithReceipt('ACK', { id: id! });

    // 1.0 cannot carry a header with a line break: left off its copy alone, counted per delivery.
    expect(f0.map((f) => header(f, 'x-lines'))).to.deep.equal([undefined, undefined]);
    expect(f0.map((f) => header(f, 'x-note'))).to.deep.equal(['a:b', 'a:b']);
    expect(fa.map((f) => header(f, 'x-note'))).to.deep.equal(['a:b', 'a:b']);
    expect(
      await metricValue(service.url, 'stomp_message_headers_dropped_total', { version: '1.0' }),
    ).to.equal(dropsBefore + 2);
  });

  it('a body that is not UTF-8 reaches every subscriber as the same bytes in a binary message', async () => {
    const subs = [
      await subscriber({ id: 'sub-0' }),
      await subscriber({ id: 'sub-0' }),
      await subscriber({ id: 's' }),
    ];
    const body = Buffer.from([0xff, 0x00, 0xfe, 0x41, 0x0a]);
    const big = Buffer.alloc(70_000, 0x61);
    await publishDirect(service, { kind: 'topic', name: 'shared' }, body);
    await publishDirect(service, { kind: 'topic', name: 'shared' }, big);
    for (const c of subs) {
      expect((await c.waitForFrame('MESSAGE')).body.equals(body)).to.equal(true);
      expect((await c.waitForFrame('MESSAGE')).body.equals(big)).to.equal(true);
    }
  });
  it('over SockJS websocket sessions every subscriber gets the message whole, in its own frame', async () => {
    const sockJs = async (id: string): Promise<RawStompClient> => {
      const c = clients.add(await openSockJs(service.url, 'websocket'));
      await c.connect(tokenFor(service, 'bob'));
      await c.sendWithReceipt('SUBSCRIBE', { destination: '/topic/shared-sockjs', id });
      return c;
    };
    const subs = [await sockJs('sub-0'), await sockJs('sub-0'), await sockJs('sub-1')];
    const texts = ['quote " backslash \\ line\nend', 'grüße 世界 🌍 \u2028'];
    for (const text of texts) await publishDirect(service, { kind: 'topic', name: 'shared-sockjs' }, text);
    for (const [i, c] of subs.entries()) {
      const frames = [await c.waitForFrame('MESSAGE'), await c.waitForFrame('MESSAGE')];
      expect(frames.map((f) => f.body.toString('utf8'))).to.deep.equal(texts);
      expect(frames.map((f) => header(f, 'subscription'))).to.deep.equal(
        i < 2 ? ['sub-0', 'sub-0'] : ['sub-1', 'sub-1'],
      );
    }
  });
});
