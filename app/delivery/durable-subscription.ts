/**
 * One client subscription to a durable destination (SPEC "The inbox"): the stored messages this
 * device has not acknowledged (or, with `inbox-since`, everything after that seq), then live ones,
 * with no gap, reordering or duplicate between the two.
 *
 * How the two are joined (DESIGN.md "Replay joined to live without a gap"):
 * 1. The live broker subscription is made first, and what it brings is buffered.
 * 2. The store is read page by page after the start position and sent in order; `lastSent` is the
 *    highest seq this subscription has sent.
 * 3. Then live messages are taken in arrival order. Each carries its `inbox-seq` and
 *    `inbox-prev-seq` (the previous kept seq of the same destination when it was committed):
 *    - seq <= lastSent: already sent (by the replay, or a republish): dropped;
 *    - prev <= lastSent: it follows what was sent: sent as it is;
 *    - prev > lastSent: something between was not seen live (published late from another
 *      instance, or never: the outbox catch-up will republish it): the store is read up to and
 *      including this seq, and what it answers is sent, in order.
 *    A republished message (the catch-up's) always goes through the store: only the store knows
 *    whether this device already acknowledged it in an earlier session.
 *    Seqs are assigned in commit order under the user's lock, so once a message is live every
 *    lower seq is committed, and reading up to it cannot miss one.
 * The live buffer is bounded: past MAX_LIVE_BUFFER waiting messages they are dropped and the store
 * is read instead, which has them all.
 *
 * Flow: in the client ack modes at most `prefetch` messages are outstanding, as on any other
 * subscription. At the mark the subscription stops sending (live messages are dropped: the store
 * has them) and reads the store again from where it stopped once an ACK or NACK makes room.
 *
 * Progress: every message is recorded as delivered to the device before it is written (so a crash
 * errs on `redelivered: true`), and acknowledged on ACK (client modes: `client` covers every earlier
 * one of this subscription) or once written (`auto`). A NACK records nothing: the message comes back
 * at the device's next SUBSCRIBE, not within this one.
 *
 * A store that cannot answer (PostgreSQL out): what it could not record as delivered is not written,
 * since written unrecorded it would come again at the device's next session without `redelivered`.
 * The subscription holds still instead (live messages are dropped: the store has them all) and
 * reads the store again from `lastSent` after a backoff, until it answers. The same for a read that
 * fails. Nothing is lost, and nothing is sent twice in one subscription: `lastSent` only moves for
 * what was written.
 */
import type { AckMode, Broker, BrokerSubscription, Delivery } from '../broker/broker';
import { retryDelay } from '../backoff';
import { ServiceError, toServiceError } from '../errors';
import { durableTarget, PREV_SEQ_HEADER, REPUBLISHED_HEADER, SEQ_HEADER, type Inbox } from '../inbox/inbox';
import type { DeviceSeq, InboxMessage, ReadRequest } from '../inbox/store';

export interface DurableSubscribeRequest {
  sessionId: string;
  user: string;
  device: string;
  /** As subscribed, canonical: `/user/queue/inbox`. */
  destination: string;
  ackMode: AckMode;
  /** `inbox-since`: start after this seq whatever the device acknowledged. */
  since?: number;
  prefetch: number;
  deliver(delivery: Delivery): void;
  /** The broker ended the live subscription on its own. */
  ended?(reason: ServiceError): void;
}

/** Live messages held while the store is being read; beyond it the store is read again instead. */
const MAX_LIVE_BUFFER = 2_000;
const PAGE = 500;
/** Backoff of the store retries while it does not answer (jittered: app/backoff.ts). */
const STORE_RETRY = { baseMs: 250, maxMs: 5_000 };

interface Pending {
  seq: number;
  prevSeq: number;
  republished: boolean;
  message: Pick<InboxMessage, 'id' | 'seq' | 'headers' | 'body' | 'redelivered'>;
}

/** `inbox-since` as a client writes it: a whole number. */
export function parseSince(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(value)) {
    throw new ServiceError(
      'bad_frame',
      `inbox-since must be a whole number >= 0, not '${value.slice(0, 20)}'`,
    );
  }
  return Number(value);
}

function seqOf(headers: Record<string, string>, name: string): number | undefined {
  const value = headers[name];
  return value !== undefined && /^[0-9]{1,15}$/.test(value) ? Number(value) : undefined;
}

