/**
 * Fault point 1, the volume part: more than 100,000 generated and mutated frames against the codec
 * and against live sessions over raw TCP and /stomp, split at random byte boundaries. Live batches
 * are runs of valid frames (which keep the session open) ended by a clean, mutated or known-bad
 * frame and a sentinel asking for a RECEIPT; the codec itself, run over the same bytes, is the
 * oracle for what the answer must be. Throughout, two bystander sessions keep receiving pushes and
 * the heap must come back to where it started. Seeds are printed on failure: FUZZ_SEED replays.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { header, type Frame } from '../../../app/stomp/frame';
import { StompParser, type ParserLimits } from '../../../app/stomp/parser';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { Bystander, heapUsedMb, metricValue, openAuthorizationFile } from './harness';
import { FuzzConnection, knownBadFrame, mutate, oracle, Rng, SessionModel, wire } from './fuzz-support';

const LIMITS: ParserLimits = { maxFrameBytes: 16_384, maxHeaders: 32, maxHeaderBytes: 1024 };
const TARGET_FRAMES = Number(process.env.FUZZ_FRAMES ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

interface Tally {
  frames: number;
  batches: number;
  connections: number;
  clean: number;
  knownBad: number;
  mutatedSurvived: number;
  mutatedRefused: number;
  incomplete: number;
  failures: string[];
}

function describeFrames(frames: Frame[]): string {
  return (
    frames.map((f) => `${f.command}${header(f, 'message') ? `(${header(f, 'message')})` : ''}`).join(', ') ||
    'nothing'
  );
}

/** One worker: connects, sends batches until the shared tally reaches the target. */
async function fuzzWorker(
  service: RunningService,
  transport: 'tcp' | 'websocket',
  worker: number,
  tally: Tally,
  deadline: number,
): Promise<void> {
  const rng = new Rng(SEED * 16 + worker);
  const token = tokenFor(service, `fuzzer${worker}`);
  const fail = (message: string): void => {
    if (tally.failures.length < 20) tally.failures.push(`[${transport} w${worker} seed ${SEED}] ${message}`);
  };
  while (tally.frames < TARGET_FRAMES && Date.now() < deadline && tally.failures.length === 0) {
    const conn = await FuzzConnection.open(service, transport);
    tally.connections++;
    conn.write(
      rng.split(
        Buffer.from(`CONNECT\naccept-version:1.2\nhost:fuzz\nAuthorization:Bearer ${token}\n\n\0`),
        64,
      ),
    );
    tally.frames++;
    if (
      !(await conn.until(() => conn.frames.length > 0 || conn.closed, 5000)) ||
      conn.frames[0]?.command !== 'CONNECTED'
    ) {
      fail(`CONNECT not answered with CONNECTED: ${describeFrames(conn.frames)}`);
      conn.end();
      return;
    }
    const model = new SessionModel(rng, tally.connections);
    for (let open = true; open && tally.frames < TARGET_FRAMES && tally.failures.length === 0;) {
      const batch = ++tally.batches;
      const run = model.validRun(rng.int(10, 60));
      const receipt = `end-${worker}-${batch}`;
      const roll = rng.next();
      let tail: Buffer<ArrayBufferLike> = Buffer.alloc(0);
      let kind: 'clean' | 'bad' | 'mutated' = 'clean';
      let badName = '';
      if (roll < 0.25) {
        kind = 'bad';
        const bad = knownBadFrame(rng, model, LIMITS);
        badName = bad.name;
        tail = bad.bytes;
      } else if (roll < 0.75) {
        kind = 'mutated';
        tail = mutate(rng, wire(model.send()));
      }
      const bytes = Buffer.concat([...run.bytes, tail, model.sentinel(receipt)]);
      const verdict = kind === 'clean' ? 'complete' : oracle(bytes, LIMITS, receipt);
      const mustFail = kind === 'bad' || verdict === 'framing-error';
      conn.write(rng.split(bytes, 400));
      tally.frames += run.frames + (kind === 'clean' ? 1 : 2);

      if (verdict === 'incomplete' && !mustFail) {
        // A mutation left a frame unfinished (a longer content-length, a lost NUL): the server is
        // right to wait for more bytes. Give up on this connection.
        tally.incomplete++;
        conn.end();
        open = false;
        break;
      }
      const answered = await conn.until(
        () => conn.closed || conn.find('RECEIPT', receipt) !== undefined,
        5000,
      );
      if (!answered) {
        fail(
          `batch ${batch} (${kind} ${badName}, oracle ${verdict}) got no answer within 5 s: ${describeFrames(conn.frames.slice(-3))}`,
        );
        conn.end();
        return;
      }
      const errors = conn.frames.filter((f) => f.command === 'ERROR');
      if (conn.closed) {
        open = false;
        const last = conn.frames[conn.frames.length - 1];
        if (kind === 'clean') fail(`clean batch ${batch} ended the session: ${describeFrames(errors)}`);
        else if (errors.length !== 1 || last?.command !== 'ERROR')
          fail(
            `batch ${batch} (${kind} ${badName}) closed without exactly one final ERROR: ${describeFrames(conn.frames.slice(-3))}`,
          );
        else if (!header(last, 'message')) fail(`ERROR without a message header after batch ${batch}`);
        else if (conn.find('RECEIPT', receipt))
          fail(`batch ${batch}: RECEIPT for the sentinel although an earlier frame was refused`);
        if (kind === 'bad') tally.knownBad++;
        else if (kind === 'mutated') tally.mutatedRefused++;
      } else {
        if (mustFail) {
          // The RECEIPT arrived: the refusal must still come (at the latest with the close).
          await conn.until(() => conn.closed, 3000);
          fail(
            `batch ${batch} (${kind} ${badName}, oracle ${verdict}) was not refused: ${describeFrames(conn.frames.slice(-3))}`,
          );
          conn.end();
          return;
        }
        if (errors.length > 0) fail(`ERROR on an open session: ${describeFrames(errors)}`);
        if (kind === 'clean') tally.clean++;
        else tally.mutatedSurvived++;
      }
      // Frames are kept per batch only: the connection lives on for the next one.
      if (!conn.closed) conn.frames.length = 0;
    }
    conn.end();
  }
}

