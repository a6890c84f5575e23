import { expect } from 'chai';
import { readSockJsMessage } from '../../../app/transport/sockjs-message';

describe('unit: SockJS messages (only strings are STOMP data)', () => {
  it('a JSON array of strings is read as its strings; a bare string only where allowed', () => {
    expect(readSockJsMessage('["SEND\\n", "\\u0000", "[x]{y}\\"]"]', false)).to.deep.equal({
      ok: true,
      strings: ['SEND\n', '\u0000', '[x]{y}"]'],
    });
    expect(readSockJsMessage(' [ ] ', false)).to.deep.equal({ ok: true, strings: [] });
    expect(readSockJsMessage('"CONNECT"', true)).to.deep.equal({ ok: true, strings: ['CONNECT'] });
    expect(readSockJsMessage('"CONNECT"', false)).to.include({ ok: false, reason: 'not_an_array' });
  });

  const refusals: [string, string, RegExp][] = [
    ['[1]', 'not_a_string', /element 0 is a number/],
    ['["a", null]', 'not_a_string', /element 1 is null/],
    ['["a","b",true]', 'not_a_string', /element 2 is a boolean/],
    ['[{}]', 'not_a_string', /element 0 is an object/],
    ['["x", ["y"]]', 'not_a_string', /element 1 is an array/],
    ['[{"length":100000000}]', 'not_a_string', /an object/],
    ['{"length":100000000}', 'not_an_array', /not an object/],
    ['{"__proto__":[],"length":1e15}', 'not_an_array', /not an object/],
    ['-7', 'not_an_array', /not a number/],
    ['null', 'not_an_array', /not null/],
    ['["unterminated', 'not_json', /not JSON/],
    ['["a",]', 'not_json', /not JSON/],
    ["['a']", 'not_json', /not JSON/],
    ['', 'not_json', /not JSON/],
    ['[\u0001]', 'not_json', /not JSON/],
  ];
  for (const [text, reason, detail] of refusals) {
    it(`${JSON.stringify(text)}: refused (${reason}) with a reason naming what it is`, () => {
      const message = readSockJsMessage(text, true);
      expect(message).to.include({ ok: false, reason });
      expect(message.ok ? '' : message.detail)
        .to.match(detail)
        .and.match(/JSON array of strings/);
    });
  }

  it('deep nesting and non-strings at the size limit are refused at the first one, unparsed', () => {
    const depth = 600_000;
    expect(readSockJsMessage(`${'['.repeat(depth)}${']'.repeat(depth)}`, true)).to.deep.include({
      ok: false,
      reason: 'not_a_string',
    });
    const numbers = readSockJsMessage(`["a",${'1,'.repeat(depth)}1]`, true);
    expect(numbers.ok ? '' : numbers.detail).to.match(/element 1 is a number/);
  });
});
