/**
 * One STOMP session per client connection, whatever the transport. It owns the connection's state
 * (`connecting` → `connected` → `closing` → `closed`), its timers (CONNECT deadline, heart-beats both
 * ways, slow-consumer watch, token expiry) and its broker subscriptions, and it sets all of them up
 * and tears all of them down in one place (`start*` / `finish`).
 *
 * Client frames are answered strictly in arrival order and handled one after another, except that
 * SENDs to `/queue/` go to the broker without waiting for the confirms of those before them, at
 * most MAX_SENDS_IN_FLIGHT at once (frame-order.ts). What waits is bounded by flow control
 * (input-flow.ts): past MAX_FRAMES_IN_FLIGHT frames or MAX_BYTES_IN_FLIGHT bytes the session stops
 * reading from the client until they have drained. What each command does is in commands.ts.
 */
import { TempQueues } from './temp-queues';
import { randomBytes } from 'node:crypto';
import type { Delivery } from '../broker/broker';
import type { SessionInfo } from '../presence/directory';
import { ServiceError, toServiceError } from '../errors';
import { frame as makeFrame, header, type Frame, type StompVersion } from '../stomp/frame';
import { negotiateVersion } from '../stomp/negotiate';
import { StompParser, type ParserLimits } from '../stomp/parser';
import { HEARTBEAT_FRAME, serializeFrame } from '../stomp/serializer';
import type { Expiring } from './expiry-clock';
import type { ClientSocket } from '../transport/transport';
import type { CommandSession, OpenTransaction } from './command-session';
import { COMMANDS, overlapsOthers } from './commands';
import { FrameOrder, type Outcome, type Started } from './frame-order';
import { sessionFrameDeadline, type FrameDeadline } from './frame-deadline';
import { encodeMessage } from './message-frame';
import { frameBytes, sessionFlow, type InputFlow } from './input-flow';
import { FrameRate } from './frame-rate';
import { SendBacklog } from './send-backlog';
import { messageTracer, noTrace, type MessageTracer } from '../observability/trace';
import { closeReasonFor, type CloseReason, type SessionContext } from './session-context';
import type { RegisteredSession } from './session-registry';
import { SubscriptionTable, type ClientSubscription } from './subscriptions';

export type SessionState = 'connecting' | 'connected' | 'closing' | 'closed';

/** Heart-beats arriving this much later than agreed still count: networks and timers jitter. */
const HEARTBEAT_GRACE = 2;
const ALL_VERSIONS: readonly StompVersion[] = ['1.0', '1.1', '1.2'];
const MAX_OPEN_TRANSACTIONS = 16;

/** One ParserLimits per settings object, shared by its sessions rather than one object each. */
const limitsBySettings = new WeakMap<SessionContext['settings'], ParserLimits>();

function parserLimits(s: SessionContext['settings']): ParserLimits {
  let limits = limitsBySettings.get(s);
  if (!limits) {
    limits = { maxFrameBytes: s.maxFrameBytes, maxHeaders: s.maxHeaders, maxHeaderBytes: s.maxHeaderBytes };
    limitsBySettings.set(s, limits);
  }
  return limits;
}

export class StompSession implements RegisteredSession, CommandSession, Expiring {
  /** Unguessable: it ends up in broker queue names and in the session list. */
  readonly id = randomBytes(12).toString('base64url');
  state: SessionState = 'connecting';
  user = '';
  /** The CONNECT token's scopes: rules of the authorization file may be for a scope. */
  scopes: readonly string[] = [];
  /** CONNECT's `device-id` (SPEC "The inbox"): whose progress this session's ACKs advance. */
  device = 'default';
  version: StompVersion = '1.2';
  readonly subscriptions = new SubscriptionTable();
  /** Made on first use: most sessions never open one, and an empty Map costs ~200 bytes each. */
  private openTransactions?: Map<string, OpenTransaction>;
  readonly tempQueues: TempQueues;
  /** Epoch ms; a number, not a Date: a Date object was ~90 bytes of every idle session. */
  connectedAt = Date.now();

