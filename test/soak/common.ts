/**
 * What the phases of `npm run soak` share (test/soak/soak.ts runs them): options, the log and the
 * list of failed checks, the instances they start (child processes, stopped if the soak fails
 * half-way) and the per-message trace lines those instances log, kept by message id so that a
 * lost message can be printed with every step it took.
 */
import { readFileSync } from 'node:fs';
import { startCluster, type Cluster } from '../support/cluster';

/** `--<name> <value>` on the command line, else SOAK_<NAME> in the environment, else `fallback`. */
export function option(name: string, fallback: string): string {
  const flag = process.argv.indexOf(`--${name}`);
  if (flag >= 0 && process.argv[flag + 1] !== undefined) return process.argv[flag + 1]!;
  return process.env[`SOAK_${name.toUpperCase().replace(/-/g, '_')}`] ?? fallback;
}

/** The checks that failed so far: the soak exits 1 if any did. */
export const problems: string[] = [];
export const log = (line: string): void =>
  console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);
export const check = (ok: boolean, what: string): void => {
  if (!ok) problems.push(what);
  log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
};

export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Clusters still running: stopped (SIGTERM, nginx included) if the soak fails half-way. */
export const liveClusters = new Set<Cluster>();

/**
 * Per-message trace lines of the instances (LOG_LEVEL=trace, app/observability/trace.ts), by
 * message id: where a lost push got to, step by step, printed with the loss.
 */
export const traces = new Map<string, string[]>();

function keepTrace(source: string, line: string): boolean {
  if (!line.includes('"msg":"message trace"')) return false;
  try {
    const entry = JSON.parse(line) as { time?: number; trace?: string; step?: string } & Record<
      string,
      unknown
    >;
    if (typeof entry.trace !== 'string') return true;
    const fields: Record<string, unknown> = { ...entry };
    for (const name of ['level', 'time', 'trace', 'step', 'msg', 'pid', 'hostname'])
      Reflect.deleteProperty(fields, name);
    const { time, trace, step } = entry;
    const at = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '?';
    const lines = traces.get(trace) ?? [];
    lines.push(`${at} ${source} ${String(step)} ${JSON.stringify(fields)}`);
    traces.set(trace, lines);
  } catch {
    // not JSON after all: ignore
  }
  return true;
}

/**
 * `count` instances on free ports. Stopping them checks that none died during the run, except
 * those `expectedExit` names (a phase that kills one on purpose).
 */
export async function startInstances(
  count: number,
  prefix: string,
  env: Record<string, string>,
  logLevel = 'warn',
  expectedExit: (source: string) => boolean = () => false,
): Promise<Cluster> {
  const exits: string[] = [];
  const cluster = await startCluster({
    instances: count,
    basePort: 0,
    lbPort: 0,
    instancePrefix: prefix,
    logLevel,
    env,
    onLog: (source, line) => {
      if (keepTrace(source, line)) return;
      if (/"level":(50|60)/.test(line)) log(`${source}: ${line.slice(0, 300)}`);
    },
    onExit: (source, code, signal) => {
      if (!expectedExit(source)) exits.push(`${source} exited (${code ?? signal})`);
    },
  });
  const stop = cluster.stop.bind(cluster);
  liveClusters.add(cluster);
  cluster.stop = async () => {
    liveClusters.delete(cluster);
    check(exits.length === 0, `no instance died during the run ${exits.length ? JSON.stringify(exits) : ''}`);
    await stop();
  };
  return cluster;
}
