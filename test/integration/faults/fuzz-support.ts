/**
 * The protocol fuzzer's parts: a seeded generator of valid STOMP frames in every wire form the spec
 * allows (LF or CRLF lines, escapes, with and without content-length, heart-beats between frames),
 * frames broken on purpose in known ways, byte-level mutations of valid frames, and an event-driven
 * raw connection that reports exactly how the server answered a batch (RECEIPT, ERROR + close,
 * silence). The oracle that says what a batch should get is the codec itself run over the same
 * bytes: a framing error must be answered with ERROR; a batch whose last frame is complete must be
 * answered (RECEIPT, or ERROR when a mutation made a frame meaningless); an unfinished one may wait.
 */
import { header, type Frame } from '../../../app/stomp/frame';
import { StompParser, type ParserLimits } from '../../../app/stomp/parser';
import { openTcp, openWebSocket, type RawStompClient } from '../../support/raw-stomp';
import { tokenFor, type RunningService } from '../../support/service';

/** mulberry32: small, fast, seeded; a failing run can be replayed from its seed. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }

  /** Splits `data` at random byte boundaries (pieces of 1..maxPiece bytes). */
  split(data: Buffer, maxPiece: number): Buffer[] {
    const pieces: Buffer[] = [];
    let pos = 0;
    while (pos < data.length) {
      const n = Math.min(data.length - pos, this.chance(0.2) ? this.int(1, 3) : this.int(1, maxPiece));
      pieces.push(data.subarray(pos, pos + n));
      pos += n;
    }
    return pieces;
  }
}

const TEXT_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789 :\\\n\r-_.,;/{}"\'é漢😀';

/** STOMP 1.2 header escaping (spec §Value Encoding), written out here rather than borrowed from the codec. */
function escape12(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}

function randomText(rng: Rng, max: number): string {
  let s = '';
  const n = rng.int(0, max);
  for (let i = 0; i < n; i++) s += rng.pick([...TEXT_CHARS]);
  return s;
}

export interface WireFrame {
  command: string;
  headers: [string, string][];
  body: Buffer;
  /** Write content-length (always when the body holds a NUL). */
  contentLength: boolean;
  crlf: boolean;
}

/** Serialises with the chosen EOL and escaping; header values are escaped (never for CONNECT). */
export function wire(f: WireFrame): Buffer {
  const eol = f.crlf ? '\r\n' : '\n';
  let head = f.command + eol;
  for (const [k, v] of f.headers) head += `${escape12(k)}:${escape12(v)}${eol}`;
  if (f.contentLength) head += `content-length:${f.body.length}${eol}`;
  head += eol;
  return Buffer.concat([Buffer.from(head, 'utf8'), f.body, Buffer.from([0])]);
}

/** Heart-beat EOLs a client may put between frames. */
function heartbeats(rng: Rng): Buffer {
  return Buffer.from(rng.chance(0.8) ? '' : rng.pick(['\n', '\r\n', '\n\n', '\r\n\n']));
}

/** Per-connection state the valid-frame generator keeps so its frames stay valid in sequence. */
export class SessionModel {
  private nextSub = 0;
  private nextTx = 0;
  readonly subscriptions: string[] = [];

  constructor(
    private readonly rng: Rng,
    private readonly connId: number,
  ) {}

  /** A random valid SEND to a fuzz topic (custom headers, any body), stateless: safe to mutate. */
  send(extra: [string, string][] = []): WireFrame {
    const rng = this.rng;
    const headers: [string, string][] = [['destination', `/topic/fuzz.t${rng.int(0, 20)}`]];
    const custom = rng.int(0, 6);
    for (let i = 0; i < custom; i++)
      headers.push([`x-${randomText(rng, 10).replace(/[^a-z0-9]/g, 'h') || 'h'}`, randomText(rng, 40)]);
    if (rng.chance(0.2))
      headers.push([
        'content-type',
        rng.pick(['text/plain', 'application/json', 'application/octet-stream']),
      ]);
    headers.push(...extra);
    let body: Buffer;
    if (rng.chance(0.3)) body = rng.bytes(rng.int(0, 600));
    else body = Buffer.from(randomText(rng, 200).replace(/\0/g, ''), 'utf8');
    const contentLength = body.includes(0) || rng.chance(0.5);
    for (let i = headers.length - 1; i > 1; i--) {
      const j = rng.int(1, i);
      [headers[i], headers[j]] = [headers[j]!, headers[i]!];
    }
    return { command: 'SEND', headers, body, contentLength, crlf: rng.chance(0.3) };
  }

