/**
 * `npm run bench`: the service relaying to RabbitMQ, RabbitMQ Web-STOMP direct, a bare-ws
 * ceiling, RabbitMQ alone (the physical ceiling of one-to-one) and the Socket.IO + Redis peer,
 * measured side by side in one run on this machine (see RESULTS.md for the last run).
 *
 *   npm run bench                      full run, writes test/bench/results.json + RESULTS.md
 *   npm run bench -- --smoke           a few clients and messages (what the smoke test runs)
 *   npm run bench -- --only fanout,one-to-one,ceiling,peers,idle,crowd   --out DIR   --tsx   --cpu-prof
 *   npm run bench -- --rerender [DIR]  rewrite RESULTS.md from results.json
 *
 * Every process is separate: the servers, a load generator (publishers, REST calls, the emitter)
 * and client workers (subscribers), each with its own raised file-descriptor limit and its own
 * loopback source address. Every loop is bounded in count and in time.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { coreCount } from './cpu';
import { FULL, SMOKE } from './harness';
import { methodNotes } from './notes';
import { brokerNode, portOpen } from './rabbit';
import { redisAnswers, REDIS_URL } from './redis-info';
import { markdown, writeResults, type BenchResults } from './report';
import { Run } from './bench-run';
import { measureAll, SCENARIOS, type Scenario } from './sections';
import type { Measured } from './bench-run';
import { targets } from './targets';

export interface RunOptions {
  mode: 'full' | 'smoke';
  outDir: string;
  only?: Scenario[];
  /**
   * Run the built service (dist/, built first if stale), as `npm start` does; `npm run bench` does
   * unless given --tsx. Through tsx, esbuild's keepNames gives every closure a `name` property of
   * its own, which cost each idle session about 2 KB the product never spends.
   */
  dist?: boolean;
  /** Profile the service of the fan-out and one-to-one runs (node --cpu-prof) into outDir/profiles. */
  cpuProf?: boolean;
  log?: (message: string) => void;
}

