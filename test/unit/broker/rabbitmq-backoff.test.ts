import { expect } from 'chai';
import fc from 'fast-check';

import { reconnectDelay } from '../../../app/broker/rabbitmq/backoff';

describe('rabbitmq reconnectDelay', function () {
  const options = { baseMs: 100, maxMs: 5000 };

  it('grows exponentially from baseMs (the upper end of the jitter)', function () {
    const top = () => 0.999999;
    expect([0, 1, 2, 3].map((attempt) => reconnectDelay(attempt, options, top))).to.deep.equal([
      99, 199, 399, 799,
    ]);
  });

  it('is capped at maxMs however many attempts failed', function () {
    expect(reconnectDelay(10, options, () => 0.999999)).to.equal(4999);
    expect(reconnectDelay(1e9, options, () => 0.999999)).to.equal(4999);
  });

  it('uses full jitter: anything from 0 up to the cap', function () {
    expect(reconnectDelay(5, options, () => 0)).to.equal(0);
    expect(reconnectDelay(5, options, () => 0.5)).to.equal(1600);
  });

  it('stays within [0, min(maxMs, baseMs * 2^attempt)) for any input', function () {
    fc.assert(
      fc.property(
        fc.nat(100),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, r) => {
          const delay = reconnectDelay(attempt, options, () => r);
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
    expect(reconnectDelay(-3, options, () => 0.5)).to.equal(50);
  });
});