  /** A run of valid frames: SENDs, subscriptions and transactions kept consistent. */
  validRun(count: number): { bytes: Buffer[]; frames: number } {
    const rng = this.rng;
    const out: Buffer[] = [];
    let frames = 0;
    const push = (f: WireFrame): void => {
      out.push(heartbeats(rng), wire(f));
      frames++;
    };
    while (frames < count) {
      const roll = rng.next();
      if (roll < 0.7) {
        push(this.send(rng.chance(0.05) ? [['receipt', `v-${this.connId}-${frames}`]] : []));
      } else if (roll < 0.8 && this.subscriptions.length < 20) {
        const id = `s${this.nextSub++}`;
        this.subscriptions.push(id);
        const dest = `/topic/fuzz.sub${rng.int(0, 5)}`;
        push({
          command: 'SUBSCRIBE',
          headers: [
            ['id', id],
            ['destination', dest],
          ],
          body: Buffer.alloc(0),
          contentLength: false,
          crlf: rng.chance(0.3),
        });
      } else if (roll < 0.9 && this.subscriptions.length > 0) {
        const id = this.subscriptions.splice(rng.int(0, this.subscriptions.length - 1), 1)[0]!;
        push({
          command: 'UNSUBSCRIBE',
          headers: [['id', id]],
          body: Buffer.alloc(0),
          contentLength: false,
          crlf: rng.chance(0.3),
        });
      } else {
        const tx = `tx${this.nextTx++}`;
        push({
          command: 'BEGIN',
          headers: [['transaction', tx]],
          body: Buffer.alloc(0),
          contentLength: false,
          crlf: false,
        });
        const inside = rng.int(0, 3);
        for (let i = 0; i < inside; i++) push(this.send([['transaction', tx]]));
        push({
          command: rng.chance(0.7) ? 'COMMIT' : 'ABORT',
          headers: [['transaction', tx]],
          body: Buffer.alloc(0),
          contentLength: false,
          crlf: false,
        });
      }
    }
    return { bytes: out, frames };
  }

  /** The batch's last frame: asks for a receipt the test waits for. */
  sentinel(receipt: string): Buffer {
    return wire({
      command: 'SEND',
      headers: [
        ['destination', '/topic/fuzz.sentinel'],
        ['receipt', receipt],
      ],
      body: Buffer.from('end'),
      contentLength: false,
      crlf: false,
    });
  }
}

