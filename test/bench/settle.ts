/**
 * Before a measured phase: wait until the servers have finished what the phase before left them
 * (a flood's backlog of frames to write, a fan-out's queue drained after its subscribers left, the
 * GC behind them), so that a phase measures its own load and not the tail of another. Settled means
 * every server process below SETTLED_PERCENT of a core over SETTLED_WINDOWS windows in a row of
 * WINDOW_MS; bounded by `maxMs` (then the phase runs anyway and the figure says it did not settle).
 * The same rule for every system: the processes its clients are connected to (the stomp-relay
 * instances, the Socket.IO nodes, RabbitMQ for Web-STOMP direct). The backbones behind the first
 * two (RabbitMQ, Redis) are not waited for: what they owe shows as deliveries still due, which the
 * phase before already waited for, and RabbitMQ also serves the other work on this machine, whose
 * load would make the wait run out for reasons not the system's.
 */
import { CpuMeter } from './cpu';
import { sleep } from './harness';

const WINDOW_MS = 300;
const SETTLED_WINDOWS = 2;
const SETTLED_PERCENT = 10;

/** Groups of a setup's `pids` that are load, not server: never waited for. */
const LOAD_GROUPS = new Set(['clients', 'loadgen']);
/** Backbones: waited for only when they are what the clients connect to (Web-STOMP direct). */
const BACKBONE_GROUPS = new Set(['rabbitmq', 'redis']);

/** The groups of `pids` whose clients connect to them. */
function serverGroups(pids: Record<string, number[]>): [string, number[]][] {
  const servers = Object.entries(pids).filter(([name]) => !LOAD_GROUPS.has(name));
  const own = servers.filter(([name]) => !BACKBONE_GROUPS.has(name));
  return own.length > 0 ? own : servers;
}

export interface Settled {
  /** How long the wait took. */
  ms: number;
  /** False when `maxMs` ran out first. */
  settled: boolean;
  /** The busiest server process in the first window (name and % of a core): what was left to do. */
  busiestAtStart: { name: string; percent: number } | null;
}

/** Waits until every server process among `pids` is idle (see above), at most `maxMs`. */
export async function settle(pids: Record<string, number[]>, maxMs: number): Promise<Settled> {
  const each: Record<string, number[]> = {};
  for (const [name, list] of serverGroups(pids)) {
    list.forEach((pid, i) => {
      each[list.length > 1 ? `${name}[${i}]` : name] = [pid];
    });
  }
  if (Object.keys(each).length === 0) return { ms: 0, settled: true, busiestAtStart: null };
  const started = Date.now();
  let quiet = 0;
  let busiestAtStart: Settled['busiestAtStart'] = null;
  while (Date.now() - started < maxMs) {
    const meter = new CpuMeter(each);
    await sleep(WINDOW_MS);
    const shares = Object.entries(meter.stop().processes);
    const [name, percent] = shares.reduce((a, b) => (b[1] > a[1] ? b : a));
    busiestAtStart ??= { name, percent };
    quiet = percent < SETTLED_PERCENT ? quiet + 1 : 0;
    if (quiet >= SETTLED_WINDOWS) return { ms: Date.now() - started, settled: true, busiestAtStart };
  }
  return { ms: Date.now() - started, settled: false, busiestAtStart };
}