export class DurableSubscription implements BrokerSubscription {
  private live?: BrokerSubscription;
  private lastSent: number;
  private replaying = true;
  private closed = false;
  private buffer: Pending[] = [];
  private overflowed = false;
  /** At `prefetch` unacknowledged: nothing is sent until an ACK or NACK makes room. */
  private full = false;
  /** The store did not answer: nothing is sent until the retry timer has read it again. */
  private stalled = false;
  private retry?: NodeJS.Timeout;
  /** Store retries since it last answered. */
  private retries = 0;
  private pumping?: Promise<void>;
  /** Sent and not yet acknowledged or nacked, in seq order (client modes). */
  private readonly unacked: number[] = [];

  private constructor(
    private readonly inbox: Inbox,
    private readonly request: DurableSubscribeRequest,
  ) {
    this.lastSent = request.since ?? 0;
  }

  /** Makes the device known, subscribes live, replays; resolves once the replay is written. */
  static async open(
    inbox: Inbox,
    broker: Broker,
    request: DurableSubscribeRequest,
  ): Promise<DurableSubscription> {
    const store = inbox.store;
    const sub = new DurableSubscription(inbox, request);
    await store.touchDevice(request.user, request.device);
    sub.live = await broker.subscribe({
      sessionId: request.sessionId,
      user: request.user,
      target: durableTarget(request.user, request.destination),
      // The store keeps what matters; the live copy is only a fast path.
      ackMode: 'auto',
      prefetch: request.prefetch,
      deliver: (delivery) => sub.onLive(delivery),
      ended: request.ended,
    });
    try {
      await sub.readStore();
    } catch (err: unknown) {
      await sub.close();
      throw err;
    }
    sub.replaying = false;
    sub.kick();
    return sub;
  }

  async ack(ackId: string): Promise<void> {
    const entries = this.settle(ackId);
    if (entries.length === 0) return;
    this.makeRoom();
    await this.inbox.store.ack(entries);
    this.inbox.metrics.acked.inc(entries.length);
  }

  async nack(ackId: string): Promise<void> {
    if (this.settle(ackId).length > 0) this.makeRoom();
  }

  /** Below the mark again: what was held back is read from the store. */
  private makeRoom(): void {
    if (!this.full || this.unacked.length >= this.request.prefetch) return;
    this.full = false;
    this.overflowed = true;
    if (!this.replaying) this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.buffer = [];
    clearTimeout(this.retry);
    await this.live?.close();
  }

  /**
   * The store did not answer (a read, or recording deliveries): nothing more is sent, what waits
   * live is dropped (the store has it), and the store is read again from lastSent after a backoff.
   */
  private holdBack(err: unknown, what: string): void {
    const { logger } = this.inbox;
    const first = !this.stalled;
    this.stalled = true;
    this.buffer = [];
    if (this.closed || this.retry) return;
    // Said once per outage and subscription, not at every retry.
    if (first)
      logger.warn(
        { err: toServiceError(err), user: this.request.user },
        `inbox: ${what}; holding deliveries back until the store answers`,
      );
    this.retry = setTimeout(
      () => {
        this.retry = undefined;
        this.stalled = false;
        this.overflowed = true;
        if (!this.replaying) this.kick();
      },
      retryDelay(this.retries++, STORE_RETRY),
    );
    this.retry.unref();
  }

  /** The unacked seqs this ACK/NACK covers, taken off the list. */
  private settle(ackId: string): DeviceSeq[] {
    const seq = Number(ackId);
    const { user, device } = this.request;
    let covered: number[];
    if (this.request.ackMode === 'client') {
      const upTo = this.unacked.findIndex((s) => s > seq);
      covered = this.unacked.splice(0, upTo === -1 ? this.unacked.length : upTo);
    } else {
      const at = this.unacked.indexOf(seq);
      covered = at === -1 ? [] : this.unacked.splice(at, 1);
    }
    return covered.map((s) => ({ user, device, seq: s }));
  }

  private onLive(delivery: Delivery): void {
    if (this.closed) return;
    const seq = seqOf(delivery.headers, SEQ_HEADER);
    if (seq === undefined) {
      // Not from the inbox (a best-effort publish to a durable name): it has no place in the order.
      this.inbox.logger.debug({ user: this.request.user }, 'inbox: a message without inbox-seq was dropped');
      return;
    }
    const republished = delivery.headers[REPUBLISHED_HEADER] === 'true';
    const prevSeq = seqOf(delivery.headers, PREV_SEQ_HEADER) ?? 0;
    // The join's own headers stay between instances; `inbox-seq` goes on to the client.
    const headers = Object.fromEntries(
      Object.entries(delivery.headers).filter(
        ([name]) => name !== PREV_SEQ_HEADER && name !== REPUBLISHED_HEADER,
      ),
    );
    if (this.overflowed || this.full || this.stalled) return;
    if (this.buffer.length >= MAX_LIVE_BUFFER) {
      this.buffer = [];
      this.overflowed = true;
    } else {
      this.buffer.push({
        seq,
        prevSeq,
        republished,
        message: { id: delivery.messageId, seq, headers, body: delivery.body, redelivered: false },
      });
    }
    if (!this.replaying) this.kick();
  }

