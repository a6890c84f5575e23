/**
 * A local stomp-relay cluster without Docker: N instances as child processes relaying to the local
 * RabbitMQ, and nginx (from PATH, unprivileged) in front running docker/nginx/nginx.conf, the same
 * file docker compose mounts. `npm run cluster` (test/cluster/main.ts) and the browser test both
 * start it through startCluster(), so what a developer clicks through is what the test checks.
 *
 * nginx.conf includes two per-cluster files relative to its own directory (cluster/server.conf and
 * cluster/upstream-servers.conf). Here the scratch directory gets a symlink to the shared file and
 * its own pair, so the routing and hashing rules exist once, in docker/nginx/nginx.conf.
 *
 * Ports: fixed ones for `npm run cluster` (8080, 8081..), or 0 for free ones, so a test never
 * collides with a cluster someone is running on the same machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { sleep } from './wait';

export const PROJECT_ROOT = resolve(__dirname, '../..');
export const SHARED_NGINX_CONF = join(PROJECT_ROOT, 'docker/nginx/nginx.conf');
export const DEFAULT_BROKER_URL = 'stomp://guest:guest@127.0.0.1:61613';

export interface ClusterOptions {
  /** Instances. Default 3. */
  instances?: number;
  /** Port of the first instance, the others follow it. 0: a free port for each. Default 8081. */
  basePort?: number;
  /** nginx's port. 0: a free one. Default 8080. */
  lbPort?: number;
  /** INSTANCE_ID is this plus 1, 2, ... Default `node-`. Unique per run in tests: the ids name broker queues. */
  instancePrefix?: string;
  /** Default: BROKER_URL from the environment, else the local RabbitMQ's STOMP port. */
  brokerUrl?: string;
  /** `dist`: node dist/app/main.js (build first). `source`: app/main.ts through tsx. Default `source`. */
  runtime?: 'dist' | 'source';
  /** LOG_LEVEL of the instances. Default `info`. */
  logLevel?: string;
  /** More environment for every instance (after the cluster's own settings, so it wins). */
  env?: Record<string, string>;
  /** Every output line of every process; `source` is an instance id or `nginx`. */
  onLog?: (source: string, line: string) => void;
  /** Every line of nginx's access log (which instance served which request), as it is written. */
  onAccessLog?: (line: string) => void;
  /** A process ended while the cluster was not stopping (a crash, or someone's `kill`). */
  onExit?: (source: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** How long instances and nginx get to become ready. Default 60 s. */
  readyTimeoutMs?: number;
}

export interface ClusterInstance {
  id: string;
  port: number;
  url: string;
  pid: number;
}

export interface Cluster {
  /** nginx: the page, /ws, /stomp and /api as users reach them. */
  lbUrl: string;
  lbPort: number;
  instances: ClusterInstance[];
  instanceUrls: string[];
  /** JWT_SECRET shared by the instances (random per cluster). */
  secret: string;
  /** The scratch directory nginx runs from (its prefix). */
  nginxDir: string;
  nginxPid: number;
  /** The last lines every process logged, oldest first, for failure messages. */
  recentLogs(): string[];
  /** nginx's access log so far: `... upstream=127.0.0.1:<port> key=<hash key>` per request. */
  accessLog(): string[];
  /** nginx first (no new connections), then every instance (SIGTERM: they drain). Idempotent. */
  stop(): Promise<void>;
}

/** Where nginx is: PATH, then the sbin directories packages install it to (not on a user's PATH). */
export function findNginx(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/bin']) {
    const candidate = join(dir, 'nginx');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; next directory
    }
  }
  return undefined;
}

/** A port nothing listens on right now on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('no port from listen(0)'));
      });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveFree(true)));
  });
}

export interface NginxLayout {
  /** The prefix directory: nginx.conf (symlink to the shared file), cluster/, temp dirs, pid. */
  dir: string;
  conf: string;
  pidFile: string;
  accessLog: string;
}

/**
 * Lays out `dir` for nginx: a link to docker/nginx/nginx.conf and the local half of the
 * per-cluster pair (listen on 127.0.0.1 only: the dev token endpoint is open in development).
 */
