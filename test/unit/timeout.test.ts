import { expect } from 'chai';
import { withTimeout } from '../../app/timeout';

class Typed extends Error {}

describe('withTimeout', () => {
  it('answers what the promise answers when it settles in time', async () => {
    expect(await withTimeout(Promise.resolve(7), 1000, 'a quick answer')).to.equal(7);
    const failure = await withTimeout(Promise.reject(new Typed('its own')), 1000, 'a quick failure').catch(
      (err: unknown) => err,
    );
    expect(failure).to.be.instanceOf(Typed);
    expect(String(failure)).to.contain('its own');
  });

  it("rejects with the caller's error, or one naming what had no answer, when it does not", async () => {
    const never = new Promise<never>(() => undefined);
    const plain = await withTimeout(never, 10, 'the broker').catch((err: unknown) => err);
    expect(String(plain)).to.contain('the broker: no answer within 10 ms');
    const typed = await withTimeout(never, 10, 'the broker', () => new Typed('typed')).catch(
      (err: unknown) => err,
    );
    expect(typed).to.be.instanceOf(Typed);
  });
});
