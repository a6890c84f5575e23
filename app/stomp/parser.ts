/**
 * Streaming STOMP 1.0/1.1/1.2 frame parser: bytes in, frames out.
 *
 * Design (modelled on stomp-js/stompjs src/parser.ts, hardened for untrusted input):
 * - A byte state machine fed arbitrary chunks. A chunk may end anywhere (inside a multi-byte UTF-8
 *   character, between CR and LF, just before the NUL), so every piece of state that spans chunks
 *   lives on the instance and nothing is decoded until a whole line or body has arrived.
 * - It scans with `indexOf` for the next LF / NUL instead of a callback per byte, so a 64 KiB body
 *   costs one native scan, not 65,536 calls.
 * - Partial lines and bodies are kept as a list of copied chunk tails and concatenated once when
 *   complete (never `Buffer.concat` per chunk, which would be quadratic). Copying matters: a
 *   transport may reuse its read buffer, and a slice would pin a whole large chunk in memory.
 * - Limits are checked before bytes are stored, so a hostile peer can make us hold at most
 *   ~maxFrameBytes plus the chunk being scanned: a line is refused as soon as it outgrows
 *   maxHeaderBytes, a body as soon as the frame outgrows maxFrameBytes, and a content-length that
 *   could not fit is refused before any body byte arrives.
 * - Header unescaping depends on the negotiated version, which the session sets on `version` after
 *   CONNECT. It is read when each frame's headers are parsed, so a change made inside `onFrame`
 *   applies to the very next frame even when it came in the same chunk.
 * - The first error is final: the stream position is lost, so every later `push()` rethrows it.
 *
 * Spec: https://stomp.github.io/stomp-specification-1.2.html#Augmented_BNF
 */
import { ServiceError } from '../errors';
import { UNESCAPED_COMMANDS, type Frame, type HeaderList, type StompVersion } from './frame';

export interface ParserLimits {
  /** Header section (command line, header lines and their EOLs) plus body, excluding the NUL. */
  maxFrameBytes: number;
  /** Header lines per frame. */
  maxHeaders: number;
  /** Bytes in any single command or header line, excluding its EOL. */
  maxHeaderBytes: number;
}

const NUL = 0x00;
const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;

const COMMAND_PATTERN = /^[A-Z]{1,20}$/;
const CONTENT_LENGTH_PATTERN = /^[0-9]+$/;

type State = 'between-frames' | 'command' | 'headers' | 'body-to-nul' | 'body-fixed' | 'expect-nul';

/**
 * Which escapes a version defines (https://stomp.github.io/stomp-specification-1.2.html#Value_Encoding,
 * https://stomp.github.io/stomp-specification-1.1.html#Value_Encoding). STOMP 1.0 has none, so a
 * backslash there is an ordinary character.
 */
const ESCAPES: Record<StompVersion, ReadonlyMap<string, string> | undefined> = {
  '1.0': undefined,
  '1.1': new Map([
    ['n', '\n'],
    ['c', ':'],
    ['\\', '\\'],
  ]),
  '1.2': new Map([
    ['n', '\n'],
    ['c', ':'],
    ['\\', '\\'],
    ['r', '\r'],
  ]),
};

function unescapeHeader(raw: string, version: StompVersion, command: string): string {
  const escapes = ESCAPES[version];
  if (escapes === undefined || UNESCAPED_COMMANDS.has(command) || !raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = raw[i + 1];
    if (next === undefined) throw badFrame('header ends with an incomplete escape sequence');
    const replacement = escapes.get(next);
    // Spec: "Undefined escape sequences such as \t MUST be treated as a fatal protocol error."
    if (replacement === undefined) {
      throw badFrame(`undefined escape sequence '\\${escapeCharShown(next)}' in header`);
    }
    out += replacement;
    i++;
  }
  return out;
}

export class StompParser {
  /** Decides header unescaping; the session sets it once CONNECT has been negotiated. */
  version: StompVersion = '1.2';

  private state: State = 'between-frames';
  /** Copied tails of earlier chunks that belong to the current line or body. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes of the current frame so far (header section and body), checked against maxFrameBytes. */
  private frameBytes = 0;
  /** A CR seen between frames whose LF has not arrived yet. */
  private pendingCR = false;
  private bodyRemaining = 0;
  private command = '';
  private headers: HeaderList = [];
  private failed: { error: unknown } | undefined;
  private completed = 0;

