import { expect } from 'chai';
import fc from 'fast-check';

import { retryDelay } from '../../app/backoff';

describe('retryDelay (app/backoff.ts)', function () {
  const options = { baseMs: 100, maxMs: 5000 };

  it('grows exponentially from baseMs (the upper end of the jitter)', function () {
    const top = () => 0.999999;
    expect([0, 1, 2, 3].map((attempt) => retryDelay(attempt, options, top))).to.deep.equal([
      99, 199, 399, 799,
    ]);
  });

  it('is capped at maxMs however many attempts failed', function () {
    expect(retryDelay(10, options, () => 0.999999)).to.equal(4999);
    expect(retryDelay(1e9, options, () => 0.999999)).to.equal(4999);
  });

  it('uses full jitter: anything from 0 up to the cap', function () {
    expect(retryDelay(5, options, () => 0)).to.equal(0);
    expect(retryDelay(5, options, () => 0.5)).to.equal(1600);
  });

  it('stays within [0, min(maxMs, baseMs * 2^attempt)) for any input', function () {
    fc.assert(
      fc.property(
        fc.nat(100),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = retryDelay(attempt, options, () => r);
          return (
            Number.isInteger(delay) &&
            delay >= 0 &&
            delay < Math.min(options.maxMs, options.baseMs * 2 ** attempt)
          );
        },
      ),
    );
  });

  it('treats a negative attempt as the first', function () {
    expect(retryDelay(-3, options, () => 0.5)).to.equal(50);
  });
});
