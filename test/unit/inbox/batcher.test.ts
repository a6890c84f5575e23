import { expect } from 'chai';

import { Batcher } from '../../../app/inbox/batcher';
import { isServiceError, ServiceError } from '../../../app/errors';

/** A round runner the test releases by hand, recording what each round carried. */
function gatedRunner() {
  const rounds: number[][] = [];
  const gates: (() => void)[] = [];
  const run = (items: number[]): Promise<string[]> => {
    rounds.push(items);
    return new Promise((resolve) => gates.push(() => resolve(items.map((n) => `r${n}`))));
  };
  const release = async (): Promise<void> => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  };
  return { rounds, run, release };
}

describe('inbox Batcher (group commit)', () => {
  it('sends a lone call at once, then everything that arrived meanwhile in one round', async () => {
    const runner = gatedRunner();
    const batcher = new Batcher(runner.run, { maxItems: 100, maxQueued: 1000, what: 'items' });
    const first = batcher.submit([1]);
    const later = [batcher.submit([2, 3]), batcher.submit([4])];
    expect(runner.rounds).to.deep.equal([[1]]);
    await runner.release();
    expect(await first).to.deep.equal(['r1']);
    await runner.release();
    expect(await Promise.all(later)).to.deep.equal([['r2', 'r3'], ['r4']]);
    expect(runner.rounds).to.deep.equal([[1], [2, 3, 4]]);
  });

  it('keeps a call whole and rounds within maxItems', async () => {
    const runner = gatedRunner();
    const batcher = new Batcher(runner.run, { maxItems: 3, maxQueued: 1000, what: 'items' });
    const calls = [
      batcher.submit([1]),
      batcher.submit([2, 3]),
      batcher.submit([4, 5]),
      batcher.submit([6, 7, 8, 9]),
    ];
    for (let i = 0; i < 4; i++) await runner.release();
    await Promise.all(calls);
    expect(runner.rounds).to.deep.equal([[1], [2, 3], [4, 5], [6, 7, 8, 9]]);
  });

  it('rejects every call of a failed round, and goes on with the next', async () => {
    let fail = true;
    const batcher = new Batcher(
      async (items: number[]) => {
        if (fail) throw new ServiceError('inbox_unavailable', 'database down (test)');
        return items;
      },
      { maxItems: 10, maxQueued: 100, what: 'items' },
    );
    const failed = await Promise.allSettled([batcher.submit([1]), batcher.submit([2])]);
    expect(failed.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.submit([3])).to.deep.equal([3]);
  });

  it('refuses at once beyond maxQueued instead of queueing behind a slow database', async () => {
    const runner = gatedRunner();
    const batcher = new Batcher(runner.run, { maxItems: 10, maxQueued: 3, what: 'pushes' });
    const inFlight = batcher.submit([1]);
    const queued = batcher.submit([2, 3, 4]);
    const refused = await batcher.submit([5]).catch((err: unknown) => err);
    expect(isServiceError(refused) && refused.code).to.equal('inbox_unavailable');
    await runner.release();
    await runner.release();
    expect(await inFlight).to.deep.equal(['r1']);
    expect(await queued).to.deep.equal(['r2', 'r3', 'r4']);
  });

  it('finishes what is queued on close, and refuses new calls after', async () => {
    const runner = gatedRunner();
    const batcher = new Batcher(runner.run, { maxItems: 10, maxQueued: 100, what: 'items' });
    const calls = [batcher.submit([1]), batcher.submit([2])];
    const closing = batcher.close(new ServiceError('inbox_unavailable', 'the inbox store is shut down'));
    await runner.release();
    await runner.release();
    await closing;
    expect(await Promise.all(calls)).to.deep.equal([['r1'], ['r2']]);
    const after = await batcher.submit([3]).catch((err: unknown) => err);
    expect(isServiceError(after) && after.code).to.equal('inbox_unavailable');
  });
});
