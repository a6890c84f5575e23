/**
 * The InboxStore in this process's memory: the same model as the SQL store (store.ts), held to the
 * same suite. The embedded default when INBOX_DATA_DIR is unset (create-inbox.ts says why).
 * Nothing survives the process; one process is one instance. Periodic work (sweep, outbox claim,
 * backlog) walks what is kept, which an embedded single instance keeps small.
 */
import { ServiceError, toServiceError } from '../errors';
import { fingerprint } from './append';
import type {
  AppendOutcome,
  Backlog,
  DeviceSeq,
  DeviceTouch,
  InboxAppend,
  InboxMessage,
  InboxPage,
  InboxStore,
  MessageStatus,
  Readiness,
  ReadRequest,
  StoreObserver,
  SweepResult,
  UnpublishedMessage,
  UserSeq,
} from './store';
import type { InboxLimits } from './sql-store';
import {
  emptyUser,
  firstAbove,
  MemoryInboxData,
  messageOf,
  removeStored,
  stateOf,
  type Progress,
  type Stored,
  type UserState,
} from './memory-data';
import { checkAppend, checkDevice, checkDeviceSeq, checkRead, checkUser, checkUserSeq } from './validate';

const SWEEP_LIMIT = 1000;

export { MemoryInboxData } from './memory-data';

export interface MemoryStoreOptions {
  limits: InboxLimits;
  data?: MemoryInboxData;
  observer?: StoreObserver;
  clock?: () => number;
}

export class MemoryInboxStore implements InboxStore {
  readonly kind = 'memory';
  private readonly users: Map<string, UserState>;
  private readonly unpublished: Set<Stored>;
  private readonly clock: () => number;
  private stopped = false;

  constructor(private readonly options: MemoryStoreOptions) {
    this.clock = options.clock ?? Date.now;
    const data = options.data ?? new MemoryInboxData();
    this.users = data.users;
    this.unpublished = data.unpublished;
  }