/** Frames wrong in a known way: the server must answer each with ERROR and close. */
export function knownBadFrame(
  rng: Rng,
  model: SessionModel,
  limits: ParserLimits,
): { name: string; bytes: Buffer } {
  const send = (extra = ''): string => `SEND\ndestination:/topic/fuzz.bad\n${extra}`;
  const cases: (() => { name: string; bytes: Buffer })[] = [
    () => ({
      name: 'garbage',
      bytes: Buffer.concat([
        Buffer.from([1]),
        rng.bytes(rng.int(limits.maxHeaderBytes + 2, limits.maxHeaderBytes * 2)),
      ]),
    }),
    () => ({
      name: 'unknown command',
      bytes: Buffer.from(`${rng.pick(['FOO', 'SENDX', 'MESSAGE', 'CONNECTED', 'RECEIPT', 'ERROR'])}\n\n\0`),
    }),
    () => ({ name: 'lowercase command', bytes: Buffer.from('send\ndestination:/topic/x\n\n\0') }),
    () => ({ name: 'header without colon', bytes: Buffer.from(`${send()}no-colon-here\n\n\0`) }),
    () => ({ name: 'empty header name', bytes: Buffer.from(`${send()}:value\n\n\0`) }),
    () => ({
      name: 'bad escape',
      bytes: Buffer.from(`${send()}x:a\\${rng.pick(['t', 'x', '0', ' '])}b\n\n\0`),
    }),
    () => ({ name: 'dangling escape', bytes: Buffer.from(`${send()}x:ab\\\n\n\0`) }),
    () => ({ name: 'content-length smaller', bytes: Buffer.from(`${send()}content-length:2\n\nhello\0`) }),
    () => ({
      name: 'content-length larger',
      bytes: Buffer.from(`${send()}content-length:40\n\nhi\0${'z'.repeat(80)}`),
    }),
    () => ({
      name: 'content-length not a number',
      bytes: Buffer.from(`${send()}content-length:${rng.pick(['-1', '1e3', 'x', ' 5', '0x10'])}\n\nhi\0`),
    }),
    () => ({
      name: 'content-length over limit',
      bytes: Buffer.from(`${send()}content-length:${limits.maxFrameBytes + 1}\n\n`),
    }),
    () => ({
      name: 'body over limit',
      bytes: Buffer.concat([
        Buffer.from(`${send()}\n`),
        Buffer.alloc(limits.maxFrameBytes + 10, 0x61),
        Buffer.from([0]),
      ]),
    }),
    () => ({
      name: 'too many headers',
      bytes: Buffer.from(`${send()}${'h:v\n'.repeat(limits.maxHeaders + 1)}\n\0`),
    }),
    () => ({
      name: 'line too long',
      bytes: Buffer.from(`${send()}h:${'v'.repeat(limits.maxHeaderBytes + 1)}\n\n\0`),
    }),
    () => ({ name: 'NUL in header', bytes: Buffer.from(`${send()}h:a\0b\n\n\0`) }),
    () => ({ name: 'CR without LF between frames', bytes: Buffer.from('\rX') }),
    () => ({ name: 'SEND without destination', bytes: Buffer.from('SEND\n\nbody\0') }),
    () => ({
      name: 'forbidden destination',
      bytes: Buffer.from(
        `SEND\ndestination:${rng.pick(['/exchange/amq.topic/x', '/amq/queue/x', '/user/bob/queue/x', '/user/queue/x', '/topic/a*', '/topic/a#', '/topic/%2e', '/temp-queue/x', '/topic/', '/elsewhere'])}\n\n\0`,
      ),
    }),
    () => ({ name: 'unknown subscription', bytes: Buffer.from('UNSUBSCRIBE\nid:never-subscribed\n\n\0') }),
    () => ({ name: 'ACK for nothing', bytes: Buffer.from('ACK\nid:nothing-pending\n\n\0') }),
    () => ({
      name: 'COMMIT unknown transaction',
      bytes: Buffer.from('COMMIT\ntransaction:no-such-tx\n\n\0'),
    }),
    () => ({ name: 'second CONNECT', bytes: Buffer.from('CONNECT\naccept-version:1.2\nhost:x\n\n\0') }),
    () => ({
      name: 'SUBSCRIBE with bad ack',
      bytes: Buffer.from(
        `SUBSCRIBE\nid:zz${model.subscriptions.length}\ndestination:/topic/x\nack:sometimes\n\n\0`,
      ),
    }),
  ];
  return rng.pick(cases)();
}

