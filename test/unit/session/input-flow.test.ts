/**
 * InputFlow with the real frame parser and a socket that only records pause/resume: what a chunk
 * of many frames turns into while the frames it produced wait, what is held back and when, and the
 * hard limit on what arrives while paused.
 */
import { expect } from 'chai';
import type { Frame } from '../../../app/stomp/frame';
import { StompParser } from '../../../app/stomp/parser';
import { serializeFrame } from '../../../app/stomp/serializer';
import { frame as makeFrame } from '../../../app/stomp/frame';
import { frameBytes, InputFlow, type FlowMarks } from '../../../app/session/input-flow';
import type { ClientSocket } from '../../../app/transport/transport';

class RecordingSocket implements ClientSocket {
  readonly info = { transport: 'tcp' as const, protocol: 'tcp', remoteAddress: '' };
  reading = true;
  pauses = 0;
  send(): void {}
  bufferedAmount(): number {
    return 0;
  }
  close(): void {}
  onData(): void {}
  onClose(): void {}
  pause(): void {
    if (this.reading) this.pauses++;
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
  }
}

/** A flow over a parser, with every frame it yields kept waiting until `handle` lets it go. */
function harness(marks: Partial<FlowMarks> = {}) {
  const socket = new RecordingSocket();
  const waiting: Frame[] = [];
  const handled: string[] = [];
  const errors: unknown[] = [];
  const overflows: number[] = [];
  let maxWaiting = 0;
  const parser = new StompParser({ maxFrameBytes: 65536, maxHeaders: 64, maxHeaderBytes: 8192 }, (f) => {
    waiting.push(f);
    flow.queued(frameBytes(f));
    maxWaiting = Math.max(maxWaiting, waiting.length);
  });
  const flow = new InputFlow(
    socket,
    { highFrames: 100, highBytes: 1024 * 1024, maxUnreadBytes: 256 * 1024, ...marks },
    {
      parse: (bytes) => parser.push(bytes),
      failed: (err) => errors.push(err),
      overflowed: (n) => overflows.push(n),
      paused: () => undefined,
      resumed: () => undefined,
    },
  );
  /** Lets the oldest `n` waiting frames go, one at a time, as the session's chain does. */
  const handle = (n = waiting.length): void => {
    for (let i = 0; i < n && waiting.length > 0; i++) {
      const f = waiting.shift()!;
      handled.push(f.body.toString());
      flow.handled(frameBytes(f));
    }
  };
  const drainAll = (): void => {
    for (let rounds = 0; waiting.length > 0 && rounds < 100_000; rounds++) handle(1);
  };
  return {
    socket,
    flow,
    waiting,
    handled,
    errors,
    overflows,
    handle,
    drainAll,
    maxWaiting: () => maxWaiting,
  };
}

function sends(from: number, count: number, body = (i: number) => `m${i}`): Buffer {
  const frames: Buffer[] = [];
  for (let i = from; i < from + count; i++)
    frames.push(serializeFrame(makeFrame('SEND', { destination: '/queue/q' }, body(i)), '1.2'));
  return Buffer.concat(frames);
}

const range = (from: number, count: number): string[] =>
  Array.from({ length: count }, (_, i) => `m${from + i}`);

