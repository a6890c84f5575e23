/**
 * A local stomp-relay cluster without Docker: N instances as child processes relaying to the local
 * RabbitMQ, and nginx (test/support/nginx.ts: unprivileged, docker/nginx/nginx.conf, the same file
 * docker compose mounts) in front, over HTTP and optionally HTTPS with a fresh development
 * certificate. `npm run cluster` (test/cluster/main.ts) and the browser test both start it through
 * startCluster(), so what a developer clicks through is what the test checks.
 *
 * Order, both ways. Start: the instances, and nginx once they are all ready (an nginx that starts
 * first only meets refused connections). Stop: nginx stops accepting (SIGQUIT, graceful: open
 * connections stay), the instances drain (SIGTERM: their ERROR frames still reach clients through
 * nginx), then nginx exits and the scratch directory goes. Every child runs in its own process
 * group, so a terminal's Ctrl-C reaches only the launcher, which runs that order; if the launcher
 * exits without it, its exit hook kills the children and removes the directory.
 *
 * Ports: fixed ones for `npm run cluster` (8080, 8081..), or 0 for free ones, so a test never
 * collides with a cluster someone is running on the same machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { findNginx, makeCertificate, nginxArgs, writeNginxConfig, type TlsFiles } from './nginx';
import { sleep } from './wait';

export const PROJECT_ROOT = resolve(__dirname, '../..');
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
  /** nginx's HTTPS port (wss:// and https://, a fresh development certificate). 0: a free one. Default: none. */
  tlsPort?: number;
  /** Aborting it during the start stops what was started and rejects (a Ctrl-C while waiting). */
  signal?: AbortSignal;
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
  /** nginx over TLS (when `tlsPort` was given): https://localhost:<port>, the certificate's name. */
  lbTlsUrl?: string;
  /** The development certificate nginx serves, and the CA a client trusts for it. */
  tls?: TlsFiles;
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
  /** SIGTERM to instance `index` (it drains), then the same instance again on its port, ready. */
  restartInstance(index: number): Promise<void>;
  /** nginx stops accepting, every instance drains (SIGTERM), nginx exits, the files go. Idempotent. */
  stop(): Promise<void>;
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

/** True if `proc` exits within `ms`. */
function exitsWithin(proc: Managed, ms: number): Promise<boolean> {
  return Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
}

/**
 * SIGKILL to the child's whole process group (it leads one: `detached`). nginx's workers outlive a
 * master killed alone, still holding its ports.
 */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Sends `signal`, waits up to `graceMs` for the exit, then SIGKILLs its process group. */
async function terminate(proc: Managed, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (proc.ended) return;
  proc.child.kill(signal);
  if (!(await exitsWithin(proc, graceMs))) {
    killGroup(proc.child);
    await proc.exited;
  }
}

