import { expect } from 'chai';
import fc from 'fast-check';
import { ServiceError } from '../../../app/errors';
import type { Frame, StompVersion } from '../../../app/stomp/frame';
import { StompParser, type ParserLimits } from '../../../app/stomp/parser';

const LIMITS: ParserLimits = { maxFrameBytes: 65536, maxHeaders: 100, maxHeaderBytes: 8192 };

interface Parsed {
  frames: Frame[];
  heartbeats: number;
}

/** Feeds `chunks` to a fresh parser and returns what came out; throws whatever push() throws. */
function parse(
  chunks: (Buffer | string)[],
  limits: ParserLimits = LIMITS,
  version: StompVersion = '1.2',
): Parsed {
  const out: Parsed = { frames: [], heartbeats: 0 };
  const parser = new StompParser(
    limits,
    (f) => out.frames.push(f),
    () => out.heartbeats++,
  );
  parser.version = version;
  for (const chunk of chunks) parser.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, 'binary'));
  return out;
}

function parseError(
  chunks: (Buffer | string)[],
  limits?: ParserLimits,
  version?: StompVersion,
): ServiceError {
  try {
    parse(chunks, limits, version);
  } catch (err: unknown) {
    if (err instanceof ServiceError) return err;
    throw err;
  }
  throw new Error('expected push() to throw');
}

/** Headers as `name:value` strings, which keeps expectations on one line. */
function flat(f: Frame): string[] {
  return f.headers.map(([k, v]) => `${k}:${v}`);
}

/** Frames as plain data so chai's deep equality compares bodies byte for byte. */
function plain(frames: Frame[]): { command: string; headers: [string, string][]; body: string }[] {
  return frames.map((f) => ({ command: f.command, headers: f.headers, body: f.body.toString('hex') }));
}

/** Valid streams used by the split tests. Written as binary strings so NULs and raw bytes are explicit. */
const VALID_STREAMS: string[] = [
  'SEND\ndestination:/queue/a\n\nhello\0',
  'SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello\0\r\n\n',
  'SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0',
  'SEND\ncontent-length:0\n\n\0\n\nDISCONNECT\nreceipt:77\n\n\0',
  'SUBSCRIBE\nid:0\ndestination:/topic/x\nack:client\nid:1\n\n\0',
  'SEND\nx:a\\nb\\cc\\\\d\\re\n\n\0',
  `SEND\nh\xc3\xa9llo:w\xc3\xb6rld \xe2\x82\xac \xf0\x9f\x98\x80\n\n\xe2\x82\xac\0`,
  'CONNECT\naccept-version:1.2\nlogin:a\\b\npasscode:x:y\n\n\0',
  '\n\r\n\nCOMMIT\ntransaction:t\n\n\0\n',
];

