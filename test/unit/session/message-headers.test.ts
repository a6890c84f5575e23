import { expect } from 'chai';
import { applicationHeaders } from '../../../app/session/message-headers';

describe('application headers of a SEND', () => {
  it('keep custom headers, first occurrence winning, and drop hop and internal ones', () => {
    expect(
      applicationHeaders([
        ['destination', '/topic/x'],
        ['content-type', 'text/plain'],
        ['X-Trace', '1'],
        ['X-Trace', '2'],
        ['receipt', 'r'],
        ['sender', 'mallory'],
        ['x-relay-user', 'bob'],
      ]),
    ).to.deep.equal({ 'content-type': 'text/plain', 'X-Trace': '1' });
  });

  it('pass headers named like Object.prototype members (constructor, toString, __proto__)', () => {
    const out = applicationHeaders([
      ['constructor', 'a'],
      ['toString', 'b'],
      ['__proto__', 'c'],
    ]);
    expect(Object.entries(out)).to.deep.equal([
      ['constructor', 'a'],
      ['toString', 'b'],
      ['__proto__', 'c'],
    ]);
  });
});
