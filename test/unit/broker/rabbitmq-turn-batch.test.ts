import { expect } from 'chai';
import { TurnBatch } from '../../../app/broker/rabbitmq/turn-batch';

/** Runs `fn` for each item in a setImmediate of its own, as rabbitmq-client calls a consumer. */
function oneImmediateEach<T>(items: T[], fn: (item: T) => Promise<void>): Promise<Promise<void>[]> {
  return new Promise((resolve) => {
    const done: Promise<void>[] = [];
    for (const item of items) setImmediate(() => done.push(fn(item)));
    setImmediate(() => resolve(done));
  });
}

describe('TurnBatch (instance queue arrivals)', () => {
  it('hands on items that came in separate callbacks of one turn together, in order, in one later turn', async () => {
    const turns: number[][] = [];
    let current: number[] | undefined;
    const batch = new TurnBatch<number>(
      (n) => {
        if (!current) {
          current = [];
          turns.push(current);
          // Whatever else this turn hands on belongs to the same batch; the next turn starts another.
          queueMicrotask(() => (current = undefined));
        }
        current.push(n);
      },
      () => expect.fail('no item throws'),
    );
    const added = await oneImmediateEach([1, 2, 3, 4], (n) => batch.add(n));
    expect(turns, 'nothing is handed on in the turn it arrives').to.deep.equal([]);
    await Promise.all(added);
    expect(turns).to.deep.equal([[1, 2, 3, 4]]);

    const later = await oneImmediateEach([5, 6], (n) => batch.add(n));
    await Promise.all(later);
    expect(turns).to.deep.equal([
      [1, 2, 3, 4],
      [5, 6],
    ]);
  });

  it('resolves each add only once its item has been handed on', async () => {
    const handed: string[] = [];
    const batch = new TurnBatch<string>(
      (s) => handed.push(s),
      () => undefined,
    );
    const a = batch.add('a');
    const b = batch.add('b');
    expect(handed).to.deep.equal([]);
    await a;
    expect(handed).to.deep.equal(['a', 'b']);
    await b;
  });

  it('hands on the rest of a batch when one item throws, and reports that item', async () => {
    const handed: number[] = [];
    const failed: [unknown, number][] = [];
    const batch = new TurnBatch<number>(
      (n) => {
        if (n === 2) throw new Error('bad message');
        handed.push(n);
      },
      (err, n) => failed.push([err, n]),
    );
    await Promise.all([1, 2, 3].map((n) => batch.add(n)));
    expect(handed).to.deep.equal([1, 3]);
    expect(failed).to.have.length(1);
    expect((failed[0][0] as Error).message).to.equal('bad message');
    expect(failed[0][1]).to.equal(2);
  });
});
