/**
 * The measured servers, each in its own process: the service (relaying to RabbitMQ), the bare-ws
 * ceiling server and Socket.IO nodes (socketio-server.ts). Plus what we read about a process from outside: RSS from /proc/<pid>/status and
 * its TCP connections to RabbitMQ from `ss`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { quote, raisedFdLimit } from './workers';

const execFileAsync = promisify(execFile);

export interface ServiceOptions {
  root: string;
  secret: string;
  instanceId: string;
  brokerUrl: string;
  /** Run dist/app/main.js (after `npm run build`) instead of app/main.ts through tsx. */
  dist: boolean;
  /** Write a V8 CPU profile (node --cpu-prof) into this directory when the service exits. */
  cpuProfDir?: string;
  /** Open the V8 inspector on a free loopback port so that the harness can force a full GC. */
  inspect?: boolean;
  env?: Record<string, string>;
  /** Open files to ask for (workers.ts raisedFdLimit); the default suits up to ~20,000 sessions. */
  fdLimit?: number;
}

export interface Spawned {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
  /** Full garbage collection in the service (HeapProfiler.collectGarbage), when started with `inspect`. */
  collectGarbage?(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Servers we started: killed if the harness exits without stopping them (a crash, ^C). */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(130));
}

function stopper(child: ChildProcess, graceMs: number): () => Promise<void> {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
}

export async function startService(options: ServiceOptions): Promise<Spawned> {
  const port = await freePort();
  const prof =
    (options.cpuProfDir ? `--cpu-prof --cpu-prof-dir=${quote(options.cpuProfDir)} ` : '') +
    (options.inspect ? '--inspect=127.0.0.1:0 ' : '');
  const entry = options.dist
    ? quote(join(options.root, 'dist/app/main.js'))
    : `--require tsx/cjs ${quote(join(options.root, 'app/main.ts'))}`;
  const stderr: string[] = [];
  const child = spawn('bash', raisedFdLimit(`${quote(process.execPath)} ${prof}${entry}`, options.fdLimit), {
    cwd: options.root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '0.0.0.0',
      INSTANCE_ID: options.instanceId,
      BROKER_URL: options.brokerUrl,
      JWT_SECRET: options.secret,
      LOG_LEVEL: 'warn',
      AUTHORIZATION_FILE: join(__dirname, 'authorization.json'),
      // A load generator is one client sending far more than a browser would.
      MAX_FRAMES_PER_SECOND: '1000000',
      MAX_FRAMES_IN_FLIGHT: '4096',
      ...options.env,
    },
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 50) stderr.push(chunk.toString());
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the service exited (${child.exitCode}): ${stderr.join('').slice(0, 2000)}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the service was not ready within 30 s: ${stderr.join('').slice(0, 2000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(stderr.join(''))?.[1];
  return {
    pid: child.pid!,
    port,
    url,
    stop: stopper(child, 15_000),
    collectGarbage: inspector ? () => inspectorCall(inspector, 'HeapProfiler.collectGarbage') : undefined,
  };
}

/** One call of the V8 inspector protocol on its own short-lived connection. */
function inspectorCall(url: string, method: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`inspector: no answer to ${method} within 30 s`));
    }, 30_000);
    ws.once('open', () => ws.send(JSON.stringify({ id: 1, method })));
    ws.on('message', (data: Buffer) => {
      if ((JSON.parse(data.toString()) as { id?: number }).id !== 1) return;
      clearTimeout(timer);
      ws.close();
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export function startBareWs(root: string): Promise<Spawned> {
  return startScript(root, 'bare-ws-server.ts', {}, { graceMs: 5000 });
}

export interface SocketIoNodeOptions {
  root: string;
  redisUrl: string;
  /** The adapter's key: the Redis channel prefix this run's nodes and emitter share. */
  key: string;
  secret: string;
}

/** One Socket.IO node (socketio-server.ts) on a free port, on the local Redis. */
export function startSocketIoNode(options: SocketIoNodeOptions): Promise<Spawned> {
  return startScript(
    options.root,
    'socketio-server.ts',
    { REDIS_URL: options.redisUrl, SOCKETIO_KEY: options.key, JWT_SECRET: options.secret },
    // The inspector, so that the idle run can force a full GC before reading RSS, as for the service.
    { graceMs: 5000, inspect: true },
  );
}

/** A server script of test/bench/ that prints `{"port":N}` on its first line once listening. */
async function startScript(
  root: string,
  file: string,
  env: Record<string, string>,
  options: { graceMs: number; inspect?: boolean },
): Promise<Spawned> {
  const script = join(__dirname, file);
  const inspect = options.inspect ? '--inspect=127.0.0.1:0 ' : '';
  const child = spawn(
    'bash',
    raisedFdLimit(`${quote(process.execPath)} ${inspect}--require tsx/cjs ${quote(script)}`),
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  const stderr: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 50) stderr.push(chunk.toString());
  });
  const stop = stopper(child, options.graceMs);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${file} did not start within 20 s`)), 20_000);
      let out = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${file} exited (${code}): ${stderr.join('').slice(0, 2000)}`));
      });
    });
    const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(stderr.join(''))?.[1];
    return {
      pid: child.pid!,
      port,
      url: `ws://127.0.0.1:${port}`,
      stop,
      collectGarbage: inspector ? () => inspectorCall(inspector, 'HeapProfiler.collectGarbage') : undefined,
    };
  } catch (err: unknown) {
    await stop();
    throw err;
  }
}

/** Open-files limit (soft) of process `pid`. */
export function openFilesLimit(pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Whether this process may raise a hard resource limit (CAP_SYS_RESOURCE, bit 24 of CapEff). */
export function mayRaiseHardLimits(): boolean {
  const m = /^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? (BigInt(`0x${m[1]}`) & (1n << 24n)) !== 0n : false;
}

/** Resident set size of `pid`, in KiB (VmRSS). */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Established TCP connections of process `pid` to each of `ports` (as `ss -tnp` shows them). */
export async function tcpConnections(pid: number, ports: number[]): Promise<Record<number, number>> {
  const { stdout } = await execFileAsync('ss', ['-tnpH', 'state', 'established'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const counts: Record<number, number> = Object.fromEntries(ports.map((p) => [p, 0]));
  for (const line of stdout.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const peer = line.trim().split(/\s+/)[3] ?? '';
    const port = Number(peer.slice(peer.lastIndexOf(':') + 1));
    if (port in counts) counts[port]++;
  }
  return counts;
}

/** CPU seconds (user + system) used so far by `pid`. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process listening on `port` (RabbitMQ's beam.smp for 15674), if `ss` shows it. */
export async function listenerPid(port: number): Promise<number | undefined> {
  try {
    const { stdout } = await execFileAsync('ss', ['-tlnpH', `sport = :${port}`]);
    const m = /pid=(\d+),/.exec(stdout);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
