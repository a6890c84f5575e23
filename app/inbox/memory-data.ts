/**
 * What the memory inbox store (memory-store.ts) keeps, per user, and the reads of it that need no
 * store: a message's state, its public form, its removal. The same model as the SQL tables
 * (migrations/), in maps.
 */
import type { InboxMessage, MessageState } from './store';

export interface Stored {
  user: string;
  seq: number;
  prevSeq: number;
  id: string;
  destination: string;
  headers: Record<string, string>;
  body: Buffer;
  key?: string;
  fingerprint: string;
  createdAt: number;
  expiresAt: number;
  counted: boolean;
  publishPending: boolean;
  publishAt: number;
}

export interface Progress {
  sent: number;
  acked: boolean;
}

export interface UserState {
  last: number;
  cut: number;
  messages: Map<number, Stored>;
  byId: Map<string, number>;
  byKey: Map<string, number>;
  /** Seqs per destination, ascending. */
  streams: Map<string, number[]>;
  devices: Map<string, { knownAfterSeq: number; lastSeen: number }>;
  /** seq → device → progress; no entry: pending. */
  progress: Map<number, Map<string, Progress>>;
}

/** Index of the first seq in ascending `seqs` above `after`. */
export function firstAbove(seqs: number[], after: number): number {
  let low = 0;
  let high = seqs.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (seqs[mid] <= after) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** What a memory store holds; stores given the same one see the same inbox (as instances sharing a database). */
export class MemoryInboxData {
  readonly users = new Map<string, UserState>();
  /** The outbox: stored messages not yet published (nor expired). */
  readonly unpublished = new Set<Stored>();
}

/** A user nothing has been stored for yet. */
export function emptyUser(): UserState {
  return {
    last: 0,
    cut: 0,
    messages: new Map(),
    byId: new Map(),
    byKey: new Map(),
    streams: new Map(),
    devices: new Map(),
    progress: new Map(),
  };
}

/** As statements.ts's stateOf: expired; acked when some device acked it and none known at push time has not. */
export function stateOf(state: UserState, stored: Stored, now: number): MessageState {
  if (stored.expiresAt <= now) return 'expired';
  const progress = state.progress.get(stored.seq);
  const acked = (device: string): boolean => progress?.get(device)?.acked === true;
  if (![...(progress?.values() ?? [])].some((p) => p.acked)) return 'pending';
  for (const [device, known] of state.devices)
    if (known.knownAfterSeq < stored.seq && !acked(device)) return 'pending';
  return 'acked';
}

/** A stored message as the store hands it out (a copy of its headers: callers may not change ours). */
export function messageOf(stored: Stored): Omit<InboxMessage, 'redelivered'> {
  return {
    id: stored.id,
    seq: stored.seq,
    prevSeq: stored.prevSeq,
    destination: stored.destination,
    headers: { ...stored.headers },
    body: stored.body,
    createdAt: new Date(stored.createdAt),
    expiresAt: new Date(stored.expiresAt),
  };
}

/** Takes `stored` out of its user's indexes and progress. */
export function removeStored(state: UserState, stored: Stored): void {
  state.messages.delete(stored.seq);
  state.byId.delete(stored.id);
  if (stored.key !== undefined && state.byKey.get(stored.key) === stored.seq) state.byKey.delete(stored.key);
  const stream = state.streams.get(stored.destination);
  if (stream) stream.splice(firstAbove(stream, stored.seq - 1), 1);
  state.progress.delete(stored.seq);
}