describe('session: input flow control', () => {
  it('a chunk of 1,000 frames: parsing stops near the mark, the socket pauses, the rest follows in order as frames drain', () => {
    const h = harness();
    h.flow.receive(sends(0, 1000));
    expect(h.socket.reading).to.equal(false);
    expect(h.flow.paused).to.equal(true);
    expect(h.waiting.length).to.be.within(100, 110);
    h.handle(40);
    // Above the low-water mark (50): nothing more is parsed yet.
    expect(h.waiting.length).to.be.within(60, 70);
    expect(h.socket.reading).to.equal(false);
    h.drainAll();
    expect(h.handled).to.deep.equal(range(0, 1000));
    expect(h.maxWaiting()).to.be.below(110);
    expect(h.socket.reading).to.equal(true);
    expect(h.flow.paused).to.equal(false);
  });

  it('reading resumes only once both marks are at their low-water level', () => {
    const h = harness({ highFrames: 10 });
    h.flow.receive(sends(0, 10));
    expect(h.socket.reading).to.equal(false);
    h.handle(4);
    expect(h.socket.reading).to.equal(false);
    h.handle(1);
    expect(h.socket.reading).to.equal(true);
    expect(h.socket.pauses).to.equal(1);
  });

  it('the byte mark: large frames pause reading long before the frame mark', () => {
    const h = harness({ highBytes: 64 * 1024 });
    const big = 'x'.repeat(8 * 1024);
    h.flow.receive(sends(0, 20, (i) => `m${i}${big}`));
    expect(h.socket.reading).to.equal(false);
    expect(h.waiting.length).to.be.within(8, 9);
    h.drainAll();
    expect(h.handled.map((b) => b.replace(/x+$/, ''))).to.deep.equal(range(0, 20));
    expect(h.socket.reading).to.equal(true);
  });

  it('what arrives while paused waits behind the rest of the earlier chunk, and all of it is read in order', () => {
    const h = harness();
    h.flow.receive(sends(0, 500));
    h.flow.receive(sends(500, 300));
    h.flow.receive(sends(800, 200));
    expect(h.socket.reading).to.equal(false);
    h.drainAll();
    expect(h.handled).to.deep.equal(range(0, 1000));
    expect(h.overflows).to.deep.equal([]);
  });

  it('the hard limit: more than maxUnreadBytes arriving while paused is reported, with how much', () => {
    const h = harness({ maxUnreadBytes: 4096 });
    h.flow.receive(sends(0, 200));
    expect(h.flow.paused).to.equal(true);
    expect(h.overflows).to.deep.equal([]);
    h.flow.receive(sends(200, 200));
    expect(h.overflows).to.have.length(1);
    expect(h.overflows[0]).to.be.above(4096);
  });

  it('a body full of NULs (content-length) is read whole however the chunk is cut', () => {
    const h = harness({ highFrames: 4 });
    const body = Buffer.alloc(10_000, 0);
    const frames = Buffer.concat(
      Array.from({ length: 6 }, () =>
        serializeFrame(makeFrame('SEND', { destination: '/queue/q' }, body), '1.2'),
      ),
    );
    h.flow.receive(frames);
    expect(h.waiting.length).to.equal(4);
    for (const f of h.waiting) expect(f.body.equals(body)).to.equal(true);
    h.drainAll();
    expect(h.handled).to.have.length(6);
  });

  it('counts the time spent paused, and only that', async () => {
    const h = harness({ highFrames: 2 });
    expect(h.flow.pausedMs()).to.equal(0);
    h.flow.receive(sends(0, 2));
    await new Promise((r) => setTimeout(r, 60));
    const during = h.flow.pausedMs();
    expect(during).to.be.at.least(50);
    h.drainAll();
    await new Promise((r) => setTimeout(r, 60));
    expect(h.flow.pausedMs() - during).to.be.below(30);
  });

  it('a malformed frame in a held remainder is reported once, and nothing after it is parsed', () => {
    const h = harness({ highFrames: 10 });
    h.flow.receive(Buffer.concat([sends(0, 20), Buffer.from('bad command\n\n\0'), sends(20, 5)]));
    expect(h.errors).to.have.length(0);
    h.drainAll();
    expect(h.errors).to.have.length(1);
    expect(h.handled).to.deep.equal(range(0, 20));
  });

  it('once stopped, nothing more is parsed', () => {
    const h = harness({ highFrames: 10 });
    h.flow.receive(sends(0, 50));
    h.flow.stop();
    h.drainAll();
    h.flow.receive(sends(50, 5));
    expect(h.handled.length).to.be.below(15);
    expect(h.flow.paused).to.equal(false);
  });
});
