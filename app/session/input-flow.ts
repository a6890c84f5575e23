/**
 * Flow control of what a client sends. Frames are handled one after another (stomp-session.ts), and
 * a client may send them faster than the broker takes them: a bulk publisher that does not wait for
 * each RECEIPT, say. Rather than refuse it, the session stops reading from it and reads again once
 * its frames have drained, as a TCP peer would. The marks:
 * - high: MAX_FRAMES_IN_FLIGHT frames or MAX_BYTES_IN_FLIGHT bytes (headers and bodies) waiting in
 *   the session's handling chain: the transport is paused (ClientSocket.pause: a socket stops
 *   being read; a SockJS send is answered only once reading resumes);
 * - low: half of each: once both are at or below it, reading resumes.
 *
 * The parser is only handed what may be handled: one chunk (a TCP read of up to 64 KiB, a
 * WebSocket or SockJS message) can hold thousands of small frames, so a chunk that could reach a
 * mark is fed in pieces, each ending at a NUL (the end of a frame, unless a body holds one), and
 * what is left once a mark is reached stays unparsed, as bytes, until the frames have drained.
 * Reading may stop inside a frame; the rest of it waits in the network like anything else.
 *
 * Bytes a transport still hands over after pause() join them: the rest of a socket read `ws` had
 * taken in, a SockJS send from a client that did not wait for the answer to its previous one.
 * That is the only input flow control cannot bound, so it alone has a hard limit (`maxUnreadBytes`):
 * past it the session ends with an ERROR.
 *
 * Time spent paused is counted (pausedMs): the session's clocks for the client (heart-beats, a
 * frame's FRAME_TIMEOUT_MS) leave it out, so a client held back by us is not taken for one that
 * went silent or trickles a frame.
 */
import { ServiceError, toServiceError } from '../errors';
import type { Frame } from '../stomp/frame';
import { largestMessageBytes, type ClientSocket } from '../transport/transport';
import type { SessionContext } from './session-context';

export interface FlowMarks {
  /** Frames waiting at which reading stops; it resumes at half as many. */
  highFrames: number;
  /** Bytes of waiting frames at which reading stops; it resumes at half as many. */
  highBytes: number;
  /** Unparsed bytes the session may hold for a paused client before it ends the session. */
  maxUnreadBytes: number;
}

export interface FlowHooks {
  /** Hands bytes to the parser; each frame it completes comes back through `queued`. Throws on bad input. */
  parse(bytes: Buffer): void;
  /** A parse error, or one thrown by what handles its frames: the session fails with it. */
  failed(err: unknown): void;
  /** The unread bytes passed maxUnreadBytes: the session fails with the hard limit. */
  overflowed(unreadBytes: number): void;
  paused(): void;
  resumed(): void;
}

/** The smallest frame, `X\n\n\0`: a chunk of n bytes completes at most n / 4 frames. */
const SMALLEST_FRAME_BYTES = 4;
/**
 * A piece ends at the first NUL at least this many bytes in, so a binary body full of NULs is
 * parsed in a few large pieces rather than byte by byte; a piece this long holds at most a few
 * dozen frames, which is how far past a mark the frames waiting can go.
 */
const MIN_PIECE_BYTES = 256;

/** What a waiting frame holds in memory, near enough: its command, headers and body. */
export function frameBytes(frame: Frame): number {
  let bytes = frame.command.length + frame.body.length;
  for (const [name, value] of frame.headers) bytes += name.length + value.length + 2;
  return bytes;
}

export class InputFlow {
  private frames = 0;
  private bytes = 0;
  /** Bytes received and not parsed yet, in arrival order; only while paused. */
  private unread: Buffer[] = [];
  private unreadBytes = 0;
  /** When reading stopped; 0 while reading. */
  private pausedSince = 0;
  private pausedBefore = 0;
  private feeding = false;
  private stopped = false;

  constructor(
    private readonly socket: ClientSocket,
    private readonly marks: FlowMarks,
    private readonly hooks: FlowHooks,
  ) {}

  get paused(): boolean {
    return this.pausedSince !== 0;
  }

  /** Milliseconds reading has been paused in all, up to `now`. */
  pausedMs(now = Date.now()): number {
    return this.pausedBefore + (this.paused ? now - this.pausedSince : 0);
  }

  /** The client's clock: Date.now() less the time paused, so it stands still while paused. */
  clientNow(): number {
    const now = Date.now();
    return now - this.pausedMs(now);
  }

  /** Bytes from the transport. */
  receive(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.unread.push(chunk);
    this.unreadBytes += chunk.length;
    if (this.feeding) return;
    if (this.paused) {
      if (this.unreadBytes > this.marks.maxUnreadBytes) this.hooks.overflowed(this.unreadBytes);
      return;
    }
    this.pump();
  }

  /** A frame the parser completed went into the handling chain. */
  queued(bytes: number): void {
    this.frames++;
    this.bytes += bytes;
  }

  /** A frame left the handling chain. */
  handled(bytes: number): void {
    this.frames--;
    this.bytes -= bytes;
    if (this.paused && !this.feeding && !this.stopped && this.atLowWater()) this.pump();
  }

