import { expect } from 'chai';
import fc from 'fast-check';
import { ServiceError } from '../../../app/errors';
import { frame, type Frame, type HeaderList, type StompVersion } from '../../../app/stomp/frame';
import { StompParser } from '../../../app/stomp/parser';
import { HEARTBEAT_FRAME, serializeFrame } from '../../../app/stomp/serializer';

function text(buf: Buffer): string {
  return buf.toString('utf8');
}

function serializeError(f: Frame, version: StompVersion): ServiceError {
  try {
    serializeFrame(f, version);
  } catch (err: unknown) {
    if (err instanceof ServiceError) return err;
    throw err;
  }
  throw new Error('expected serializeFrame() to throw');
}

describe('serializeFrame', () => {
  it('writes command, headers, blank line, body and NUL', () => {
    const out = serializeFrame(frame('MESSAGE', { destination: '/topic/a', 'message-id': '1' }), '1.2');
    expect(text(out)).to.equal('MESSAGE\ndestination:/topic/a\nmessage-id:1\n\n\0');
  });

  it('writes repeated headers in order', () => {
    const f: Frame = {
      command: 'MESSAGE',
      headers: [
        ['a', '1'],
        ['a', '2'],
      ],
      body: Buffer.alloc(0),
    };
    expect(text(serializeFrame(f, '1.2'))).to.equal('MESSAGE\na:1\na:2\n\n\0');
  });

  describe('escaping (spec 1.2 §Value Encoding)', () => {
    const tricky = frame('MESSAGE', { 'k:ey': 'a\nb:c\\d' });

    it('1.2 escapes \\\\ \\n : and \\r in names and values', () => {
      const f = frame('MESSAGE', { 'k:ey': 'a\nb:c\\d\re' });
      expect(text(serializeFrame(f, '1.2'))).to.equal('MESSAGE\nk\\cey:a\\nb\\cc\\\\d\\re\n\n\0');
    });

    it('1.1 escapes \\\\ \\n : and refuses a CR it cannot escape', () => {
      expect(text(serializeFrame(tricky, '1.1'))).to.equal('MESSAGE\nk\\cey:a\\nb\\cc\\\\d\n\n\0');
      expect(serializeError(frame('MESSAGE', { x: 'a\r' }), '1.1').message).to.include('carriage return');
    });

    it('1.0 writes backslashes and colons in values as they are', () => {
      expect(text(serializeFrame(frame('MESSAGE', { x: 'a:b\\n' }), '1.0'))).to.equal(
        'MESSAGE\nx:a:b\\n\n\n\0',
      );
    });

    it('never escapes CONNECTED (or CONNECT and STOMP)', () => {
      for (const command of ['CONNECTED', 'CONNECT', 'STOMP']) {
        const out = serializeFrame(frame(command, { server: 'relay\\1:2' }), '1.2');
        expect(text(out)).to.equal(`${command}\nserver:relay\\1:2\n\n\0`);
      }
    });
  });

  describe('content-length (spec 1.2 §Header content-length)', () => {
    it('adds the body length in bytes, not characters', () => {
      const out = serializeFrame(frame('MESSAGE', { a: 'b' }, '€'), '1.2');
      expect(text(out)).to.equal('MESSAGE\na:b\ncontent-length:3\n\n€\0');
    });

    it('adds nothing for an empty body', () => {
      expect(text(serializeFrame(frame('RECEIPT', { 'receipt-id': '1' }), '1.2'))).to.equal(
        'RECEIPT\nreceipt-id:1\n\n\0',
      );
    });

    it('corrects a wrong content-length in place and drops repeats', () => {
      const f: Frame = {
        command: 'MESSAGE',
        headers: [
          ['a', '1'],
          ['content-length', '99'],
          ['b', '2'],
          ['content-length', '1'],
        ],
        body: Buffer.from([0, 0]),
      };
      const out = serializeFrame(f, '1.2');
      expect(out.equals(Buffer.from('MESSAGE\na:1\ncontent-length:2\nb:2\n\n\0\0\0', 'binary'))).to.equal(
        true,
      );
    });

    it('carries a body with NULs intact', () => {
      const body = Buffer.from([0, 1, 0, 2]);
      const out = serializeFrame(frame('MESSAGE', {}, body), '1.0');
      expect(out.subarray(out.length - 5).equals(Buffer.from([0, 1, 0, 2, 0]))).to.equal(true);
    });
  });

  describe('refuses frames a peer could not read back', () => {
    const cases: [string, Frame, StompVersion][] = [
      ['a NUL in a value', frame('MESSAGE', { x: 'a\0b' }), '1.2'],
      ['a NUL in a name', frame('MESSAGE', { 'a\0': 'b' }), '1.2'],
      ['a LF in a 1.0 value', frame('MESSAGE', { x: 'a\nevil:1' }), '1.0'],
      ['a LF in a CONNECTED value', frame('CONNECTED', { server: 'a\n' }), '1.2'],
      ['a colon in a 1.0 name', frame('MESSAGE', { 'a:b': 'c' }), '1.0'],
      ['an empty name', frame('MESSAGE', { '': 'c' }), '1.2'],
      ['an invalid command', frame('MESSAGE\nx:y', {}), '1.2'],
    ];
    for (const [what, f, version] of cases) {
      it(`refuses ${what}`, () => {
        expect(serializeError(f, version).code).to.equal('bad_frame');
      });
    }
  });

  it('HEARTBEAT_FRAME is a single LF', () => {
    expect(HEARTBEAT_FRAME.equals(Buffer.from('\n'))).to.equal(true);
  });
});