describe('faults: protocol fuzzing (live sessions, >= 100,000 frames)', function () {
  this.timeout(120_000);
  let service: RunningService;

  before(async () => {
    service = await startTestService({
      stompTcpPort: 0,
      ...LIMITS,
      maxFramesPerSecond: 1_000_000,
      maxSubscriptionsPerSession: 100,
      authorizationFile: openAuthorizationFile(),
    });
  });
  after(async () => {
    await service.stop();
  });

  it('codec: frames parse the same whichever byte boundaries they arrive split at (fast-check)', () => {
    let frames = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 40 }),
        (seed, cuts) => {
          const rng = new Rng(seed);
          const model = new SessionModel(rng, 0);
          const run = model.validRun(40);
          let bytes: Buffer<ArrayBufferLike> = Buffer.concat(run.bytes);
          if (rng.chance(0.5)) bytes = mutate(rng, bytes);
          const parse = (pieces: Buffer[]): { frames: Frame[]; error?: string } => {
            const out: Frame[] = [];
            const parser = new StompParser(LIMITS, (f) => out.push(f));
            try {
              for (const p of pieces) parser.push(p);
            } catch (err: unknown) {
              return { frames: out, error: err instanceof Error ? err.message : String(err) };
            }
            return { frames: out };
          };
          const whole = parse([bytes]);
          const pieces: Buffer[] = [];
          for (let pos = 0, i = 0; pos < bytes.length; i++) {
            const n = cuts[i % cuts.length]!;
            pieces.push(bytes.subarray(pos, pos + n));
            pos += n;
          }
          const split = parse(pieces);
          frames += whole.frames.length + 1;
          expect(split).to.deep.equal(whole);
        },
      ),
      { numRuns: 2600, seed: SEED },
    );
    expect(frames).to.be.at.least(100_000);
  });

  it(`live: ${TARGET_FRAMES} valid, mutated and broken frames over TCP and /stomp; bystanders unaffected, heap bounded`, async () => {
    const viaWs = await Bystander.start(service, 'websocket');
    const viaTcp = await Bystander.start(service, 'tcp');
    const heapBefore = heapUsedMb();
    const tally: Tally = {
      frames: 0,
      batches: 0,
      connections: 0,
      clean: 0,
      knownBad: 0,
      mutatedSurvived: 0,
      mutatedRefused: 0,
      incomplete: 0,
      failures: [],
    };
    const started = Date.now();
    const deadline = started + 90_000;
    await Promise.all([
      fuzzWorker(service, 'tcp', 0, tally, deadline),
      fuzzWorker(service, 'tcp', 1, tally, deadline),
      fuzzWorker(service, 'websocket', 2, tally, deadline),
      fuzzWorker(service, 'websocket', 3, tally, deadline),
    ]);
    const seconds = (Date.now() - started) / 1000;
    expect(tally.failures, `seed ${SEED}`).to.deep.equal([]);
    expect(tally.frames).to.be.at.least(TARGET_FRAMES);
    // Everything the fuzzers opened is gone again; only the two bystanders remain.
    await waitFor(() => service.registry.size === 2, 10_000, 'fuzz sessions to be released');
    const pushes = (await viaWs.stopAndCheck(10)) + (await viaTcp.stopAndCheck(10));
    const heapAfter = heapUsedMb();
    const errors = await metricValue(service.url, 'stomp_errors_total', { kind: 'bad_frame' });
    // Numbers for the run log: what was exercised, and what it cost.
    console.log(
      `      fuzz seed ${SEED}: ${tally.frames} frames in ${tally.batches} batches over ${tally.connections} connections in ${seconds.toFixed(1)} s; ` +
        `clean ${tally.clean}, known-bad refused ${tally.knownBad}, mutated survived ${tally.mutatedSurvived} / refused ${tally.mutatedRefused} / left unfinished ${tally.incomplete}; ` +
        `bad_frame errors ${errors}; bystander pushes ${pushes}; heap ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MiB`,
    );
    expect(tally.knownBad).to.be.greaterThan(100);
    expect(tally.mutatedRefused + tally.mutatedSurvived).to.be.greaterThan(100);
    expect(heapAfter - heapBefore, 'heap growth in MiB').to.be.below(30);
  });
});