/** One byte-level mutation of `data`: flip, insert, delete, duplicate or overwrite a range. */
export function mutate(rng: Rng, data: Buffer): Buffer {
  const at = rng.int(0, Math.max(0, data.length - 1));
  switch (rng.int(0, 5)) {
    case 0: {
      const out = Buffer.from(data);
      out[at] = out[at]! ^ (1 << rng.int(0, 7));
      return out;
    }
    case 1:
      return Buffer.concat([
        data.subarray(0, at),
        Buffer.from([rng.pick([0, 10, 13, 58, 92, rng.int(0, 255)])]),
        data.subarray(at),
      ]);
    case 2:
      return Buffer.concat([data.subarray(0, at), data.subarray(at + 1)]);
    case 3: {
      const end = Math.min(data.length, at + rng.int(1, 16));
      return Buffer.concat([data.subarray(0, end), data.subarray(at, end), data.subarray(end)]);
    }
    case 4: {
      const out = Buffer.from(data);
      out[at] = rng.pick([0, 10, 13, 58, 92]);
      return out;
    }
    default: {
      const out = Buffer.from(data);
      for (let i = 0; i < rng.int(2, 8); i++) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return out;
    }
  }
}

export type Verdict = 'framing-error' | 'complete' | 'incomplete';

/** What the codec makes of a batch: a framing error, the sentinel reached, or still waiting. */
export function oracle(bytes: Buffer, limits: ParserLimits, sentinelReceipt: string): Verdict {
  let reached = false;
  const parser = new StompParser(limits, (f) => {
    if (header(f, 'receipt') === sentinelReceipt && f.command === 'SEND') reached = true;
  });
  try {
    parser.push(bytes);
  } catch {
    return 'framing-error';
  }
  return reached ? 'complete' : 'incomplete';
}

/** A raw connection for the fuzzer: TCP with every write sent as it is split, or /stomp (1.2). */
function openConnection(service: RunningService, transport: 'tcp' | 'websocket'): Promise<RawStompClient> {
  return transport === 'tcp'
    ? openTcp(service, { noDelay: true })
    : openWebSocket(service, { protocols: ['v12.stomp'] });
}

/** Writes each piece as it is, in order. */
function write(conn: RawStompClient, pieces: Buffer[]): void {
  for (const piece of pieces) conn.sendRaw(piece);
}

export interface FuzzOptions {
  seed: number;
  /** Frames to send in all (shared by the workers). */
  target: number;
  /** The limits the service under test runs with: the oracle parses with the same. */
  limits: ParserLimits;
}

export interface Tally {
  frames: number;
  batches: number;
  connections: number;
  clean: number;
  knownBad: number;
  mutatedSurvived: number;
  mutatedRefused: number;
  incomplete: number;
  failures: string[];
}

/** A tally with nothing counted yet, for the workers of one run to share. */
export function emptyTally(): Tally {
  return {
    frames: 0,
    batches: 0,
    connections: 0,
    clean: 0,
    knownBad: 0,
    mutatedSurvived: 0,
    mutatedRefused: 0,
    incomplete: 0,
    failures: [],
  };
}

function describeFrames(frames: Frame[]): string {
  return (
    frames.map((f) => `${f.command}${header(f, 'message') ? `(${header(f, 'message')})` : ''}`).join(', ') ||
    'nothing'
  );
}

/**
 * One worker: connects, sends batches until the shared tally reaches the target. Batches are valid
 * runs ended by a clean, mutated or known-bad frame and a sentinel; see the file comment.
 */
