/**
 * The harness's side of the load processes: spawns them (each through bash so that it gets its own
 * raised file-descriptor limit), sends commands, awaits answers with a time limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { CeilingConsumerArgs } from './amqp-ceiling';
import type { PublishArgs } from './publishers';
import type { PumpResult } from './pump';
import type { PhaseWindow, StatsData } from './stats';
import type { ClientSendArgs, OpenArgs, OpenResult } from './worker';

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Open files a load or server process asks for unless told otherwise. */
export const DEFAULT_FD_LIMIT = 65536;

/**
 * `ulimit -n want` in the shell that execs `command`: the soft limit when the hard one allows it,
 * else the hard limit raised too (which root with CAP_SYS_RESOURCE may), else as far as the hard
 * limit goes. Only the bench's own processes get it; the product's defaults are not touched.
 */
export function raisedFdLimit(command: string, want = DEFAULT_FD_LIMIT): string[] {
  return [
    '-c',
    `ulimit -n ${want} 2>/dev/null || { ulimit -Hn ${want} && ulimit -n ${want}; } 2>/dev/null || ` +
      `ulimit -n "$(ulimit -Hn)"; exec ${command}`,
  ];
}

export function quote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export class LoadWorker {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  private constructor(
    readonly index: number,
    readonly localAddress: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new Error(`worker ${index}: ${reply.error}`));
    });
    // Sending to a worker that has just died: the send's own promise is rejected (call()).
    child.on('error', () => undefined);
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`worker ${index} exited (${code})`));
      this.pending.clear();
    });
  }

  static async start(index: number, cwd: string): Promise<LoadWorker> {
    const script = join(__dirname, 'worker.ts');
    const child = spawn(
      'bash',
      raisedFdLimit(`${quote(process.execPath)} --require tsx/cjs ${quote(script)}`),
      {
        cwd,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    // Source addresses 127.0.0.2.., one per worker: ports are per (source, destination) pair.
    const worker = new LoadWorker(index, `127.0.0.${2 + index}`, child);
    await worker.call({ cmd: 'reset' }, 30_000);
    return worker;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  open(args: OpenArgs): Promise<OpenResult> {
    return this.call({ cmd: 'open', args }, args.maxMs + args.timeoutMs + 10_000) as Promise<OpenResult>;
  }

  /** Starts a phase: statistics from zero, counting only what was sent within `window`. */
  reset(window?: PhaseWindow): Promise<unknown> {
    return this.call({ cmd: 'reset', args: window }, 10_000);
  }

  stats(): Promise<StatsData> {
    return this.call({ cmd: 'stats' }, 10_000) as Promise<StatsData>;
  }

  count(): Promise<{ received: number; lastAt: number; clients: number }> {
    return this.call({ cmd: 'count' }, 10_000) as Promise<{
      received: number;
      lastAt: number;
      clients: number;
    }>;
  }

  clientSend(args: ClientSendArgs): Promise<PumpResult> {
    return this.call(
      { cmd: 'clientSend', args },
      args.maxMs + (args.graceMs ?? 5000) + 10_000,
    ) as Promise<PumpResult>;
  }

  /** Starts the AMQP ceiling's consumer in this worker (stopped by close()). */
  consumeCeiling(args: CeilingConsumerArgs): Promise<unknown> {
    return this.call({ cmd: 'consumeCeiling', args }, 60_000);
  }

  publish(args: PublishArgs): Promise<PumpResult> {
    return this.call(
      { cmd: 'publish', args },
      args.maxMs + (args.graceMs ?? 5000) + 30_000,
    ) as Promise<PumpResult>;
  }

  close(): Promise<{ closed: number }> {
    return this.call({ cmd: 'close' }, 60_000) as Promise<{ closed: number }>;
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
    setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
  }

  private call(message: object, timeoutMs: number): Promise<unknown> {
    const id = ++this.seq;
    if (!this.child.connected) return Promise.reject(new Error(`worker ${this.index} is gone`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(
            `worker ${this.index}: no answer within ${timeoutMs} ms to ${JSON.stringify(message).slice(0, 80)}`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ ...message, id }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new Error(`worker ${this.index}: ${err.message}`));
      });
    });
  }
}
