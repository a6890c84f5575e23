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
import type { Frame } from '../../../app/stomp/frame';
import { StompParser, type ParserLimits } from '../../../app/stomp/parser';
import { startTestService, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { Bystander, heapUsedMb } from './harness';
import { emptyTally, fuzzWorker, mutate, Rng, SessionModel } from './fuzz-support';

const LIMITS: ParserLimits = { maxFrameBytes: 16_384, maxHeaders: 32, maxHeaderBytes: 1024 };
const TARGET_FRAMES = Number(process.env.FUZZ_FRAMES ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

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
      { numRuns: 3200, seed: SEED },
    );
    expect(frames).to.be.at.least(100_000);
  });

  it(`live: ${TARGET_FRAMES} valid, mutated and broken frames over TCP and /stomp; bystanders unaffected, heap bounded`, async () => {
    const viaWs = await Bystander.start(service, 'websocket');
    const viaTcp = await Bystander.start(service, 'tcp');
    const heapBefore = heapUsedMb();
    const options = { seed: SEED, target: TARGET_FRAMES, limits: LIMITS };
    const tally = emptyTally();
    const started = Date.now();
    const deadline = started + 90_000;
    await Promise.all([
      fuzzWorker(service, 'tcp', 0, tally, deadline, options),
      fuzzWorker(service, 'tcp', 1, tally, deadline, options),
      fuzzWorker(service, 'websocket', 2, tally, deadline, options),
      fuzzWorker(service, 'websocket', 3, tally, deadline, options),
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
