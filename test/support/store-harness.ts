/**
 * The store suite's small tools: a clock tests move, pushes with readable ids, paging reads to the
 * end, and a harness that stops every store a test opened.
 */
import { expect } from 'chai';

import type {
  AppendOutcome,
  InboxAppend,
  InboxMessage,
  InboxStore,
  ReadRequest,
  StoredPush,
  StoreObserver,
} from '../../app/inbox/store';
import { unique } from './broker-harness';
import type { OpenOptions, StoreFixture, StorePlace } from './store-fixtures';

export const INBOX = '/user/queue/inbox';

/** A user name no other test or run uses. */
export const user = (prefix = 'u'): string => unique(prefix);

export class TestClock {
  constructor(public ms = Date.UTC(2030, 0, 1)) {}
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** Counts what the store reports for /metrics. */
export class RecordingObserver implements StoreObserver {
  readonly expiredBy = { ttl: 0, limit: 0 };
  readonly operations: { operation: string; ok: boolean }[] = [];
  operation(operation: string, _seconds: number, ok: boolean): void {
    this.operations.push({ operation, ok });
  }
  expired(reason: 'ttl' | 'limit', count: number): void {
    this.expiredBy[reason] += count;
  }
}

export function item(to: string, id: string, extra: Partial<InboxAppend> = {}): InboxAppend {
  return {
    user: to,
    id,
    destination: INBOX,
    headers: { 'content-type': 'text/plain' },
    body: Buffer.from(`body of ${id}`),
    ...extra,
  };
}

export function stored(outcome: AppendOutcome): StoredPush {
  if (!outcome.ok) throw new Error(`append refused: ${outcome.error.code} ${outcome.error.message}`);
  return outcome.push;
}

export async function push(
  store: InboxStore,
  to: string,
  id: string,
  extra: Partial<InboxAppend> = {},
): Promise<StoredPush> {
  const [outcome] = await store.append([item(to, id, extra)]);
  return stored(outcome);
}

/** Every message a read would replay, page after page. */
export async function readAll(
  store: InboxStore,
  request: Omit<ReadRequest, 'after'>,
): Promise<InboxMessage[]> {
  const messages: InboxMessage[] = [];
  let after: number | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await store.read({ ...request, after });
    messages.push(...page.messages);
    if (!page.more) return messages;
    expect(page.messages, 'a page with more after it is not empty').to.have.length.greaterThan(0);
    after = page.messages[page.messages.length - 1].seq;
  }
  throw new Error('more than 100 pages');
}

export const pending = (
  store: InboxStore,
  to: string,
  device: string,
  destination = INBOX,
): Promise<InboxMessage[]> => readAll(store, { user: to, device, destination, from: { progress: true } });

export const since = (
  store: InboxStore,
  to: string,
  device: string,
  seq: number,
  destination = INBOX,
): Promise<InboxMessage[]> => readAll(store, { user: to, device, destination, from: { since: seq } });

export const ids = (messages: InboxMessage[]): string[] => messages.map((message) => message.id);

/** Opens stores for one test and stops them all afterwards. */
export class StoreHarness {
  private readonly open: InboxStore[] = [];
  constructor(readonly fixture: StoreFixture) {}

  async store(options: OpenOptions = {}, place: StorePlace = this.fixture.main): Promise<InboxStore> {
    const store = await this.fixture.open(place, options);
    this.open.push(store);
    await store.start();
    return store;
  }

  async tearDown(): Promise<void> {
    for (const store of this.open.splice(0)) await store.stop();
  }
}
