import { expect } from 'chai';
import fc from 'fast-check';
import {
  allowedHeaderRecord,
  allowedHeaders,
  headerRefusal,
  isRelayedHeader,
  MAX_APPLICATION_HEADERS,
} from '../../../app/messaging/header-policy';
import { ServiceError } from '../../../app/errors';

/** What @stomp/stompjs (frame-impl.ts) does to a header name before anyone reads it. */
const stompjsName = (name: string): string => name.replace(/^\s+|\s+$/g, '');

const RESERVED_SAMPLE = [
  'destination',
  'subscription',
  'message-id',
  'redelivered',
  'ack',
  'content-length',
  'sender',
  'user-name',
  'authorization',
  'reply-to',
  'cc',
  'x-queue-type',
  'x-relay-user',
  'x-user-id',
  'x-message-ttl',
];

describe('header policy: STOMP SEND (strip)', () => {
  it('keep custom headers, first occurrence winning, and drop hop and internal ones', () => {
    expect(
      allowedHeaderRecord(
        [
          ['destination', '/topic/x'],
          ['content-type', 'text/plain'],
          ['X-Trace', '1'],
          ['X-Trace', '2'],
          ['receipt', 'r'],
          ['sender', 'mallory'],
          ['x-relay-user', 'bob'],
        ],
        'send',
      ),
    ).to.deep.equal({ 'content-type': 'text/plain', 'X-Trace': '1' });
  });

  it('pass headers named like Object.prototype members (constructor, toString, __proto__)', () => {
    const out = allowedHeaderRecord(
      [
        ['constructor', 'a'],
        ['toString', 'b'],
        ['__proto__', 'c'],
      ],
      'send',
    );
    expect(Object.entries(out)).to.deep.equal([
      ['constructor', 'a'],
      ['toString', 'b'],
      ['__proto__', 'c'],
    ]);
  });

  it('strips names a client library would read as reserved ones: padded, escaped, non-ASCII', () => {
    const forged: [string, string][] = [
      ['sender ', 'admin'],
      [' user-name', 'admin'],
      ['redelivered\t', 'true'],
      ['\u00a0sender', 'admin'],
      ['\ufeffsubscription', 'x'],
      ['sender\u200b', 'admin'],
      ['x:sender', 'admin'],
      ['sender\\c', 'admin'],
      ['CC', 'other-topic'],
    ];
    expect(allowedHeaderRecord([...forged, ['trace', 't']], 'send')).to.deep.equal({ trace: 't' });
  });

  it('keeps at most MAX_APPLICATION_HEADERS, dropping the rest', () => {
    const many = Array.from({ length: 40 }, (_, i): [string, string] => [`h${i}`, 'x']);
    expect(Object.keys(allowedHeaderRecord(many, 'send'))).to.have.length(MAX_APPLICATION_HEADERS);
  });

  it('any whitespace padding or case of a reserved name is refused (property)', () => {
    // JavaScript's \s, which stompjs trims: ASCII whitespace, NBSP, the Unicode spaces, BOM.
    const space = fc.constantFrom(
      ' ',
      '\t',
      '\u000b',
      '\u000c',
      '\u00a0',
      '\u1680',
      '\u2000',
      '\u200a',
      '\u2028',
      '\u202f',
      '\u3000',
      '\ufeff',
    );
    const padding = fc.array(space, { maxLength: 3 }).map((s) => s.join(''));
    fc.assert(
      fc.property(
        fc.constantFrom(...RESERVED_SAMPLE),
        padding,
        padding,
        fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
        (name, before, after, upper) => {
          const cased = [...name].map((c, i) => (upper[i % upper.length] ? c.toUpperCase() : c)).join('');
          const sent = `${before}${cased}${after}`;
          expect(stompjsName(sent).toLowerCase()).to.equal(name);
          expect(headerRefusal(sent, 'send'), JSON.stringify(sent)).to.be.a('string');
          expect(allowedHeaderRecord([[sent, 'v']], 'send')).to.deep.equal({});
        },
      ),
    );
  });
});

describe('header policy: REST (refuse)', () => {
  const refuse = (name: string): string => {
    try {
      allowedHeaders([[name, 'v']], 'rest');
    } catch (err: unknown) {
      if (err instanceof ServiceError && err.code === 'bad_request') return err.message;
      throw err;
    }
    return expect.fail(`'${name}' was accepted`);
  };

  it('refuses every name SEND strips, with a reason naming it', () => {
    for (const name of RESERVED_SAMPLE) {
      const reason = refuse(name);
      expect(reason).to.include(`'${name}'`).and.to.include('reserved');
    }
    for (const name of ['sender ', ' user-name', 'a:b', 'bad name', 'x\u00a0']) {
      expect(refuse(name)).to.include('not allowed');
    }
  });

  it('accepts what SEND keeps', () => {
    const headers: [string, string][] = [
      ['x-request-id', 'r'],
      ['tenant_id', 't'],
      ['content-type', 'text/plain'],
    ];
    expect(allowedHeaders(headers, 'rest')).to.deep.equal(headers);
    expect(allowedHeaderRecord(headers, 'send')).to.deep.equal(Object.fromEntries(headers));
  });
});

describe('header policy: across the broker (relay)', () => {
  it('carries the names the service writes itself, and nothing a client may not set otherwise', () => {
    expect(isRelayedHeader('sender')).to.equal(true);
    expect(isRelayedHeader('user-name')).to.equal(true);
    expect(isRelayedHeader('content-type')).to.equal(true);
    for (const name of [
      'destination',
      'message-id',
      'cc',
      'BCC',
      'authorization',
      'x-relay-user',
      'priority',
    ]) {
      expect(isRelayedHeader(name), name).to.equal(false);
    }
  });

  it('is the same table as SEND apart from the names the service writes', () => {
    for (const name of RESERVED_SAMPLE.filter((n) => n !== 'sender' && n !== 'user-name')) {
      expect(isRelayedHeader(name), name).to.equal(false);
    }
  });
});
