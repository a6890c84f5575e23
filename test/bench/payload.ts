/**
 * The benchmark's messages: 100 bytes of text starting with the send time, so every receiver
 * computes end-to-end latency on its own. All processes run on this machine; each takes the wall
 * clock as `performance.timeOrigin + performance.now()` (sub-millisecond, same clock everywhere).
 */
import { performance } from 'node:perf_hooks';

export const PAYLOAD_BYTES = 100;

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** `<send time ms>|<seq>|....` padded to PAYLOAD_BYTES. */
export function makeBody(seq: number): string {
  const head = `${nowMs().toFixed(3)}|${seq}|`;
  return head + '.'.repeat(Math.max(0, PAYLOAD_BYTES - head.length));
}

/** Send time carried by a body that starts at `start` in `buf` (NaN if it is not ours). */
export function sentAtMs(buf: Buffer, start = 0): number {
  return parseFloat(buf.toString('latin1', start, start + 24));
}