  /** The session is over: nothing more is parsed, and the pause (if any) is no longer counted. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unread = [];
    this.unreadBytes = 0;
    if (this.paused) {
      this.pausedBefore = this.pausedMs();
      this.pausedSince = 0;
      this.hooks.resumed();
    }
  }

  /** Parses what is unread up to a mark, then pauses at it, or resumes once all is read. */
  private pump(): void {
    this.feeding = true;
    for (let chunk = this.unread.shift(); chunk; chunk = this.unread.shift()) {
      this.unreadBytes -= chunk.length;
      this.feed(chunk);
      if (this.atHighWater() || this.stopped) break;
    }
    this.feeding = false;
    if (this.stopped) return;
    if (this.atHighWater()) this.pause();
    else this.resume();
  }

  /** Parses `chunk` up to a mark; the rest goes back in front of what was received after it. */
  private feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.stopped) {
      if (this.atHighWater()) {
        // A copy: the rest of a large chunk may be short, and the chunk need not stay in memory.
        this.unread.unshift(Buffer.from(chunk.subarray(pos)));
        this.unreadBytes += chunk.length - pos;
        return;
      }
      const end = this.pieceEnd(chunk, pos);
      try {
        this.hooks.parse(pos === 0 && end === chunk.length ? chunk : chunk.subarray(pos, end));
      } catch (err: unknown) {
        // The parser is dead after an error: nothing more can be read from this client.
        this.stop();
        this.hooks.failed(err);
        return;
      }
      pos = end;
    }
  }

  /** Where the next piece ends: the whole rest when it cannot reach a mark, else after a NUL. */
  private pieceEnd(chunk: Buffer, pos: number): number {
    const rest = chunk.length - pos;
    const fits =
      this.frames + rest / SMALLEST_FRAME_BYTES < this.marks.highFrames &&
      this.bytes + rest < this.marks.highBytes;
    if (fits) return chunk.length;
    const nul = chunk.indexOf(0, pos + MIN_PIECE_BYTES - 1);
    return nul === -1 ? chunk.length : nul + 1;
  }

  private atHighWater(): boolean {
    return this.frames >= this.marks.highFrames || this.bytes >= this.marks.highBytes;
  }

  private atLowWater(): boolean {
    return this.frames <= this.marks.highFrames / 2 && this.bytes <= this.marks.highBytes / 2;
  }

  private pause(): void {
    if (this.paused) return;
    this.pausedSince = Date.now();
    this.socket.pause();
    this.hooks.paused();
  }

  private resume(): void {
    if (!this.paused) return;
    this.pausedBefore = this.pausedMs();
    this.pausedSince = 0;
    this.socket.resume();
    this.hooks.resumed();
  }
}

/** Every session of one settings object flows by the same marks: one object, not one each. */
const marksBySettings = new WeakMap<SessionContext['settings'], FlowMarks>();

function marksFor(settings: SessionContext['settings']): FlowMarks {
  let marks = marksBySettings.get(settings);
  if (!marks) {
    marks = {
      highFrames: settings.maxFramesInFlight,
      highBytes: settings.maxBytesInFlight,
      maxUnreadBytes: 2 * largestMessageBytes(settings),
    };
    marksBySettings.set(settings, marks);
  }
  return marks;
}

/**
 * A session's hooks as one small object: four closures, their context and a hooks object each
 * were ~340 bytes of every idle session.
 */
class SessionFlowHooks implements FlowHooks {
  constructor(
    readonly parse: (bytes: Buffer) => void,
    private readonly fail: (error: ServiceError) => void,
    private readonly metrics: SessionContext['metrics'],
    private readonly transport: string,
    private readonly maxUnreadBytes: number,
  ) {}

  failed(err: unknown): void {
    this.fail(toServiceError(err));
  }

  overflowed(unread: number): void {
    this.metrics.limitsHit.inc({ limit: 'unread_bytes' });
    this.fail(
      new ServiceError(
        'limit_exceeded',
        `more than ${this.maxUnreadBytes} bytes waiting unread (${unread}) while reading was paused: wait for the answer to each send`,
      ),
    );
  }

  paused(): void {
    this.metrics.flowPauses.inc({ transport: this.transport });
    this.metrics.flowPaused.inc({ transport: this.transport });
  }

  resumed(): void {
    this.metrics.flowPaused.dec({ transport: this.transport });
  }
}

/**
 * A session's flow, with its marks from the settings and its pauses counted in /metrics. The hard
 * limit is twice the largest message a transport takes: more than a client that lets itself be
 * held back can have sent when reading stopped.
 */
export function sessionFlow(
  socket: ClientSocket,
  ctx: Pick<SessionContext, 'settings' | 'metrics'>,
  parse: (bytes: Buffer) => void,
  fail: (error: ServiceError) => void,
): InputFlow {
  const marks = marksFor(ctx.settings);
  const hooks = new SessionFlowHooks(parse, fail, ctx.metrics, socket.info.transport, marks.maxUnreadBytes);
  return new InputFlow(socket, marks, hooks);
}