  constructor(
    private readonly limits: ParserLimits,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onHeartbeat?: () => void,
  ) {}

  /**
   * True while a frame has begun and not yet ended. The parser keeps no clocks: the session times
   * how long a frame stays incomplete (a client trickling one byte at a time must not hold it open).
   */
  get midFrame(): boolean {
    return this.state !== 'between-frames';
  }

  /** Frames completed so far: tells a frame in progress apart from the next one. */
  get framesCompleted(): number {
    return this.completed;
  }

  /**
   * Feeds the next bytes of the stream. Calls onFrame for every frame completed by them. Throws a
   * ServiceError (`bad_frame` or `frame_too_large`) on malformed input; if a callback throws, that
   * error passes through. Either way the parser is dead afterwards and rethrows the same error.
   */
  push(chunk: Buffer): void {
    if (this.failed) throw this.failed.error;
    try {
      let pos = 0;
      while (pos < chunk.length) pos = this.step(chunk, pos);
    } catch (error: unknown) {
      this.failed = { error };
      this.parts = [];
      throw error;
    }
  }

  /** Consumes bytes from `pos` in the current state and returns where the next state starts. */
  private step(chunk: Buffer, pos: number): number {
    switch (this.state) {
      case 'between-frames':
        return this.skipHeartbeats(chunk, pos);
      case 'command':
      case 'headers':
        return this.readLine(chunk, pos);
      case 'body-to-nul':
        return this.readBodyToNul(chunk, pos);
      case 'body-fixed':
        return this.readFixedBody(chunk, pos);
      case 'expect-nul':
        // Spec 1.2 §Header content-length: the body is exactly that many octets, then the NUL.
        if (chunk[pos] !== NUL) {
          throw badFrame('content-length does not match body: no NUL after the announced length');
        }
        this.emit(this.takeParts());
        return pos + 1;
    }
  }

  /**
   * EOLs between frames are heart-beats (spec 1.2 §Heart-beating); CR LF counts once. A stray NUL
   * (a client terminating a frame twice) is skipped, as stompjs does: it carries nothing and costs
   * no memory, so refusing it would only break sloppy clients.
   */
  private skipHeartbeats(chunk: Buffer, pos: number): number {
    while (pos < chunk.length) {
      const byte = chunk[pos];
      if (this.pendingCR) {
        if (byte !== LF) throw badFrame('CR not followed by LF between frames');
        this.pendingCR = false;
        this.onHeartbeat?.();
      } else if (byte === LF) {
        this.onHeartbeat?.();
      } else if (byte === CR) {
        this.pendingCR = true;
      } else if (byte !== NUL) {
        this.state = 'command';
        return pos;
      }
      pos++;
    }
    return pos;
  }

