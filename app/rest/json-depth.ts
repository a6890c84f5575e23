/**
 * How deeply a REST push's JSON `body` may nest. The body is parsed by express.json (iteratively:
 * millions of levels parse) and then written out with JSON.stringify, which recurses once per level
 * and runs out of stack at a few thousand levels (about 4,000 on Node 20 from an empty stack, fewer
 * inside a request). A 64 KiB body holds 32,000 levels, so without a bound one request answered 500
 * with a stack trace; clients that parse the message recursively would hit the same wall. 128 is far
 * beyond any document shape in use and far below the stack's limit (serde_json's default too).
 */
export const MAX_JSON_DEPTH = 128;

/** True when `value` nests arrays and objects at most `max` deep (a scalar is 0, `[]` is 1). */
export function jsonDepthWithin(value: unknown, max: number): boolean {
  // An explicit stack: checking depth by recursion would be the problem it is meant to catch.
  const pending: [value: unknown, depth: number][] = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (typeof item !== 'object' || item === null) continue;
    if (depth + 1 > max) return false;
    for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push([child, depth + 1]);
  }
  return true;
}