async function waitUntilReady(
  url: string,
  proc: Managed,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  let last: string;
  for (;;) {
    if (signal?.aborted) throw new Error('the start was interrupted');
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

/** An instance's process settings: the cluster's own, then `options.env` (which wins). */
function instanceEnv(options: ClusterOptions, id: string, port: number, secret: string, origins: string[]) {
  return {
    ...process.env,
    NODE_ENV: 'development',
    // JSON lines: the cluster script prints them its own way, labelled by instance.
    LOG_FORMAT: 'json',
    PORT: String(port),
    HOST: '127.0.0.1',
    INSTANCE_ID: id,
    BROKER_URL: options.brokerUrl ?? process.env.BROKER_URL ?? DEFAULT_BROKER_URL,
    JWT_SECRET: secret,
    ALLOWED_ORIGINS: origins.join(','),
    LOG_LEVEL: options.logLevel ?? 'info',
    ...options.env,
  };
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.instances ?? 3;
  const basePort = options.basePort ?? 8081;
  const prefix = options.instancePrefix ?? 'node-';
  const runtime = options.runtime ?? 'source';
  const readyMs = options.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + readyMs;
  const secret = randomBytes(32).toString('base64url');
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx not found on PATH or in /usr/sbin; install it (apt-get install nginx)');

  const lbPort = options.lbPort === 0 ? await freePort() : (options.lbPort ?? 8080);
  const tlsPort = options.tlsPort === 0 ? await freePort() : options.tlsPort;
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(basePort === 0 ? await freePort() : basePort + i);
  for (const port of [lbPort, ...(tlsPort === undefined ? [] : [tlsPort]), ...ports]) {
    if (!(await portFree(port))) throw new Error(`port ${port} is in use (another cluster running?)`);
  }

  const logs: string[] = [];
  const processes = new Set<Managed>();
  let stopping: Promise<void> | undefined;

  const manage = (source: string, child: ChildProcess, quietExit: () => boolean): Managed => {
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
      processes.delete(proc);
      markEnded();
      if (!stopping && !quietExit()) options.onExit?.(source, code, signal);
    });
    // A spawn failure (ENOENT, EACCES) may come without an exit event.
    child.once('error', (err) => {
      logs.push(`[${source}] ${err.message}`);
      if (child.pid === undefined) {
        proc.ended = true;
        processes.delete(proc);
        markEnded();
      }
    });
    processes.add(proc);
    return proc;
  };

  const nginxDir = mkdtempSync(join(tmpdir(), 'stomp-relay-nginx-'));
  // mocha's --exit, a crashed launcher, a second Ctrl-C: no instance, nginx or directory is left.
  const killAll = (): void => {
    for (const proc of processes) killGroup(proc.child);
    rmSync(nginxDir, { recursive: true, force: true });
  };
  process.once('exit', killAll);

  const lbHosts = ['localhost', '127.0.0.1'];
  const origins = [
    ...lbHosts.map((host) => `http://${host}:${lbPort}`),
    ...(tlsPort === undefined ? [] : lbHosts.map((host) => `https://${host}:${tlsPort}`)),
  ];
  // --import tsx, not -r tsx/cjs: app/ has dynamic import()s, which only the ESM hook resolves.
  const entry = runtime === 'dist' ? ['dist/app/main.js'] : ['--import', 'tsx', 'app/main.ts'];
  const instances: ClusterInstance[] = [];
  const instanceProcs: Managed[] = [];
  const restarting = new Set<number>();
  const spawnInstance = (index: number): Managed => {
    const id = `${prefix}${index + 1}`;
    const port = ports[index]!;
    const child = spawn(process.execPath, entry, {
      cwd: PROJECT_ROOT,
      env: instanceEnv(options, id, port, secret, origins),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: signals come from this launcher only (see the top of this file).
      detached: true,
    });
    const proc = manage(id, child, () => restarting.has(index));
    instanceProcs[index] = proc;
    instances[index] = { id, port, url: `http://127.0.0.1:${port}`, pid: pidOf(id, child) };
    return proc;
  };

  let lb: Managed | undefined;
  let stopTail = (): void => undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Graceful: nginx closes its listeners and keeps proxying what is open, so the drain's
      // ERROR frames reach the clients; it exits once they are closed (worker_shutdown_timeout).
      if (lb && !lb.ended) lb.child.kill('SIGQUIT');
      await Promise.all(instanceProcs.map((proc) => terminate(proc, 'SIGTERM', 15_000)));
      if (lb && !(await exitsWithin(lb, 12_000))) await terminate(lb, 'SIGTERM', 3_000);
      process.removeListener('exit', killAll);
      stopTail();
      rmSync(nginxDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    ports.forEach((_, i) => spawnInstance(i));
    await Promise.all(
      instanceProcs.map((proc, i) =>
        waitUntilReady(`${instances[i]!.url}/readyz`, proc, deadline, options.signal),
      ),
    );

    const tls = tlsPort === undefined ? undefined : makeCertificate(join(nginxDir, 'tls'));
    const layout = writeNginxConfig(nginxDir, { httpPort: lbPort, httpsPort: tlsPort, tls }, ports);
    if (options.onAccessLog) stopTail = tailFile(layout.accessLog, options.onAccessLog);
    lb = manage(
      'nginx',
      spawn(nginx, nginxArgs(layout), { stdio: ['ignore', 'pipe', 'pipe'], detached: true }),
      () => false,
    );
    const lbUrl = `http://127.0.0.1:${lbPort}`;
    // Through nginx to some instance and back: proves the config loaded and routes.
    await waitUntilReady(`${lbUrl}/readyz`, lb, deadline, options.signal);

    const restartInstance = async (index: number): Promise<void> => {
      const proc = instanceProcs[index];
      if (!proc) throw new Error(`no instance ${index}`);
      restarting.add(index);
      try {
        await terminate(proc, 'SIGTERM', 15_000);
        const fresh = spawnInstance(index);
        await waitUntilReady(`${instances[index]!.url}/readyz`, fresh, Date.now() + readyMs);
      } finally {
        restarting.delete(index);
      }
    };

    return {
      lbUrl,
      lbPort,
      lbTlsUrl: tlsPort === undefined ? undefined : `https://localhost:${tlsPort}`,
      tls,
      instances,
      instanceUrls: instances.map((instance) => instance.url),
      secret,
      nginxDir,
      nginxPid: pidOf('nginx', lb.child),
      recentLogs: () => [...logs],
      accessLog: () => readLines(layout.accessLog),
      restartInstance,
      stop,
    };
  } catch (err: unknown) {
    await stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`cluster did not start: ${reason}\n${logs.slice(-40).join('\n')}`, { cause: err });
  }
}
