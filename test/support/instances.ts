/**
 * Service instances as child processes relaying to the local RabbitMQ, for multi-instance tests and
 * measurements. Each child is `node --import tsx app/main.ts` (one process, so its pid is the one
 * that owns its broker sockets in `ss -tnp`), listens on a port the OS picks (PORT=0; the port is
 * read from the pino "listening" line, so no free-port race), and counts as started once /readyz
 * answers 200. All instances of one call share a JWT secret; tokens are signed here with it.
 *
 * Every child is SIGKILLed if this process exits first (mocha --exit, a crash), so a failing run
 * leaves no instance, and therefore no broker connection or auto-delete queue, behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import jwt from 'jsonwebtoken';
import { STOMP_URL } from './rabbitmq';
import { sleep } from './wait';

const PROJECT_ROOT = resolve(__dirname, '../..');
const LOG_LINES_KEPT = 200;

export interface InstanceOptions {
  /** INSTANCE_ID of each; default `<prefix><index+1>`. */
  ids?: string[];
  /** Prefix of generated ids; default `t<random>-` (unique per run: the ids name broker queues). */
  prefix?: string;
  /** DIRECTORY_ANNOUNCE_MS; default 500. */
  announceMs?: number;
  /** BROKER_HEARTBEAT_MS; default 2000. */
  brokerHeartbeatMs?: number;
  /** BROKER_RECONNECT_MAX_MS; default 1000, so a broker restart is noticed quickly. */
  reconnectMaxMs?: number;
  /** LOG_LEVEL; at least `info` (the port is read from a log line). Default `info`. */
  logLevel?: string;
  /** More environment, applied last. */
  env?: Record<string, string>;
  /** Shared JWT_SECRET; default a random one. */
  secret?: string;
  /** Time to become ready; default 30 s. */
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Instance {
  readonly id: string;
  readonly pid: number;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** ws://127.0.0.1:<port> */
  readonly wsUrl: string;
  readonly secret: string;
  /** A token this instance (and its siblings) accept: HS256, sub = user, `scope` claim. */
  token(user: string, scope?: string, ttlSeconds?: number): string;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** The last lines the child wrote (stdout and stderr), oldest first. */
  logs(): string[];
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`, then rejects). Idempotent. */
  stop(graceMs?: number): Promise<ExitStatus>;
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<ExitStatus>;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export function signToken(secret: string, user: string, scope = '', ttlSeconds = 600): string {
  return jwt.sign({ scope }, secret, { algorithm: 'HS256', subject: user, expiresIn: ttlSeconds });
}

class ChildInstance implements Instance {
  port = 0;
  private readonly lines: string[] = [];
  private status: ExitStatus | undefined;
  private readonly exit: Promise<ExitStatus>;
  private stopping: Promise<ExitStatus> | undefined;

  constructor(
    readonly id: string,
    readonly secret: string,
    private readonly child: ChildProcess,
  ) {
    children.add(child);
    this.exit = new Promise((done) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        this.status = { code, signal };
        done(this.status);
      });
    });
    child.once('error', (err) => this.keep(`spawn failed: ${err.message}`));
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get exited(): boolean {
    return this.status !== undefined;
  }

  token(user: string, scope = '', ttlSeconds = 600): string {
    return signToken(this.secret, user, scope, ttlSeconds);
  }

  logs(): string[] {
    return [...this.lines];
  }

  stop(graceMs = 20_000): Promise<ExitStatus> {
    this.stopping ??= (async () => {
      if (this.status) return this.status;
      this.child.kill('SIGTERM');
      const status = await Promise.race([this.exit, sleep(graceMs).then(() => undefined)]);
      if (status) return status;
      this.child.kill('SIGKILL');
      await this.exit;
      throw new Error(`${this.id} did not exit within ${graceMs} ms of SIGTERM (killed)`);
    })();
    return this.stopping;
  }

  async kill9(): Promise<ExitStatus> {
    if (!this.status) this.child.kill('SIGKILL');
    return this.exit;
  }

  /** Resolves once the port is known and /readyz is 200; rejects if the child exits first. */
  async ready(deadline: number): Promise<void> {
    let last = 'no "listening" line yet';
    for (;;) {
      if (this.status) {
        throw new Error(`${this.id} exited (${this.status.code ?? this.status.signal}) before it was ready`);
      }
      if (this.port !== 0) {
        try {
          const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
          if (res.status === 200) return;
          last = `readyz ${res.status} ${(await res.text()).slice(0, 200)}`;
        } catch (err: unknown) {
          last = err instanceof Error ? err.message : String(err);
        }
      }
      if (Date.now() >= deadline) throw new Error(`${this.id} not ready: ${last}`);
      await sleep(50);
    }
  }

  private onLine(line: string): void {
    this.keep(line);
    if (this.port !== 0 || !line.includes('listening on')) return;
    try {
      const entry = JSON.parse(line) as { port?: unknown };
      if (typeof entry.port === 'number') this.port = entry.port;
    } catch {
      // not a pino line; ignore
    }
  }

  private keep(line: string): void {
    this.lines.push(line);
    if (this.lines.length > LOG_LINES_KEPT) this.lines.shift();
  }
}

/** Starts `count` instances in parallel; resolves when all are ready (stops them all if one fails). */
export async function startInstances(count: number, options: InstanceOptions = {}): Promise<Instance[]> {
  const secret = options.secret ?? randomBytes(32).toString('base64url');
  const prefix = options.prefix ?? `t${randomBytes(3).toString('hex')}-`;
  const ids = options.ids ?? Array.from({ length: count }, (_, i) => `${prefix}${i + 1}`);
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  const instances = ids.slice(0, count).map((id) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        NODE_ENV: 'development',
        // JSON lines: read here (the listening port, the cluster's own log view), never a terminal's.
        LOG_FORMAT: 'json',
        PORT: '0',
        HOST: '127.0.0.1',
        INSTANCE_ID: id,
        BROKER_URL: STOMP_URL,
        AMQP_URL: '',
        JWT_SECRET: secret,
        JWT_PUBLIC_KEY: '',
        JWT_ISSUER: '',
        JWT_AUDIENCE: '',
        ALLOWED_ORIGINS: '*',
        LOG_LEVEL: options.logLevel ?? 'info',
        DIRECTORY_ANNOUNCE_MS: String(options.announceMs ?? 500),
        BROKER_HEARTBEAT_MS: String(options.brokerHeartbeatMs ?? 2000),
        BROKER_RECONNECT_MAX_MS: String(options.reconnectMaxMs ?? 1000),
        ...options.env,
      },
    });
    return new ChildInstance(id, secret, child);
  });
  const results = await Promise.allSettled(instances.map((instance) => instance.ready(deadline)));
  const failed = results.findIndex((r) => r.status === 'rejected');
  if (failed >= 0) {
    await Promise.allSettled(instances.map((instance) => instance.kill9()));
    const result = results[failed] as PromiseRejectedResult;
    const reason = result.reason instanceof Error ? result.reason.message : String(result.reason);
    throw new Error(`${reason}\n${instances[failed].logs().slice(-20).join('\n')}`);
  }
  return instances;
}

/** Stops every instance still running (SIGTERM, in parallel); resolves with each exit status. */
export function stopInstances(instances: readonly Instance[]): Promise<ExitStatus[]> {
  return Promise.all(instances.map((instance) => instance.stop()));
}