describe('StompParser', () => {
  describe('frames (spec 1.2 §STOMP Frames)', () => {
    it('parses a command, headers and a NUL-terminated body', () => {
      const { frames } = parse(['SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\0']);
      expect(frames).to.have.length(1);
      expect(frames[0].command).to.equal('SEND');
      expect(flat(frames[0])).to.deep.equal(['destination:/queue/a', 'content-type:text/plain']);
      expect(frames[0].body.toString()).to.equal('hello');
    });

    it('accepts CR LF and LF line ends, also mixed', () => {
      const { frames } = parse(['SEND\r\na:1\nb:2\r\n\r\nx\0']);
      expect(flat(frames[0])).to.deep.equal(['a:1', 'b:2']);
      expect(frames[0].body.toString()).to.equal('x');
    });

    it('parses several frames from one chunk, and a frame without headers or body', () => {
      const { frames } = parse(['DISCONNECT\n\n\0SEND\na:b\n\n\0']);
      expect(frames.map((f) => f.command)).to.deep.equal(['DISCONNECT', 'SEND']);
      expect(frames[0].headers).to.deep.equal([]);
      expect(frames[0].body.length).to.equal(0);
    });

    it('reports EOLs between frames as heart-beats, CR LF counting once', () => {
      const { frames, heartbeats } = parse(['\n\r\n', 'SEND\n\n\0\n\r\n\n']);
      expect(frames).to.have.length(1);
      expect(heartbeats).to.equal(5);
    });

    it('skips stray NULs between frames without calling them heart-beats', () => {
      const { frames, heartbeats } = parse(['SEND\n\n\0\0\0\nSEND\n\n\0']);
      expect(frames).to.have.length(2);
      expect(heartbeats).to.equal(1);
    });

    it('keeps repeated headers in order', () => {
      const { frames } = parse(['SEND\nfoo:1\nfoo:2\nbar:3\nfoo:4\n\n\0']);
      expect(flat(frames[0])).to.deep.equal(['foo:1', 'foo:2', 'bar:3', 'foo:4']);
    });

    it('splits a header on its first colon and allows an empty value', () => {
      const { frames } = parse(['CONNECT\npasscode:a:b::c\nempty:\n\n\0']);
      expect(flat(frames[0])).to.deep.equal(['passcode:a:b::c', 'empty:']);
    });

    it('decodes UTF-8 names and values, and invalid UTF-8 with replacement characters', () => {
      const { frames } = parse([Buffer.from('SEND\nnäme:€😀\n\n\0', 'utf8')]);
      expect(frames[0].headers[0]).to.deep.equal(['näme', '€😀']);
      const raw = parse([
        Buffer.concat([Buffer.from('SEND\nbad:'), Buffer.from([0xff, 0xc3]), Buffer.from('\n\n\0')]),
      ]);
      expect(raw.frames[0].headers[0]).to.deep.equal(['bad', '\ufffd\ufffd']);
    });

    it('reads exactly content-length bytes, NULs included (spec 1.2 §Header content-length)', () => {
      const body = Buffer.from([0, 1, 0, 255, 0]);
      const { frames } = parse([Buffer.from('SEND\ncontent-length:5\n\n'), body, Buffer.from([0])]);
      expect(frames[0].body.equals(body)).to.equal(true);
    });

    it('uses the first content-length when it repeats', () => {
      const { frames } = parse(['SEND\ncontent-length:2\ncontent-length:9\n\nab\0']);
      expect(frames[0].body.toString()).to.equal('ab');
    });

    it('accepts content-length 0', () => {
      const { frames } = parse(['SEND\ncontent-length:0\n\n\0']);
      expect(frames[0].body.length).to.equal(0);
    });

    it('copies bodies so a transport may reuse its read buffer', () => {
      const chunk = Buffer.from('SEND\n\nabc\0');
      const { frames } = parse([chunk]);
      chunk.fill(0x78);
      expect(frames[0].body.toString()).to.equal('abc');
    });
  });

  describe('header unescaping (spec 1.2 §Value Encoding)', () => {
    const escaped = 'SEND\nk\\cey:a\\nb\\cc\\\\d\\re\n\n\0';

    it('1.2 decodes \\n \\c \\\\ \\r in names and values', () => {
      expect(parse([escaped]).frames[0].headers).to.deep.equal([['k:ey', 'a\nb:c\\d\re']]);
    });

    it('1.1 decodes \\n \\c \\\\ and refuses \\r', () => {
      const { frames } = parse(['SEND\nk:a\\nb\\cc\\\\d\n\n\0'], LIMITS, '1.1');
      expect(frames[0].headers).to.deep.equal([['k', 'a\nb:c\\d']]);
      const err = parseError([escaped], LIMITS, '1.1');
      expect(err.code).to.equal('bad_frame');
      expect(err.message).to.equal("undefined escape sequence '\\r' in header");
    });

    it('1.0 leaves backslashes alone', () => {
      expect(flat(parse([escaped], LIMITS, '1.0').frames[0])).to.deep.equal(['k\\cey:a\\nb\\cc\\\\d\\re']);
    });

    it('never unescapes CONNECT, STOMP or CONNECTED', () => {
      for (const command of ['CONNECT', 'STOMP', 'CONNECTED']) {
        const { frames } = parse([`${command}\npasscode:a\\tb\\n\n\n\0`]);
        expect(frames[0].headers).to.deep.equal([['passcode', 'a\\tb\\n']]);
      }
    });

    it('refuses an undefined escape such as \\t with a readable message', () => {
      const err = parseError(['SEND\nx:a\\tb\n\n\0']);
      expect(err.code).to.equal('bad_frame');
      expect(err.message).to.equal("undefined escape sequence '\\t' in header");
    });

    it('refuses a trailing backslash', () => {
      expect(parseError(['SEND\nx:ab\\\n\n\0']).code).to.equal('bad_frame');
    });

    it('applies a version set inside onFrame to the next frame of the same chunk', () => {
      const versions: string[] = [];
      const parser = new StompParser(LIMITS, (f) => {
        versions.push(f.headers[0][1]);
        parser.version = '1.0';
      });
      parser.push(Buffer.from('CONNECT\nx:a\\\\b\n\n\0SEND\nx:a\\\\b\n\n\0'));
      expect(versions).to.deep.equal(['a\\\\b', 'a\\\\b']);
    });
  });

  describe('malformed input', () => {
    const cases: [string, string | Buffer, string][] = [
      ['a lowercase command', 'send\n\n\0', 'invalid command'],
      ['garbage bytes', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ''],
      ['an HTTP request', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'invalid command'],
      ['a command over 20 letters', `${'A'.repeat(21)}\n\n\0`, 'invalid command'],
      ['a header line without a colon', 'SEND\ndestination\n\n\0', "header line without ':'"],
      ['a header with an empty name', 'SEND\n:v\n\n\0', 'empty name'],
      ['a NUL in a header line', 'SEND\na:b\0c\n\n\0', 'NUL byte in header line'],
      ['a NUL in the command line', 'SEND\0\n\n\0', 'NUL byte in command line'],
      ['a frame missing the blank line', 'DISCONNECT\n\0', 'NUL byte in header line'],
      ['a non-numeric content-length', 'SEND\ncontent-length:abc\n\n\0', 'content-length'],
      ['a negative content-length', 'SEND\ncontent-length:-1\n\n\0', 'content-length'],
      ['an empty content-length', 'SEND\ncontent-length:\n\n\0', 'content-length'],
      ['a content-length shorter than the body', 'SEND\ncontent-length:2\n\nabc\0', 'does not match body'],
      ['a lone CR between frames', '\rSEND\n\n\0', 'CR not followed by LF'],
      ['a raw CR inside a header value', 'SEND\nreceipt:a\rb\n\n\0', 'carriage return inside a header line'],
      [
        'a raw CR inside a header name',
        'SEND\nre\rceipt:ab\r\n\r\n\0',
        'carriage return inside a header line',
      ],
    ];
    for (const [what, input, message] of cases) {
      it(`refuses ${what} with bad_frame`, () => {
        const err = parseError([input]);
        expect(err.code).to.equal('bad_frame');
        expect(err.message).to.include(message);
      });
    }

    it('refuses a content-length longer than the body once the byte after it is not a NUL', () => {
      // The announced 10 bytes swallow "abc\0SEND\n\n" and then find "x", not NUL.
      const err = parseError(['SEND\ncontent-length:10\n\nabc\0', 'SEND\n\nx\0']);
      expect(err.message).to.include('content-length does not match body');
    });

    it('is dead after an error: every later push() rethrows the same error', () => {
      const parser = new StompParser(LIMITS, () => undefined);
      let first: unknown;
      try {
        parser.push(Buffer.from('SEND\nnocolon\n\n\0'));
      } catch (err: unknown) {
        first = err;
      }
      expect(first).to.be.instanceOf(ServiceError);
      expect(() => parser.push(Buffer.from('SEND\n\n\0')))
        .to.throw()
        .that.equals(first);
    });

    it('stays dead when a callback throws, passing that error through', () => {
      const boom = new Error('boom');
      const parser = new StompParser(LIMITS, () => {
        throw boom;
      });
      expect(() => parser.push(Buffer.from('SEND\n\n\0SEND\n\n\0'))).to.throw(boom);
      expect(() => parser.push(Buffer.from('\n'))).to.throw(boom);
    });
  });

  describe('limits', () => {
    const small: ParserLimits = { maxFrameBytes: 100, maxHeaders: 3, maxHeaderBytes: 20 };

    it('accepts a frame of exactly maxFrameBytes and refuses one byte more', () => {
      const head = 'SEND\n\n'; // 6 bytes count towards the frame
      expect(parse([`${head}${'x'.repeat(94)}\0`], small).frames).to.have.length(1);
      const err = parseError([`${head}${'x'.repeat(95)}\0`], small);
      expect(err.code).to.equal('frame_too_large');
      expect(err.message).to.equal('frame is larger than 100 bytes');
    });

    it('refuses a content-length that cannot fit before any body byte arrives', () => {
      const err = parseError(['SEND\ncontent-length:1000\n\n'], small);
      expect(err.code).to.equal('frame_too_large');
      const huge = parseError(['SEND\ncontent-length:99999999999999999999999\n\n']);
      expect(huge.code).to.equal('frame_too_large');
    });

    it('counts the header section towards maxFrameBytes', () => {
      const many: ParserLimits = { maxFrameBytes: 100, maxHeaders: 1000, maxHeaderBytes: 1000 };
      expect(parseError([`SEND\n${'abc:defghij\n'.repeat(10)}\n\0`], many).code).to.equal('frame_too_large');
    });

    it('accepts a line of exactly maxHeaderBytes (plus CR) and refuses one byte more', () => {
      const line = `k:${'v'.repeat(18)}`;
      expect(parse([`SEND\n${line}\r\n\n\0`], small).frames).to.have.length(1);
      const err = parseError([`SEND\n${line}v\n\n\0`], small);
      expect(err.code).to.equal('frame_too_large');
      expect(err.message).to.equal('header line is longer than 20 bytes');
    });

    it('refuses more than maxHeaders headers', () => {
      expect(parse(['SEND\na:1\nb:2\nc:3\n\n\0'], small).frames).to.have.length(1);
      const err = parseError(['SEND\na:1\nb:2\nc:3\nd:4\n\n\0'], small);
      expect(err.code).to.equal('frame_too_large');
      expect(err.message).to.equal('frame has more than 3 headers');
    });

    it('refuses 100,000 headers', () => {
      const limits: ParserLimits = {
        maxFrameBytes: 10 * 1024 * 1024,
        maxHeaders: 1000,
        maxHeaderBytes: 8192,
      };
      const err = parseError([`SEND\n${'h:v\n'.repeat(100_000)}\n\0`], limits);
      expect(err.code).to.equal('frame_too_large');
    });

    it('refuses a 10 MB line without a newline long before it has all arrived', () => {
      const limits: ParserLimits = { maxFrameBytes: 1024 * 1024, maxHeaders: 100, maxHeaderBytes: 8192 };
      const parser = new StompParser(limits, () => undefined);
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      let pushed = 0;
      let error: unknown;
      for (let sent = 0; sent < 10 * 1024 * 1024 && error === undefined; sent += chunk.length) {
        try {
          pushed++;
          parser.push(chunk);
        } catch (err: unknown) {
          error = err;
        }
      }
      expect(error).to.be.instanceOf(ServiceError);
      expect((error as ServiceError).code).to.equal('frame_too_large');
      expect(pushed).to.equal(1);
    });

    it('refuses a long line fed byte by byte as soon as it passes the limit', () => {
      const parser = new StompParser(small, () => undefined);
      let fed = 0;
      expect(() => {
        for (;;) {
          parser.push(Buffer.from('S'));
          fed++;
        }
      }).to.throw(ServiceError);
      expect(fed).to.equal(small.maxHeaderBytes + 1);
    });
  });

  describe('split input', () => {
    const oneShot = VALID_STREAMS.map((s) => parse([s]));

    it('every test stream parses in one chunk', () => {
      for (const result of oneShot) expect(result.frames.length).to.be.greaterThan(0);
    });

    it('gives identical frames and heart-beats when fed byte by byte', () => {
      VALID_STREAMS.forEach((stream, i) => {
        const bytes = Buffer.from(stream, 'binary');
        const result = parse([...bytes].map((b) => Buffer.from([b])));
        expect(plain(result.frames)).to.deep.equal(plain(oneShot[i].frames));
        expect(result.heartbeats).to.equal(oneShot[i].heartbeats);
      });
    });

    it('gives identical frames when split at every point', () => {
      VALID_STREAMS.forEach((stream, i) => {
        const bytes = Buffer.from(stream, 'binary');
        for (let at = 0; at <= bytes.length; at++) {
          const result = parse([bytes.subarray(0, at), bytes.subarray(at)]);
          expect(plain(result.frames), `${JSON.stringify(stream)} split at ${at}`).to.deep.equal(
            plain(oneShot[i].frames),
          );
          expect(result.heartbeats).to.equal(oneShot[i].heartbeats);
        }
      });
    });
  });

  describe('properties', () => {
    /** Cuts `bytes` at the given points (clamped and sorted) into consecutive chunks. */
    function cut(bytes: Buffer, points: number[]): Buffer[] {
      const sorted = points.map((p) => p % (bytes.length + 1)).sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let last = 0;
      for (const p of sorted) {
        chunks.push(bytes.subarray(last, p));
        last = p;
      }
      chunks.push(bytes.subarray(last));
      return chunks;
    }

    /** Runs the input through a parser; anything thrown must be a ServiceError. */
    function survives(chunks: Buffer[], version: StompVersion): void {
      const parser = new StompParser(
        { maxFrameBytes: 512, maxHeaders: 8, maxHeaderBytes: 64 },
        () => undefined,
      );
      parser.version = version;
      try {
        for (const chunk of chunks) parser.push(chunk);
      } catch (err: unknown) {
        if (!(err instanceof ServiceError)) throw err;
        expect(['bad_frame', 'frame_too_large']).to.include(err.code);
      }
    }

    const version = fc.constantFrom<StompVersion>('1.0', '1.1', '1.2');
    const points = fc.array(fc.nat(), { maxLength: 6 });

    it('random bytes only ever throw ServiceError', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), points, version, (bytes, at, v) =>
          survives(cut(Buffer.from(bytes), at), v),
        ),
        { numRuns: 2000 },
      );
    });

    it('mutated valid frames only ever throw ServiceError', () => {
      const mutation = fc.record({
        at: fc.nat(),
        kind: fc.constantFrom('replace', 'insert', 'delete'),
        byte: fc.constantFrom(0x00, 0x0a, 0x0d, 0x3a, 0x5c, 0x74, 0x41, 0xff, 0xc3),
      });
      fc.assert(
        fc.property(
          fc.constantFrom(...VALID_STREAMS),
          fc.array(mutation, { minLength: 1, maxLength: 4 }),
          points,
          version,
          (stream, mutations, at, v) => {
            const bytes = [...Buffer.from(stream, 'binary')];
            for (const m of mutations) {
              const i = m.at % (bytes.length + 1);
              if (m.kind === 'replace') bytes[Math.min(i, bytes.length - 1)] = m.byte;
              else if (m.kind === 'insert') bytes.splice(i, 0, m.byte);
              else bytes.splice(i, 1);
            }
            survives(cut(Buffer.from(bytes), at), v);
          },
        ),
        { numRuns: 3000 },
      );
    });
  });

  describe('where it is in the stream (for the frame deadline of the session)', () => {
    it('reports mid-frame from the first byte of a frame to its NUL, not for heart-beats', () => {
      const parser = new StompParser(LIMITS, () => undefined);
      const seen: [boolean, number][] = [];
      for (const chunk of ['\n\r\n', 'S', 'END\ncontent-length:3\n\nab', 'c', '\0', '\nSEND\n\nx\0SE']) {
        parser.push(Buffer.from(chunk));
        seen.push([parser.midFrame, parser.framesCompleted]);
      }
      expect(seen).to.deep.equal([
        [false, 0],
        [true, 0],
        [true, 0],
        [true, 0],
        [false, 1],
        [true, 2],
      ]);
    });
  });
});