export function writeNginxConfig(dir: string, lbPort: number, upstreamPorts: readonly number[]): NginxLayout {
  mkdirSync(join(dir, 'cluster'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  symlinkSync(SHARED_NGINX_CONF, conf);
  // The access log goes to a file: nginx cannot open /dev/stdout when that is a socket (Node's pipes).
  const accessLog = join(dir, 'access.log');
  const server = [`listen 127.0.0.1:${lbPort};`, `access_log ${accessLog} stomp_relay;`];
  writeFileSync(
    join(dir, 'cluster/server.conf'),
    `# written by test/support/cluster.ts\n${server.join('\n')}\n`,
  );
  const servers = upstreamPorts.map((port) => `server 127.0.0.1:${port} max_fails=1 fail_timeout=5s;`);
  writeFileSync(
    join(dir, 'cluster/upstream-servers.conf'),
    `# written by test/support/cluster.ts\n${servers.join('\n')}\n`,
  );
  return { dir, conf, pidFile: join(dir, 'nginx.pid'), accessLog };
}

/** nginx's arguments for a layout: unprivileged, foreground, errors to stderr. */
export function nginxArgs(layout: NginxLayout): string[] {
  return [
    '-p',
    `${layout.dir}/`,
    '-c',
    layout.conf,
    '-e',
    'stderr',
    '-g',
    `daemon off; pid ${layout.pidFile};`,
  ];
}

const LOG_LINES_KEPT = 300;

/** A started process's pid. Never a stand-in: process.kill(-1 or 0) would signal far more than it. */
function pidOf(source: string, child: ChildProcess): number {
  if (child.pid === undefined) throw new Error(`${source} did not start`);
  return child.pid;
}

function readLines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

/** Calls `onLine` with each line appended to `path` from now on (polling; nginx writes it). */
function tailFile(path: string, onLine: (line: string) => void): () => void {
  let offset = 0;
  let partial = '';
  const timer = setInterval(() => {
    if (!existsSync(path)) return;
    const size = statSync(path).size;
    if (size <= offset) return;
    const buffer = Buffer.alloc(size - offset);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, offset);
    } finally {
      closeSync(fd);
    }
    offset = size;
    const lines = (partial + buffer.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  }, 250);
  timer.unref();
  return () => clearInterval(timer);
}

interface Managed {
  source: string;
  child: ChildProcess;
  /** Resolves when the process has exited, or never started (a spawn error). */
  exited: Promise<void>;
  ended: boolean;
}

/** Sends `signal`, waits up to `graceMs` for the exit, then SIGKILLs. */
async function terminate(proc: Managed, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const { child } = proc;
  if (proc.ended) return;
  child.kill(signal);
  const exitedInTime = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!exitedInTime) {
    child.kill('SIGKILL');
    await proc.exited;
  }
}