export async function fuzzWorker(
  service: RunningService,
  transport: 'tcp' | 'websocket',
  worker: number,
  tally: Tally,
  deadline: number,
  options: FuzzOptions,
): Promise<void> {
  const { seed: SEED, target: TARGET_FRAMES, limits: LIMITS } = options;
  const rng = new Rng(SEED * 16 + worker);
  const token = tokenFor(service, `fuzzer${worker}`);
  const fail = (message: string): void => {
    if (tally.failures.length < 20) tally.failures.push(`[${transport} w${worker} seed ${SEED}] ${message}`);
  };
  while (tally.frames < TARGET_FRAMES && Date.now() < deadline && tally.failures.length === 0) {
    const conn = await openConnection(service, transport);
    tally.connections++;
    write(
      conn,
      rng.split(
        Buffer.from(`CONNECT\naccept-version:1.2\nhost:fuzz\nAuthorization:Bearer ${token}\n\n\0`),
        64,
      ),
    );
    tally.frames++;
    if (
      !(await conn.until(() => conn.frames.length > 0 || conn.closed, 5000)) ||
      conn.frames[0]?.command !== 'CONNECTED'
    ) {
      fail(`CONNECT not answered with CONNECTED: ${describeFrames(conn.frames)}`);
      conn.close();
      return;
    }
    const model = new SessionModel(rng, tally.connections);
    for (let open = true; open && tally.frames < TARGET_FRAMES && tally.failures.length === 0;) {
      const batch = ++tally.batches;
      const run = model.validRun(rng.int(10, 60));
      const receipt = `end-${worker}-${batch}`;
      const roll = rng.next();
      let tail: Buffer<ArrayBufferLike> = Buffer.alloc(0);
      let kind: 'clean' | 'bad' | 'mutated' = 'clean';
      let badName = '';
      if (roll < 0.25) {
        kind = 'bad';
        const bad = knownBadFrame(rng, model, LIMITS);
        badName = bad.name;
        tail = bad.bytes;
      } else if (roll < 0.75) {
        kind = 'mutated';
        tail = mutate(rng, wire(model.send()));
      }
      const bytes = Buffer.concat([...run.bytes, tail, model.sentinel(receipt)]);
      const verdict = kind === 'clean' ? 'complete' : oracle(bytes, LIMITS, receipt);
      const mustFail = kind === 'bad' || verdict === 'framing-error';
      write(conn, rng.split(bytes, 400));
      tally.frames += run.frames + (kind === 'clean' ? 1 : 2);

      if (verdict === 'incomplete' && !mustFail) {
        // A mutation left a frame unfinished (a longer content-length, a lost NUL): the server is
        // right to wait for more bytes. Give up on this connection.
        tally.incomplete++;
        break;
      }
      const answered = await conn.until(
        () => conn.closed || conn.find('RECEIPT', receipt) !== undefined,
        5000,
      );
      if (!answered) {
        fail(
          `batch ${batch} (${kind} ${badName}, oracle ${verdict}) got no answer within 5 s: ${describeFrames(conn.frames.slice(-3))}`,
        );
        conn.close();
        return;
      }
      const errors = conn.frames.filter((f) => f.command === 'ERROR');
      if (conn.closed) {
        open = false;
        const last = conn.frames[conn.frames.length - 1];
        if (kind === 'clean') fail(`clean batch ${batch} ended the session: ${describeFrames(errors)}`);
        else if (errors.length !== 1 || last?.command !== 'ERROR')
          fail(
            `batch ${batch} (${kind} ${badName}) closed without exactly one final ERROR: ${describeFrames(conn.frames.slice(-3))}`,
          );
        else if (!header(last, 'message')) fail(`ERROR without a message header after batch ${batch}`);
        else if (conn.find('RECEIPT', receipt))
          fail(`batch ${batch}: RECEIPT for the sentinel although an earlier frame was refused`);
        if (kind === 'bad') tally.knownBad++;
        else if (kind === 'mutated') tally.mutatedRefused++;
      } else {
        if (mustFail) {
          // The RECEIPT arrived: the refusal must still come (at the latest with the close).
          await conn.until(() => conn.closed, 3000);
          fail(
            `batch ${batch} (${kind} ${badName}, oracle ${verdict}) was not refused: ${describeFrames(conn.frames.slice(-3))}`,
          );
          conn.close();
          return;
        }
        if (errors.length > 0) fail(`ERROR on an open session: ${describeFrames(errors)}`);
        if (kind === 'clean') tally.clean++;
        else tally.mutatedSurvived++;
      }
      // Frames are kept per batch only: the connection lives on for the next one.
      if (!conn.closed) conn.frames.length = 0;
    }
    conn.close();
  }
}
