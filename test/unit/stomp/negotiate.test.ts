import { expect } from 'chai';
import { ServiceError } from '../../../app/errors';
import type { StompVersion } from '../../../app/stomp/frame';
import { negotiateHeartbeat, negotiateVersion } from '../../../app/stomp/negotiate';

const ALL: readonly StompVersion[] = ['1.0', '1.1', '1.2'];

describe('negotiateVersion (spec 1.2 §Protocol Negotiation)', () => {
  it('treats a missing accept-version as a 1.0 client', () => {
    expect(negotiateVersion(undefined, ALL)).to.equal('1.0');
    expect(negotiateVersion(undefined, ['1.1', '1.2'])).to.equal(undefined);
  });

  it('picks the highest version both sides support, in any order and with spaces', () => {
    expect(negotiateVersion('1.0,1.1,1.2', ALL)).to.equal('1.2');
    expect(negotiateVersion('1.2, 1.0', ALL)).to.equal('1.2');
    expect(negotiateVersion('1.0,1.1,1.2', ['1.0', '1.1'])).to.equal('1.1');
    expect(negotiateVersion('1.1', ALL)).to.equal('1.1');
  });

  it('ignores unknown versions and returns undefined when nothing is common', () => {
    expect(negotiateVersion('2.0,1.1', ALL)).to.equal('1.1');
    expect(negotiateVersion('2.0', ALL)).to.equal(undefined);
    expect(negotiateVersion('', ALL)).to.equal(undefined);
    expect(negotiateVersion('1.0', ['1.2'])).to.equal(undefined);
  });
});

describe('negotiateHeartbeat (spec 1.2 §Heart-beating)', () => {
  it('takes the larger interval on each leg when both sides want it', () => {
    expect(negotiateHeartbeat('4000,6000', 10000, 10000)).to.deep.equal({
      sendEveryMs: 10000,
      expectEveryMs: 10000,
      header: '10000,10000',
    });
    expect(negotiateHeartbeat('20000,30000', 10000, 5000)).to.deep.equal({
      sendEveryMs: 30000,
      expectEveryMs: 20000,
      header: '10000,5000',
    });
  });

  it('turns a leg off when either side says 0', () => {
    expect(negotiateHeartbeat('0,6000', 10000, 10000)).to.include({ sendEveryMs: 10000, expectEveryMs: 0 });
    expect(negotiateHeartbeat('4000,0', 10000, 10000)).to.include({ sendEveryMs: 0, expectEveryMs: 10000 });
    expect(negotiateHeartbeat('4000,6000', 0, 10000)).to.include({ sendEveryMs: 0, expectEveryMs: 10000 });
    expect(negotiateHeartbeat('4000,6000', 10000, 0)).to.include({ sendEveryMs: 10000, expectEveryMs: 0 });
  });

  it('treats a missing header as 0,0 and still announces the server side', () => {
    expect(negotiateHeartbeat(undefined, 10000, 10000)).to.deep.equal({
      sendEveryMs: 0,
      expectEveryMs: 0,
      header: '10000,10000',
    });
  });

  it('tolerates spaces around the numbers', () => {
    expect(negotiateHeartbeat(' 1000 , 2000 ', 500, 500)).to.include({
      sendEveryMs: 2000,
      expectEveryMs: 1000,
    });
  });

  for (const bad of [
    '',
    '1000',
    '1000,',
    ',1000',
    'a,b',
    '-1,1000',
    '1.5,2',
    '1000,2000,3000',
    '99999999999,0',
  ]) {
    it(`refuses the malformed header ${JSON.stringify(bad)} with bad_frame`, () => {
      let error: unknown;
      try {
        negotiateHeartbeat(bad, 10000, 10000);
      } catch (err: unknown) {
        error = err;
      }
      expect(error).to.be.instanceOf(ServiceError);
      expect((error as ServiceError).code).to.equal('bad_frame');
      expect((error as ServiceError).message).to.include('heart-beat');
    });
  }
});