  private kick(): void {
    if (this.pumping || this.closed) return;
    this.pumping = this.pump()
      // What was not sent stays in the store: read again once it answers.
      .catch((err: unknown) => this.holdBack(err, 'live delivery could not read the store'))
      .finally(() => {
        this.pumping = undefined;
        if (!this.closed && !this.full && !this.stalled && (this.buffer.length > 0 || this.overflowed))
          this.kick();
      });
  }

  private async pump(): Promise<void> {
    while (!this.closed && !this.full && !this.stalled && (this.buffer.length > 0 || this.overflowed)) {
      if (this.overflowed) {
        this.overflowed = false;
        await this.readStore();
        continue;
      }
      const batch = this.buffer;
      this.buffer = [];
      let direct: Pending[] = [];
      let position = this.lastSent;
      for (const item of batch) {
        if (this.full || this.stalled) break;
        if (item.seq <= position) continue;
        if (item.prevSeq > position || item.republished) {
          await this.send(
            direct.map((d) => d.message),
            'live',
          );
          direct = [];
          if (this.stalled) break;
          await this.readStore(item.seq + 1);
          // Held back at the mark (makeRoom() reads on) or by the store (the retry reads on), from
          // what was really sent.
          if (this.full || this.stalled) break;
          this.lastSent = Math.max(this.lastSent, item.seq);
          position = this.lastSent;
          continue;
        }
        direct.push(item);
        position = item.seq;
      }
      await this.send(
        direct.map((d) => d.message),
        'live',
      );
    }
  }

  /** Sends what the store holds after lastSent (and below `before`), page by page. */
  private async readStore(before?: number): Promise<void> {
    const { user, device, destination, since } = this.request;
    const from: ReadRequest['from'] = since === undefined ? { progress: true } : { since };
    let after = this.lastSent;
    for (;;) {
      if (this.closed) return;
      const page = await this.inbox.store.read({
        user,
        device,
        destination,
        from,
        after,
        before,
        limit: PAGE,
      });
      await this.send(page.messages, 'replay');
      // At the mark or held back: what follows is read again from lastSent, later.
      if (!page.more || page.messages.length === 0 || this.full || this.stalled) return;
      after = page.messages[page.messages.length - 1].seq;
    }
  }

  private async send(
    messages: Pick<InboxMessage, 'id' | 'seq' | 'headers' | 'body' | 'redelivered'>[],
    source: 'replay' | 'live',
  ): Promise<void> {
    const { user, device, ackMode, prefetch } = this.request;
    let fresh = messages.filter((m) => m.seq > this.lastSent);
    if (ackMode !== 'auto' && this.unacked.length + fresh.length >= prefetch) {
      const room = Math.max(0, prefetch - this.unacked.length);
      // What does not fit stays in the store; makeRoom() reads it again.
      if (room < fresh.length) this.full = true;
      fresh = fresh.slice(0, room);
    }
    if (fresh.length === 0 || this.closed || this.stalled) return;
    const { store, metrics, logger } = this.inbox;
    const entries = fresh.map((m) => ({ user, device, seq: m.seq }));
    try {
      await store.markDelivered(entries);
    } catch (err: unknown) {
      // Not written: unrecorded, it would come again at the next session without `redelivered`.
      // Nothing of it went out, so what was cut for room is read again with the rest.
      this.full = false;
      this.holdBack(err, 'recording deliveries failed');
      return;
    }
    this.retries = 0;
    const written: DeviceSeq[] = [];
    let redelivered = 0;
    for (const message of fresh) {
      if (this.closed || message.seq <= this.lastSent) continue;
      this.request.deliver({
        messageId: message.id,
        position: String(message.seq),
        headers: { ...message.headers, [SEQ_HEADER]: String(message.seq) },
        body: message.body,
        ackId: ackMode === 'auto' ? undefined : String(message.seq),
        redelivered: message.redelivered,
      });
      this.lastSent = message.seq;
      if (ackMode !== 'auto') this.unacked.push(message.seq);
      written.push({ user, device, seq: message.seq });
      if (message.redelivered) redelivered++;
    }
    metrics.delivered.inc({ source }, written.length);
    metrics.redelivered.inc(redelivered);
    if (ackMode === 'auto' && written.length > 0) {
      store.ack(written).then(
        () => metrics.acked.inc(written.length),
        (err: unknown) => logger.debug({ err, user }, 'inbox: recording auto acks failed'),
      );
    }
  }
}