  async start(): Promise<void> {
    this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  readiness(): Readiness {
    return this.stopped ? { ready: false, reason: 'the inbox store is shut down' } : { ready: true };
  }

  async append(items: InboxAppend[]): Promise<AppendOutcome[]> {
    this.check();
    const now = this.clock();
    const touched = new Set<UserState>();
    const outcomes = items.map((item): AppendOutcome => {
      try {
        checkAppend(item);
      } catch (err: unknown) {
        return { ok: false, error: toServiceError(err) };
      }
      const state = this.user(item.user);
      touched.add(state);
      return this.appendOne(state, item, now);
    });
    let expired = 0;
    for (const state of touched) expired += this.expireOverLimit(state, now);
    if (expired > 0) this.options.observer?.expired('limit', expired);
    return outcomes;
  }

  async touchDevice(user: string, device: string): Promise<DeviceTouch> {
    this.check();
    checkUser(user);
    checkDevice(device);
    const state = this.user(user);
    const known = state.devices.get(device);
    if (known) {
      known.lastSeen = this.clock();
      return { isNew: false, knownAfterSeq: known.knownAfterSeq };
    }
    state.devices.set(device, { knownAfterSeq: state.last, lastSeen: this.clock() });
    return { isNew: true, knownAfterSeq: state.last };
  }

  async read(request: ReadRequest): Promise<InboxPage> {
    this.check();
    const { after, before, limit, since } = checkRead(request);
    const state = this.users.get(request.user);
    const seqs = state?.streams.get(request.destination) ?? [];
    const now = this.clock();
    const messages: InboxMessage[] = [];
    for (let i = firstAbove(seqs, after); i < seqs.length && seqs[i] < before; i++) {
      const stored = state?.messages.get(seqs[i]);
      if (!state || !stored || stored.expiresAt <= now) continue;
      const progress = state.progress.get(stored.seq)?.get(request.device);
      if (since === undefined && progress?.acked) continue;
      if (messages.length === limit) return { messages, more: true };
      messages.push({ ...messageOf(stored), redelivered: (progress?.sent ?? 0) > 0 });
    }
    return { messages, more: false };
  }

  async markPublished(entries: UserSeq[]): Promise<void> {
    this.check();
    entries.forEach(checkUserSeq);
    for (const entry of entries) {
      const stored = this.users.get(entry.user)?.messages.get(entry.seq);
      if (stored) this.published(stored);
    }
  }

  async claimUnpublished(options: { olderThanMs: number; limit: number }): Promise<UnpublishedMessage[]> {
    this.check();
    const now = this.clock();
    const due = [...this.unpublished]
      .filter((m) => m.publishPending && m.publishAt <= now - options.olderThanMs && m.expiresAt > now)
      .sort((a, b) => a.publishAt - b.publishAt)
      .slice(0, options.limit);
    for (const stored of due) stored.publishAt = now;
    return due
      .map((stored) => ({ user: stored.user, ...messageOf(stored) }))
      .sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : a.seq - b.seq));
  }

  async markDelivered(entries: DeviceSeq[]): Promise<void> {
    this.progress(entries, (progress) => {
      progress.sent += 1;
    });
  }

  async ack(entries: DeviceSeq[]): Promise<void> {
    this.progress(entries, (progress) => {
      progress.acked = true;
    });
  }

  async status(user: string, id: string): Promise<MessageStatus | undefined> {
    this.check();
    const state = this.users.get(user);
    const seq = state?.byId.get(id);
    const stored = seq === undefined ? undefined : state?.messages.get(seq);
    if (!state || !stored) return undefined;
    const devices: MessageStatus['devices'] = {};
    for (const device of state.devices.keys()) {
      const progress = state.progress.get(stored.seq)?.get(device);
      devices[device] = progress?.acked ? 'acked' : (progress?.sent ?? 0) > 0 ? 'delivered' : 'pending';
    }
    return {
      id: stored.id,
      seq: stored.seq,
      destination: stored.destination,
      createdAt: new Date(stored.createdAt),
      expiresAt: new Date(stored.expiresAt),
      state: stateOf(state, stored, this.clock()),
      devices,
    };
  }

  async expire(options: { limit?: number } = {}): Promise<SweepResult> {
    this.check();
    const limit = options.limit ?? SWEEP_LIMIT;
    const now = this.clock();
    const ttlMs = this.options.limits.ttlS * 1000;
    const byExpiry = this.all().sort((a, b) => a.expiresAt - b.expiresAt);
    const due = byExpiry.filter((m) => !m.counted && m.expiresAt <= now).slice(0, limit);
    for (const stored of due) this.empty(stored);
    if (due.length > 0) this.options.observer?.expired('ttl', due.length);
    const gone = byExpiry.filter((m) => m.counted && m.expiresAt <= now - ttlMs).slice(0, limit);
    for (const stored of gone) this.delete(stored);
    let devicesForgotten = 0;
    for (const state of this.users.values()) {
      for (const [device, known] of state.devices) {
        if (devicesForgotten >= limit || known.lastSeen >= now - 2 * ttlMs) continue;
        state.devices.delete(device);
        for (const devices of state.progress.values()) devices.delete(device);
        devicesForgotten++;
      }
    }
    const more = Math.max(due.length, gone.length, devicesForgotten) >= limit;
    return { expired: due.length, deleted: gone.length, devicesForgotten, more };
  }

  async backlog(): Promise<Backlog> {
    this.check();
    const backlog: Backlog = { pending: 0, acked: 0, expired: 0 };
    const now = this.clock();
    for (const state of this.users.values()) {
      for (const stored of state.messages.values()) backlog[stateOf(state, stored, now)] += 1;
    }
    return backlog;
  }

  private check(): void {
    if (this.stopped) throw new ServiceError('inbox_unavailable', 'the inbox store is shut down');
  }

  private user(user: string): UserState {
    let state = this.users.get(user);
    if (!state) {
      state = emptyUser();
      this.users.set(user, state);
    }
    return state;
  }

  private all(): Stored[] {
    return [...this.users.values()].flatMap((state) => [...state.messages.values()]);
  }

  private appendOne(state: UserState, item: InboxAppend, now: number): AppendOutcome {
    const print = fingerprint(item);
    const earlierSeq = item.idempotencyKey === undefined ? undefined : state.byKey.get(item.idempotencyKey);
    const earlier = earlierSeq === undefined ? undefined : state.messages.get(earlierSeq);
    if (earlier) {
      if (earlier.fingerprint !== print) {
        const reason = `Idempotency-Key '${item.idempotencyKey}' was used for a different message to ${item.user}`;
        return { ok: false, error: new ServiceError('idempotency_conflict', reason) };
      }
      const { id, seq, prevSeq, createdAt, expiresAt } = messageOf(earlier);
      return { ok: true, push: { id, seq, prevSeq, createdAt, expiresAt, duplicate: true } };
    }
    if (state.byId.has(item.id)) {
      return { ok: false, error: new ServiceError('internal', `message id ${item.id} is already stored`) };
    }
    const stream = state.streams.get(item.destination) ?? [];
    state.streams.set(item.destination, stream);
    let prevSeq = 0;
    for (let i = stream.length - 1; i >= 0 && prevSeq === 0; i--) {
      const previous = state.messages.get(stream[i]);
      if (previous && previous.expiresAt > now) prevSeq = previous.seq;
    }
    state.last += 1;
    const stored: Stored = {
      user: item.user,
      seq: state.last,
      prevSeq,
      id: item.id,
      destination: item.destination,
      headers: { ...item.headers },
      body: Buffer.from(item.body),
      key: item.idempotencyKey,
      fingerprint: print,
      createdAt: now,
      expiresAt: now + this.options.limits.ttlS * 1000,
      counted: false,
      publishPending: true,
      publishAt: now,
    };
    state.messages.set(stored.seq, stored);
    this.unpublished.add(stored);
    state.byId.set(stored.id, stored.seq);
    if (stored.key !== undefined) state.byKey.set(stored.key, stored.seq);
    stream.push(stored.seq);
    const { id, seq, createdAt, expiresAt } = messageOf(stored);
    return { ok: true, push: { id, seq, prevSeq, createdAt, expiresAt, duplicate: false } };
  }

  private expireOverLimit(state: UserState, now: number): number {
    const high = Math.max(state.cut, state.last - this.options.limits.maxMessages);
    let expired = 0;
    for (let seq = state.cut + 1; seq <= high; seq++) {
      const stored = state.messages.get(seq);
      if (!stored || stored.expiresAt <= now) continue;
      stored.expiresAt = now;
      this.empty(stored);
      expired++;
    }
    state.cut = high;
    return expired;
  }

  /** Expired: counted, never published or delivered again, so the body goes. */
  private empty(stored: Stored): void {
    stored.counted = true;
    this.published(stored);
    stored.body = Buffer.alloc(0);
    stored.headers = {};
  }

  private published(stored: Stored): void {
    stored.publishPending = false;
    this.unpublished.delete(stored);
  }

  private delete(stored: Stored): void {
    const state = this.users.get(stored.user);
    if (state) removeStored(state, stored);
  }

  private progress(entries: DeviceSeq[], update: (progress: Progress) => void): void {
    this.check();
    entries.forEach(checkDeviceSeq);
    for (const entry of entries) {
      const state = this.users.get(entry.user);
      if (!state?.messages.has(entry.seq)) continue;
      const devices = state.progress.get(entry.seq) ?? new Map<string, Progress>();
      state.progress.set(entry.seq, devices);
      const progress = devices.get(entry.device) ?? { sent: 0, acked: false };
      devices.set(entry.device, progress);
      update(progress);
    }
  }
}