async function waitUntilReady(url: string, proc: Managed, deadline: number): Promise<void> {
  let last: string;
  for (;;) {
    if (proc.ended) {
      const how = proc.child.exitCode ?? proc.child.signalCode ?? 'did not start';
      throw new Error(`${proc.source} exited (${how}) before it was ready`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status} ${(await res.text()).slice(0, 200)}`;
    } catch (err: unknown) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) throw new Error(`${proc.source} not ready at ${url}: ${last}`);
    await sleep(250);
  }
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.instances ?? 3;
  const basePort = options.basePort ?? 8081;
  const prefix = options.instancePrefix ?? 'node-';
  const runtime = options.runtime ?? 'source';
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  const secret = randomBytes(32).toString('base64url');
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx not found on PATH or in /usr/sbin; install it (apt-get install nginx)');

  const lbPort = options.lbPort === 0 ? await freePort() : (options.lbPort ?? 8080);
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(basePort === 0 ? await freePort() : basePort + i);
  for (const port of [lbPort, ...ports]) {
    if (!(await portFree(port))) throw new Error(`port ${port} is in use (another cluster running?)`);
  }

  const logs: string[] = [];
  const processes: Managed[] = [];
  let stopping: Promise<void> | undefined;

  const manage = (source: string, child: ChildProcess): Managed => {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        logs.push(`[${source}] ${line}`);
        if (logs.length > LOG_LINES_KEPT) logs.shift();
        options.onLog?.(source, line);
      });
    }
    let markEnded = (): void => undefined;
    const proc: Managed = { source, child, ended: false, exited: new Promise((done) => (markEnded = done)) };
    child.once('exit', (code, signal) => {
      proc.ended = true;
      markEnded();
      if (!stopping) options.onExit?.(source, code, signal);
    });
    // A spawn failure (ENOENT, EACCES) may come without an exit event.
    child.once('error', (err) => {
      logs.push(`[${source}] ${err.message}`);
      if (child.pid === undefined) {
        proc.ended = true;
        markEnded();
      }
    });
    processes.push(proc);
    return proc;
  };

  // mocha's --exit and a crashed launcher must not leave instances or nginx behind.
  const killAll = (): void => {
    for (const proc of processes) if (!proc.ended) proc.child.kill('SIGKILL');
  };
  process.once('exit', killAll);

  const nginxDir = mkdtempSync(join(tmpdir(), 'stomp-relay-nginx-'));
  let stopTail = (): void => undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const [lb, ...instances] = processes;
      if (lb) await terminate(lb, 'SIGTERM', 5_000);
      await Promise.all(instances.map((proc) => terminate(proc, 'SIGTERM', 15_000)));
      process.removeListener('exit', killAll);
      stopTail();
      rmSync(nginxDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    const layout = writeNginxConfig(nginxDir, lbPort, ports);
    if (options.onAccessLog) stopTail = tailFile(layout.accessLog, options.onAccessLog);
    const lb = manage('nginx', spawn(nginx, nginxArgs(layout), { stdio: ['ignore', 'pipe', 'pipe'] }));

    const origins = [`http://localhost:${lbPort}`, `http://127.0.0.1:${lbPort}`].join(',');
    // --import tsx, not -r tsx/cjs: app/ has dynamic import()s, which only the ESM hook resolves.
    const entry = runtime === 'dist' ? ['dist/app/main.js'] : ['--import', 'tsx', 'app/main.ts'];
    const instances: ClusterInstance[] = [];
    const started: Managed[] = [];
    ports.forEach((port, i) => {
      const id = `${prefix}${i + 1}`;
      const env = {
        ...process.env,
        NODE_ENV: 'development',
        // JSON lines: the cluster script prints them its own way, labelled by instance.
        LOG_FORMAT: 'json',
        PORT: String(port),
        HOST: '127.0.0.1',
        INSTANCE_ID: id,
        BROKER_URL: options.brokerUrl ?? process.env.BROKER_URL ?? DEFAULT_BROKER_URL,
        JWT_SECRET: secret,
        ALLOWED_ORIGINS: origins,
        LOG_LEVEL: options.logLevel ?? 'info',
        ...options.env,
      };
      const child = spawn(process.execPath, entry, {
        cwd: PROJECT_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      started.push(manage(id, child));
      instances.push({ id, port, url: `http://127.0.0.1:${port}`, pid: pidOf(id, child) });
    });

    await Promise.all(
      started.map((proc, i) => waitUntilReady(`${instances[i]!.url}/readyz`, proc, deadline)),
    );
    const lbUrl = `http://127.0.0.1:${lbPort}`;
    // Through nginx to some instance and back: proves the config loaded and routes.
    await waitUntilReady(`${lbUrl}/readyz`, lb, deadline);

    return {
      lbUrl,
      lbPort,
      instances,
      instanceUrls: instances.map((instance) => instance.url),
      secret,
      nginxDir,
      nginxPid: pidOf('nginx', lb.child),
      recentLogs: () => [...logs],
      accessLog: () => readLines(layout.accessLog),
      stop,
    };
  } catch (err: unknown) {
    await stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`cluster did not start: ${reason}\n${logs.slice(-40).join('\n')}`, { cause: err });
  }
}