describe('serialize → parse round trip (property)', () => {
  const special = fc.constantFrom('\n', '\r', ':', '\\', '\\n', '\\c', 'a', 'Z', ' ', '€', '😀', '\ufffd');
  const char = fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }));
  const anyText = fc.string({ unit: char, maxLength: 12 });

  /** What a version can carry: no NUL ever; unescaped frames no line breaks (nor ':' in names); 1.1 no CR. */
  function representable(s: string, escaped: StompVersion | undefined, isName: boolean): string {
    let out = s.replace(/\0/g, '');
    if (escaped === undefined) out = out.replace(/[\r\n]/g, '');
    if (escaped === undefined && isName) out = out.replace(/:/g, '');
    if (escaped === '1.1') out = out.replace(/\r/g, '');
    return out;
  }

  const version = fc.constantFrom<StompVersion>('1.0', '1.1', '1.2');
  const command = fc.oneof(
    fc.constantFrom('MESSAGE', 'SEND', 'CONNECT', 'CONNECTED', 'STOMP', 'ERROR'),
    fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'), minLength: 1, maxLength: 20 }),
  );
  const body = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.array(fc.constantFrom(0, 10, 13, 0x5c), { maxLength: 16 }).map((a) => Uint8Array.from(a)),
  );

  it('parses back exactly what was serialized, at any chunk split', () => {
    fc.assert(
      fc.property(
        version,
        command,
        fc.array(fc.tuple(anyText, anyText), { maxLength: 6 }),
        body,
        fc.array(fc.nat(), { maxLength: 5 }),
        (v, cmd, rawHeaders, rawBody, points) => {
          const escaped = v === '1.0' || ['CONNECT', 'CONNECTED', 'STOMP'].includes(cmd) ? undefined : v;
          const headers: HeaderList = rawHeaders
            .map(([n, val]): [string, string] => [
              representable(n, escaped, true),
              representable(val, escaped, false),
            ])
            .filter(([n]) => n.length > 0 && n !== 'content-length');
          const original: Frame = { command: cmd, headers, body: Buffer.from(rawBody) };
          const wire = serializeFrame(original, v);

          const frames: Frame[] = [];
          const parser = new StompParser(
            { maxFrameBytes: 65536, maxHeaders: 16, maxHeaderBytes: 1024 },
            (f) => frames.push(f),
          );
          parser.version = v;
          const cuts = points.map((p) => p % (wire.length + 1)).sort((a, b) => a - b);
          let last = 0;
          for (const p of [...cuts, wire.length]) {
            parser.push(wire.subarray(last, p));
            last = p;
          }

          const expected: HeaderList =
            original.body.length > 0
              ? [...headers, ['content-length', String(original.body.length)]]
              : headers;
          expect(frames).to.have.length(1);
          expect(frames[0].command).to.equal(cmd);
          expect(frames[0].headers).to.deep.equal(expected);
          expect(frames[0].body.equals(original.body)).to.equal(true);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