  private readonly parser: StompParser;
  private readonly trace: MessageTracer;
  private readonly flow: InputFlow;
  private readonly order: FrameOrder;
  /** On the flow's client clock, which leaves out the time the session was not reading. */
  private lastReceivedAt = Date.now();
  private lastSentAt = Date.now();
  private readonly rate: FrameRate;
  private readonly sendBacklog: SendBacklog;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Cleared at CONNECT: kept until it fired, it held its closure for the whole session. */
  private connectTimer?: NodeJS.Timeout;
  /** The second ctx.expiry ends this session in, once connected with a token that expires. */
  private expirySecond?: number;
  private readonly frameDeadline: FrameDeadline;

  constructor(
    readonly socket: ClientSocket,
    readonly ctx: SessionContext,
  ) {
    const s = ctx.settings;
    this.trace = messageTracer(ctx.logger);
    this.tempQueues = new TempQueues(ctx.broker.replies, (sub, delivery) => this.deliver(sub, delivery));
    this.rate = new FrameRate(s.maxFramesPerSecond);
    this.sendBacklog = new SendBacklog(
      socket,
      s,
      () => this.state === 'connected',
      (err) => {
        this.ctx.metrics.limitsHit.inc({ limit: 'send_buffer' });
        this.fail(err);
      },
    );
    this.order = new FrameOrder(s.maxSendsInFlight);
    this.parser = new StompParser(parserLimits(s), (f) => this.enqueue(f));
    this.frameDeadline = sessionFrameDeadline(
      ctx,
      (err) => this.fail(err),
      () => this.flow.clientNow(),
    );
    this.flow = sessionFlow(
      socket,
      ctx,
      (bytes) => {
        this.parser.push(bytes);
        this.frameDeadline.update(this.parser);
      },
      (err) => this.fail(err),
    );
    socket.onData((chunk) => this.onData(chunk));
    socket.onRefused?.((reason) => this.fail(new ServiceError('bad_frame', reason)));
    socket.onClose(() => this.finish('transport_closed'));
    this.connectTimer = setTimeout(() => {
      if (this.state === 'connecting') {
        this.fail(new ServiceError('connect_timeout', `no CONNECT frame within ${s.connectTimeoutMs} ms`));
      }
    }, s.connectTimeoutMs);
  }

  get transactions(): Map<string, OpenTransaction> {
    return (this.openTransactions ??= new Map());
  }

  /** Its token's `exp` has come (ctx.expiry). */
  expire(): void {
    this.fail(new ServiceError('token_expired', 'token expired: reconnect with a new token'));
  }

  get transactionLimit(): number {
    return MAX_OPEN_TRANSACTIONS;
  }

  info(): SessionInfo {
    return {
      sessionId: this.id,
      user: this.user,
      instance: this.ctx.settings.instanceId,
      transport:
        this.socket.info.transport === 'sockjs'
          ? `sockjs/${this.socket.info.protocol}`
          : this.socket.info.transport,
      connectedAt: new Date(this.connectedAt).toISOString(),
      subscriptions: this.subscriptions.all().map((s) => ({ id: s.id, destination: s.destination })),
    };
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.lastReceivedAt = this.flow.clientNow();
    this.ctx.metrics.bytes.inc({ direction: 'in' }, chunk.length);
    this.flow.receive(chunk);
  }

  /** STOMP versions this connection may speak: all three, or those its WebSocket subprotocols named. */
  supportedVersions(): StompVersion[] {
    const offered = this.socket.info.versions ?? ALL_VERSIONS;
    return ALL_VERSIONS.filter((v) => offered.includes(v));
  }