export async function runBench(options: RunOptions): Promise<BenchResults> {
  const started = Date.now();
  const log =
    options.log ??
    ((m: string) =>
      process.stdout.write(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s ${m}\n`));
  const sizes = options.mode === 'full' ? FULL : SMOKE;
  const only = new Set<Scenario>(options.only ?? SCENARIOS);
  // Other work on this machine may be restarting RabbitMQ (stop_app / start_app): give it 30 s.
  for (let i = 0; i < 30 && !(await portOpen(61613)); i++) await new Promise((r) => setTimeout(r, 1000));
  if (!(await portOpen(61613))) {
    throw new Error(
      'RabbitMQ STOMP (127.0.0.1:61613) does not answer: start RabbitMQ with rabbitmq_stomp enabled',
    );
  }
  if ((only.has('peers') || only.has('idle')) && !(await redisAnswers(REDIS_URL))) {
    throw new Error(
      `Redis (${REDIS_URL}) does not answer: the Socket.IO peer runs on it; start redis-server`,
    );
  }
  const root = resolve(__dirname, '../..');
  if (options.dist) buildIfStale(root);
  const node = await brokerNode();
  const loadAvgAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  const run = await Run.start({
    root,
    sizes,
    log,
    outDir: options.outDir,
    dist: options.dist ?? false,
    cpuProf: options.cpuProf ?? false,
    webStomp: await portOpen(15674),
  });
  run.notes.push(
    options.dist
      ? 'The service ran as `npm start` runs it: the tsc build in dist/.'
      : 'The service ran from its sources through tsx (--tsx), not as `npm start` runs it: esbuild keepNames gives every closure a name property of its own, about 2 KB more per idle session.',
  );
  if (loadAvgAtStart[0] > 0.5 * coreCount()) {
    run.notes.push(
      `The machine was busy at start (load ${loadAvgAtStart[0]}): other work adds noise to these figures.`,
    );
  }
  try {
    await measureAll(run, only);
  } finally {
    await run.stop();
  }

  const m = run.measured;
  const results: BenchResults = {
    date: new Date().toISOString(),
    mode: options.mode,
    durationS: Math.round((Date.now() - started) / 1000),
    machine: {
      cores: coreCount(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      rabbitmq: node.version ?? 'unknown',
      loadAvgAtStart,
      loadAvgAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
    },
    sizes,
    ...m,
    targets: targets(m),
    notes: [...methodNotes(node.fdTotal, sizes), ...run.notes],
  };
  mkdirSync(options.outDir, { recursive: true });
  if (options.only) keepUnmeasured(results, options.outDir, only);
  const written = writeResults(options.outDir, results);
  log(`wrote ${written.json} and ${written.md}`);
  return results;
}

/** `npm run build` unless dist/ is current (config/build.cjs --if-stale); throws if it fails. */
function buildIfStale(root: string): void {
  const built = spawnSync(process.execPath, ['config/build.cjs', '--if-stale'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (built.status !== 0)
    throw new Error(`building dist/ failed (exit ${built.status}): npm run build says why`);
}

/** The parts of the results each scenario fills. */
const SECTIONS: Record<Scenario, (keyof Measured)[]> = {
  fanout: ['fanout'],
  'one-to-one': ['oneToOne'],
  ceiling: ['ceiling'],
  peers: ['fanout', 'oneToOne'],
  idle: ['idle', 'peerIdle'],
  crowd: ['crowd'],
  bindings: ['bindings'],
  inbox: ['inboxPostgres', 'inboxService'],
};

/**
 * A run of some scenarios (--only) keeps the other sections of the results it replaces, so that
 * measuring one part again does not wipe RESULTS.md of the rest; a note says which run they are from.
 * fanout/one-to-one and peers share arrays: a part re-run replaces only its own rows.
 */
function keepUnmeasured(results: BenchResults, dir: string, only: Set<Scenario>): void {
  let previous: BenchResults;
  try {
    previous = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
  } catch {
    return; // no earlier run to keep anything from
  }
  const mine = (row: { processes: number; system: string }, scenario: Scenario): boolean =>
    scenario === 'peers'
      ? row.processes > 1 || row.system === 'socketio'
      : row.processes === 1 && row.system !== 'socketio';
  const kept: string[] = [];
  for (const scenario of SCENARIOS) {
    if (only.has(scenario)) continue;
    for (const key of SECTIONS[scenario]) {
      if (key === 'fanout' || key === 'oneToOne') {
        const old = (previous[key] as { processes: number; system: string }[]).filter((r) =>
          mine(r, scenario),
        );
        if (old.length > 0) {
          (results[key] as unknown[]).push(...old);
          kept.push(scenario);
        }
      } else if (key === 'ceiling' || key === 'crowd') {
        if (previous[key].length > 0 && results[key].length === 0) {
          results[key] = previous[key] as never;
          kept.push(scenario);
        }
      } else if (previous[key] && !results[key]) {
        (results as unknown as Record<string, unknown>)[key] = previous[key];
        kept.push(scenario);
      }
    }
  }
  if (kept.length === 0) return;
  results.targets = targets(results);
  results.notes.push(
    `This run measured only ${[...only].join(', ')}; ${[...new Set(kept)].join(', ')} ${kept.length === 1 ? 'is' : 'are'} kept from the run of ${previous.date} (mode ${previous.mode}), with that run's notes below.`,
    ...previous.notes.filter((n) => !results.notes.includes(n)),
  );
}

function parseArgs(argv: string[]): RunOptions {
  const options: RunOptions = { mode: 'full', outDir: __dirname, dist: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--smoke') options.mode = 'smoke';
    else if (arg === '--dist')
      options.dist = true; // the default; kept for older command lines
    else if (arg === '--tsx') options.dist = false;
    else if (arg === '--cpu-prof') options.cpuProf = true;
    else if (arg === '--out') options.outDir = resolve(argv[++i] ?? '.');
    else if (arg === '--only') {
      const names = (argv[++i] ?? '').split(',');
      const unknown = names.filter((n) => !(SCENARIOS as readonly string[]).includes(n));
      if (unknown.length > 0)
        throw new Error(`unknown scenario ${unknown.join(',')} (use ${SCENARIOS.join(',')})`);
      options.only = names as Scenario[];
    } else
      throw new Error(
        `unknown argument ${arg} (use --smoke, --only ${SCENARIOS.join(',')}, --out DIR, --tsx, --cpu-prof)`,
      );
  }
  return options;
}

if (require.main === module && process.argv[2] === '--rerender') {
  // Rewrites RESULTS.md from an existing results.json (after a change to the report's wording).
  const dir = resolve(process.argv[3] ?? __dirname);
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
  results.targets = targets(results);
  writeResults(dir, results);
  process.exit(0);
}

if (require.main === module) {
  let options: RunOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err: unknown) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  runBench(options).then(
    (results) => {
      process.stdout.write(`\n${markdown(results)}`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(
        `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
