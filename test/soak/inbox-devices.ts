/**
 * The inbox soak's devices and pushes, and the accounting between them (test/soak/inbox-soak.ts
 * drives them). A device is one `device-id` of one user: it connects to an instance, subscribes to
 * /user/queue/inbox with ack client-individual, acknowledges what it gets (all but a few, so that
 * redelivery is exercised even without a disconnect at the wrong moment), and is cut off and comes
 * back, on any instance, at random. Every MESSAGE is recorded against the push it carries (the body
 * is the push's index), with the session it came on, its inbox-seq and its redelivered flag.
 */
import { header, type Frame } from '../../app/stomp/frame';
import { openWebSocket, type RawStompClient } from '../support/raw-stomp';

/** One REST call of a push: where it went and what came back (a status, or the error). */
export interface Attempt {
  url: string;
  at: number;
  status?: number;
  error?: string;
}

export interface InboxPush {
  index: number;
  user: string;
  /** Idempotency-Key: a retry of an unanswered or refused call cannot store the push twice. */
  key: string;
  attempts: Attempt[];
  /** The last answer's status; 0 while unanswered (every attempt failed to get an answer). */
  status: number;
  id?: string;
  seq?: number;
}

export interface SessionRecord {
  url: string;
  openedAt: number;
  closedAt: number;
  messages: number;
  /** MESSAGEs whose inbox-seq was not above the one before on this session. */
  outOfOrder: number;
  lastSeq: number;
  seen: Set<number>;
}

export interface DeviceDelivery {
  session: number;
  seq: number;
  redelivered: boolean;
  at: number;
}

/** A push a device got again without `redelivered: true` (or twice on one session). */
export interface Duplicate {
  line: string;
  /** When the device first got it. */
  firstAt: number;
}

/** Skipped ACKs: the message is redelivered at this device's next session. */
const SKIP_ACK = 0.05;

export class Device {
  readonly got = new Map<number, DeviceDelivery[]>();
  readonly sessions: SessionRecord[] = [];
  /** A delivery of a push this device already had, not flagged redelivered (or twice in one session). */
  readonly duplicates: Duplicate[] = [];
  messages = 0;
  redelivered = 0;
  acked = 0;
  failedConnects = 0;
  client: RawStompClient | undefined;

  constructor(
    readonly user: string,
    readonly id: string,
    private readonly token: string,
  ) {}

  get name(): string {
    return `${this.user}/${this.id}`;
  }

  /** Connects to `url` and subscribes; false (and no session) when refused or cut off meanwhile. */
  async open(url: string, ack = true): Promise<boolean> {
    const record: SessionRecord = {
      url,
      openedAt: Date.now(),
      closedAt: 0,
      messages: 0,
      outOfOrder: 0,
      lastSeq: 0,
      seen: new Set(),
    };
    const number = this.sessions.length;
    let client: RawStompClient | undefined;
    try {
      client = await openWebSocket({ url }, { onFrame: (f) => this.onFrame(f, number, record, ack) });
      this.sessions.push(record);
      this.client = client;
      await client.connect(this.token, { 'device-id': this.id });
      await client.sendWithReceipt(
        'SUBSCRIBE',
        { id: 'inbox', destination: '/user/queue/inbox', ack: 'client-individual' },
        undefined,
        15_000,
      );
      return true;
    } catch {
      this.failedConnects++;
      this.close();
      return false;
    }
  }

  /** Cuts the connection (no DISCONNECT: whatever is unacknowledged is owed to the next session). */
  close(): void {
    const record = this.sessions.at(-1);
    if (record && record.closedAt === 0) record.closedAt = Date.now();
    this.client?.close();
    this.client = undefined;
  }

  get connected(): boolean {
    return this.client !== undefined && !this.client.closed;
  }

  private onFrame(f: Frame, session: number, record: SessionRecord, ack: boolean): void {
    if (f.command !== 'MESSAGE') return;
    const index = Number(f.body.toString('utf8').slice(1));
    const seq = Number(header(f, 'inbox-seq'));
    const redelivered = header(f, 'redelivered') === 'true';
    this.messages++;
    record.messages++;
    if (redelivered) this.redelivered++;
    if (seq <= record.lastSeq) record.outOfOrder++;
    record.lastSeq = Math.max(record.lastSeq, seq);
    const before = this.got.get(index) ?? [];
    if (record.seen.has(index) || (before.length > 0 && !redelivered)) {
      const first = before[0]?.at ?? Date.now();
      this.duplicates.push({
        line: `${this.name} push ${index} (seq ${seq}) again on session ${session}, redelivered ${redelivered}, had it on session(s) ${before.map((d) => d.session).join(',')}, first at ${new Date(first).toISOString().slice(11, 23)}`,
        firstAt: first,
      });
    }
    record.seen.add(index);
    before.push({ session, seq, redelivered, at: Date.now() });
    this.got.set(index, before);
    const id = header(f, 'ack');
    if (ack && id !== undefined && Math.random() >= SKIP_ACK && this.client && !this.client.closed) {
      this.client.send('ACK', { id });
      this.acked++;
    }
  }
}

export interface InboxAccount {
  pushed: number;
  accepted: number;
  /** Device x accepted push of its user: what must have arrived. */
  owed: number;
  lost: { device: Device; push: InboxPush }[];
  /** Pushes never answered 202 that a device got anyway (a 503 or a cut call whose commit held). */
  ambiguousDelivered: number;
  /** Deliveries of pushes that were answered, but never 202 or unanswered: must be none. */
  neverPushed: string[];
  duplicates: Duplicate[];
  outOfOrder: number;
}

/** What was owed against what arrived, once every device has had its last session. */
export function accountInbox(pushes: readonly InboxPush[], devices: readonly Device[]): InboxAccount {
  const byUser = new Map<string, InboxPush[]>();
  for (const p of pushes) byUser.set(p.user, [...(byUser.get(p.user) ?? []), p]);
  const result: InboxAccount = {
    pushed: pushes.length,
    accepted: pushes.filter((p) => p.status === 202).length,
    owed: 0,
    lost: [],
    ambiguousDelivered: 0,
    neverPushed: [],
    duplicates: devices.flatMap((d) => d.duplicates),
    outOfOrder: devices.reduce((n, d) => n + d.sessions.reduce((m, s) => m + s.outOfOrder, 0), 0),
  };
  const ambiguous = new Set<number>();
  for (const device of devices) {
    const mine = byUser.get(device.user) ?? [];
    for (const push of mine) {
      if (push.status === 202) {
        result.owed++;
        if (!device.got.has(push.index)) result.lost.push({ device, push });
      } else if (device.got.has(push.index)) {
        // Refused with a 4xx other than a retryable one means it was never stored.
        const couldHaveStored = push.attempts.some((a) => a.status === undefined || a.status === 503);
        if (couldHaveStored) ambiguous.add(push.index);
        else result.neverPushed.push(`${device.name} got push ${push.index}, answered ${push.status}`);
      }
    }
    for (const index of device.got.keys()) {
      const push = pushes[index];
      if (!push || push.user !== device.user)
        result.neverPushed.push(`${device.name} got push ${index}, which was not its user's`);
    }
  }
  result.ambiguousDelivered = ambiguous.size;
  return result;
}
