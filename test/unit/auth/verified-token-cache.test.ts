import { expect } from 'chai';
import { VerifiedTokenCache } from '../../../app/auth/verified-token-cache';

describe('VerifiedTokenCache', () => {
  let now = 1_000_000;
  const clock = () => now;
  const alice = { user: 'alice', scopes: ['push'], expiresAt: 1_060_000 };

  beforeEach(() => {
    now = 1_000_000;
  });

  it('gives back a remembered token until its exp, then forgets it', () => {
    const cache = new VerifiedTokenCache({ maxEntries: 10, maxAgeMs: 300_000, now: clock });
    cache.add('t1', alice);
    expect(cache.get('t1')).to.deep.equal(alice);
    now = 1_059_999;
    expect(cache.get('t1')).to.deep.equal(alice);
    now = 1_060_000; // jsonwebtoken: expired when now >= exp
    expect(cache.get('t1')).to.equal(undefined);
    expect(cache.size).to.equal(0);
  });

  it('re-verifies after maxAgeMs even when exp is later or absent', () => {
    const cache = new VerifiedTokenCache({ maxEntries: 10, maxAgeMs: 1000, now: clock });
    cache.add('t1', { ...alice, expiresAt: undefined });
    cache.add('t2', alice);
    now += 999;
    expect(cache.get('t1')).to.not.equal(undefined);
    expect(cache.get('t2')).to.not.equal(undefined);
    now += 1;
    expect(cache.get('t1')).to.equal(undefined);
    expect(cache.get('t2')).to.equal(undefined);
  });

  it('holds at most maxEntries, dropping the oldest', () => {
    const cache = new VerifiedTokenCache({ maxEntries: 2, maxAgeMs: 300_000, now: clock });
    cache.add('t1', alice);
    cache.add('t2', alice);
    cache.add('t3', alice);
    expect(cache.size).to.equal(2);
    expect(cache.get('t1')).to.equal(undefined);
    expect(cache.get('t3')).to.deep.equal(alice);
  });

  it('remembers nothing with maxEntries 0', () => {
    const cache = new VerifiedTokenCache({ maxEntries: 0, maxAgeMs: 300_000, now: clock });
    cache.add('t1', alice);
    expect(cache.get('t1')).to.equal(undefined);
  });
});
