import { expect } from 'chai';
import { jsonDepthWithin } from '../../../app/rest/json-depth';

describe('JSON nesting depth', () => {
  it('counts arrays and objects, not scalars', () => {
    expect(jsonDepthWithin('text', 0)).to.equal(true);
    expect(jsonDepthWithin(null, 0)).to.equal(true);
    expect(jsonDepthWithin([], 0)).to.equal(false);
    expect(jsonDepthWithin([], 1)).to.equal(true);
    expect(jsonDepthWithin({ a: [1, { b: 2 }] }, 3)).to.equal(true);
    expect(jsonDepthWithin({ a: [1, { b: [] }] }, 3)).to.equal(false);
  });

  it('finds the deep branch among wide siblings', () => {
    const wide = Array.from({ length: 1000 }, () => ({ x: 1 }));
    wide.push({ x: [[[[1]]]] } as unknown as { x: number });
    expect(jsonDepthWithin(wide, 6)).to.equal(true);
    expect(jsonDepthWithin(wide, 5)).to.equal(false);
  });

  it('checks a value nested a million deep without running out of stack', () => {
    const deep = JSON.parse(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`) as unknown;
    expect(jsonDepthWithin(deep, 128)).to.equal(false);
  });
});