  private enqueue(frame: Frame): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.state === 'connecting' && (frame.command === 'CONNECT' || frame.command === 'STOMP')) {
      // The frames after CONNECT may already sit in the same chunk: the parser must read them in
      // the negotiated version's escaping now, not once CONNECT has been handled (asynchronously).
      const version = negotiateVersion(header(frame, 'accept-version'), this.supportedVersions());
      if (version) this.parser.version = version;
    }
    if (!this.rate.take()) {
      this.ctx.metrics.limitsHit.inc({ limit: 'frames_per_second' });
      this.fail(
        new ServiceError(
          'rate_limited',
          `more than ${this.ctx.settings.maxFramesPerSecond} frames per second`,
        ),
      );
      return;
    }
    const bytes = frameBytes(frame);
    this.flow.queued(bytes);
    void this.order.add(
      overlapsOthers(frame),
      () => this.start(frame),
      (outcome) => this.answer(frame, outcome, bytes),
    );
  }

  /** Runs the frame's command; resolves once it is done, or with the confirm it still waits for. */
  private async start(frame: Frame): Promise<Started | undefined> {
    if (this.state !== 'connecting' && this.state !== 'connected') return undefined;
    this.ctx.metrics.frames.inc({
      direction: 'in',
      command: COMMANDS.has(frame.command) ? frame.command : 'unknown',
    });
    const handler = COMMANDS.get(frame.command);
    if (!handler) throw new ServiceError('unknown_command', `unknown command '${frame.command}'`);
    const connecting = frame.command === 'CONNECT' || frame.command === 'STOMP';
    if (this.state === 'connecting' && !connecting) {
      throw new ServiceError('not_connected', `${frame.command} before CONNECT: send CONNECT first`);
    }
    if (this.state === 'connected' && connecting) throw new ServiceError('bad_frame', 'already connected');
    return (await handler(this, frame)) ?? undefined;
  }

  /** The frame's RECEIPT (if it asked for one) or its ERROR, in the order the frames came. */
  private answer(frame: Frame, outcome: Outcome, bytes: number): void {
    try {
      const receipt = header(frame, 'receipt');
      if (!outcome.ok) this.fail(toServiceError(outcome.error), receipt);
      else if (receipt !== undefined && frame.command !== 'DISCONNECT' && this.state === 'connected') {
        this.sendFrame(makeFrame('RECEIPT', { 'receipt-id': receipt }));
      }
    } finally {
      this.flow.handled(bytes);
    }
  }

  /** CONNECT succeeded: from here on heart-beats, token expiry and slow-consumer checks run. */
  startConnected(heartbeat: { sendEveryMs: number; expectEveryMs: number }, expiresAt?: number): void {
    this.state = 'connected';
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.parser.version = this.version;
    this.connectedAt = Date.now();
    if (heartbeat.sendEveryMs > 0) {
      this.timers.push(
        setInterval(() => {
          if (Date.now() - this.lastSentAt >= heartbeat.sendEveryMs * 0.8) this.write(HEARTBEAT_FRAME);
        }, heartbeat.sendEveryMs),
      );
    }
    if (heartbeat.expectEveryMs > 0) {
      const limit = heartbeat.expectEveryMs * HEARTBEAT_GRACE;
      this.timers.push(
        setInterval(() => {
          // The client clock stands still while reading is paused: heart-beats wait unread then.
          if (this.flow.clientNow() - this.lastReceivedAt > limit) {
            this.fail(new ServiceError('heartbeat_timeout', `no heart-beat from the client for ${limit} ms`));
          }
        }, heartbeat.expectEveryMs),
      );
    }
    // One clock for all sessions (expiry-clock.ts), however far ahead: no timer of its own.
    if (expiresAt !== undefined) this.expirySecond = this.ctx.expiry.add(expiresAt, this);
    this.ctx.registry.add(this, this.info());
    this.ctx.logger.info(
      {
        session: this.id,
        user: this.user,
        transport: this.socket.info.transport,
        protocol: this.socket.info.protocol,
        version: this.version,
      },
      'session opened',
    );
  }

  deliver(sub: ClientSubscription, delivery: Delivery): void {
    if (this.state !== 'connected' || sub.closed) {
      this.trace('not written', delivery.messageId, { session: this.id, state: this.state });
      return;
    }
    const encoded = encodeMessage(sub, delivery, this);
    if (!encoded) return;
    if (encoded.dropped > 0) {
      this.ctx.metrics.headersDropped.inc({ version: this.version }, encoded.dropped);
      this.ctx.logger.debug(
        { session: this.id, version: this.version, dropped: encoded.dropped },
        'MESSAGE headers left off: this STOMP version cannot carry their values',
      );
    }
    this.ctx.metrics.countMessageOut();
    this.write(encoded.bytes);
    if (this.trace !== noTrace)
      this.trace('written', delivery.messageId, { session: this.id, subscription: sub.id });
    this.sendBacklog.check();
  }

  sendFrame(f: Frame, version: StompVersion = this.version): void {
    if (this.state === 'closed') return;
    const bytes = this.serialize(f, version);
    if (!bytes) return;
    this.ctx.metrics.frames.inc({ direction: 'out', command: f.command });
    this.write(bytes);
  }

  serialize(f: Frame, version: StompVersion): Buffer | undefined {
    try {
      return serializeFrame(f, version);
    } catch (err: unknown) {
      // A header this client's STOMP version cannot carry (a line break for a 1.0 client, say):
      // this one frame is skipped, the session and everyone else's deliveries carry on.
      this.ctx.metrics.errors.inc({ kind: 'unserializable_frame' });
      this.ctx.logger.warn(
        { session: this.id, command: f.command, err },
        'frame cannot be written in this STOMP version',
      );
      return undefined;
    }
  }

  private write(bytes: Buffer): void {
    this.lastSentAt = Date.now();
    this.ctx.metrics.countBytesOut(bytes.length);
    this.socket.send(bytes);
  }

  /** Sends ERROR (with receipt-id when the failing frame asked for a receipt), then closes. */
  fail(error: ServiceError, receiptId?: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.ctx.metrics.errors.inc({ kind: error.code });
    if (error.code === 'internal')
      this.ctx.logger.error({ session: this.id, err: error.cause }, 'internal error');
    const unescaped = this.state === 'connecting';
    const headers: Record<string, string | undefined> = {
      message: error.message.replace(/[\r\n]/g, ' '),
      // Unescaped, a line break cannot be written: the receipt-id keeps every other character.
      'receipt-id': unescaped ? receiptId?.replace(/[\r\n]/g, ' ') : receiptId,
      'content-type': 'text/plain;charset=utf-8',
    };
    if (error.code === 'unsupported_version') headers.version = '1.0,1.1,1.2';
    // Before CONNECTED the client does not know the version yet (stompjs unescapes nothing until
    // then), so an ERROR answering CONNECT is written unescaped, like CONNECT and CONNECTED: a
    // message like "invalid token: ..." must not reach it as "invalid token\c ...".
    this.sendFrame(makeFrame('ERROR', headers, error.message), unescaped ? '1.0' : this.version);
    this.close(closeReasonFor(error.code));
  }

  terminate(code: 'draining', message: string): void {
    this.fail(new ServiceError(code, message));
  }

  close(reason: CloseReason): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    // Finished first: a transport may report its own close from inside socket.close(), and the
    // reason logged must be this one, not 'transport_closed'.
    this.finish(reason);
    this.socket.close();
  }

  /** The one place everything a session holds is released. Idempotent. */
  private finish(reason: CloseReason): void {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected' || this.user !== '';
    this.state = 'closed';
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
    clearTimeout(this.connectTimer);
    if (this.expirySecond !== undefined) this.ctx.expiry.remove(this.expirySecond, this);
    this.frameDeadline.stop();
    this.sendBacklog.stop();
    this.flow.stop();
    this.openTransactions?.clear();
    this.tempQueues.closeAll();
    for (const sub of this.subscriptions.all()) {
      this.subscriptions.remove(sub.id);
      this.ctx.metrics.subscriptions.dec();
      sub.broker?.close().catch((err: unknown) => {
        this.ctx.logger.warn({ session: this.id, err }, 'closing a broker subscription failed');
      });
    }
    this.ctx.registry.remove(this.id);
    if (wasConnected) {
      this.ctx.logger.info(
        {
          session: this.id,
          user: this.user,
          transport: this.socket.info.transport,
          reason,
          durationMs: Date.now() - this.connectedAt,
        },
        'session closed',
      );
    } else {
      this.ctx.logger.debug(
        { session: this.id, transport: this.socket.info.transport, reason },
        'connection closed before CONNECT',
      );
    }
  }
}