  private readLine(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    const end = lf === -1 ? chunk.length : lf;
    const segment = chunk.subarray(pos, end);
    const where = this.state === 'command' ? 'command line' : 'header line';
    if (segment.includes(NUL)) throw badFrame(`NUL byte in ${where}`);
    // +1: the line may still end in the CR of a CR LF, which is not part of it.
    if (this.partBytes + segment.length > this.limits.maxHeaderBytes + 1) throw lineTooLong(this.limits);
    this.countFrameBytes(segment.length + (lf === -1 ? 0 : 1));
    if (lf === -1) {
      this.keep(segment);
      return chunk.length;
    }
    let line = this.parts.length === 0 ? segment : Buffer.concat([...this.parts, segment]);
    this.parts = [];
    this.partBytes = 0;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > this.limits.maxHeaderBytes) throw lineTooLong(this.limits);
    if (this.state === 'command') this.onCommandLine(line);
    else if (line.length === 0) this.startBody();
    else this.onHeaderLine(line);
    return lf + 1;
  }

  private onCommandLine(line: Buffer): void {
    // Commands are ASCII; latin1 maps bytes 1:1 so a stray byte cannot hide behind a replacement.
    const command = line.toString('latin1');
    // The parser accepts any well-formed token; the session decides which commands it serves.
    if (!COMMAND_PATTERN.test(command)) {
      throw badFrame(
        `invalid command ${JSON.stringify(command.slice(0, 24))}: expected 1-20 uppercase letters`,
      );
    }
    this.command = command;
    this.state = 'headers';
  }

  private onHeaderLine(line: Buffer): void {
    if (this.headers.length >= this.limits.maxHeaders) {
      throw new ServiceError('frame_too_large', `frame has more than ${this.limits.maxHeaders} headers`);
    }
    // Spec 1.2 §Augmented BNF: no raw CR in a header. Accepted, it could not be echoed back to a 1.0
    // or 1.1 client (receipt-id, subscription): the RECEIPT or MESSAGE would be lost, not refused.
    if (line.includes(CR))
      throw badFrame('carriage return inside a header line (STOMP 1.2 escapes it as \\r)');
    // Escaping turns every ':' inside a name or value into '\c', so the first raw colon is the separator.
    const colon = line.indexOf(COLON);
    if (colon === -1) throw badFrame("header line without ':'");
    if (colon === 0) throw badFrame('header line with an empty name');
    const name = unescapeHeader(line.toString('utf8', 0, colon), this.version, this.command);
    const value = unescapeHeader(line.toString('utf8', colon + 1), this.version, this.command);
    this.headers.push([name, value]);
  }

  /** Spec 1.2 §Header content-length: with it, read exactly that many octets; without, up to the NUL. */
  private startBody(): void {
    const lengthHeader = this.headers.find(([name]) => name === 'content-length');
    if (lengthHeader === undefined) {
      this.state = 'body-to-nul';
      return;
    }
    const text = lengthHeader[1];
    if (!CONTENT_LENGTH_PATTERN.test(text)) {
      throw badFrame(`content-length ${JSON.stringify(text.slice(0, 24))} is not a non-negative integer`);
    }
    const length = Number(text);
    // Refuse before reading: a peer must not make us wait for (or hold) a body we will reject.
    if (this.frameBytes + length > this.limits.maxFrameBytes) throw frameTooLarge(this.limits);
    this.bodyRemaining = length;
    this.state = length === 0 ? 'expect-nul' : 'body-fixed';
  }

  private readFixedBody(chunk: Buffer, pos: number): number {
    const take = Math.min(this.bodyRemaining, chunk.length - pos);
    this.bodyRemaining -= take;
    this.frameBytes += take;
    this.keep(chunk.subarray(pos, pos + take));
    if (this.bodyRemaining === 0) this.state = 'expect-nul';
    return pos + take;
  }

  private readBodyToNul(chunk: Buffer, pos: number): number {
    const nul = chunk.indexOf(NUL, pos);
    const end = nul === -1 ? chunk.length : nul;
    this.countFrameBytes(end - pos);
    if (nul === -1) {
      this.keep(chunk.subarray(pos));
      return chunk.length;
    }
    // Copy even a body that came in one chunk: it outlives this call, the chunk may not.
    this.keep(chunk.subarray(pos, nul));
    this.emit(this.takeParts());
    return nul + 1;
  }

  private emit(body: Buffer): void {
    const frame: Frame = { command: this.command, headers: this.headers, body };
    this.state = 'between-frames';
    this.parts = [];
    this.partBytes = 0;
    this.frameBytes = 0;
    this.command = '';
    this.headers = [];
    this.completed++;
    this.onFrame(frame);
  }

  /** The collected parts as one buffer; parts are already copies, so one part is used as is. */
  private takeParts(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partBytes);
  }

  private keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.parts.push(Buffer.from(bytes));
    this.partBytes += bytes.length;
  }

  private countFrameBytes(n: number): void {
    this.frameBytes += n;
    if (this.frameBytes > this.limits.maxFrameBytes) throw frameTooLarge(this.limits);
  }
}

function badFrame(message: string): ServiceError {
  return new ServiceError('bad_frame', message);
}

function frameTooLarge(limits: ParserLimits): ServiceError {
  return new ServiceError('frame_too_large', `frame is larger than ${limits.maxFrameBytes} bytes`);
}

function lineTooLong(limits: ParserLimits): ServiceError {
  return new ServiceError('frame_too_large', `header line is longer than ${limits.maxHeaderBytes} bytes`);
}

/** Shows a control character in an error message as a code rather than as raw bytes. */
function escapeCharShown(ch: string): string {
  return /^[\x21-\x7e]$/.test(ch) ? ch : `x${ch.codePointAt(0)?.toString(16).padStart(2, '0') ?? ''}`;
}
