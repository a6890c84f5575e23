/**
 * `npm run cluster`: the load-balanced setup of docker/compose.yml without Docker, for development.
 * RabbitMQ's plugins checked (test/support/ensure-rabbitmq.cjs), dist/ rebuilt if app/ changed,
 * three instances on 8081-8083, then nginx with docker/nginx/nginx.conf on 8080 (http, ws) and 8443
 * (https, wss, with a development certificate made for this run); Ctrl-C stops it all.
 *
 *   npm run cluster -- [--instances 3] [--base-port 8081] [--lb-port 8080] [--tls-port 8443]
 *                      [--log-level info] [--instance-prefix node-] [--quiet] [--source]
 *
 * --quiet shows warnings and errors only (no nginx access lines); --source runs app/*.ts through
 * tsx instead of building dist/ (handy while the build is broken). Killing one instance (its pid is
 * printed) is allowed: its clients reconnect through nginx to the others.
 *
 * Stopping: SIGINT or SIGTERM, to this process or to its whole process group (a terminal's Ctrl-C),
 * runs the orderly stop of test/support/cluster.ts: clients get the draining ERROR, nothing is left.
 * npm passes the terminal's SIGINT on to its child as well, so one Ctrl-C may arrive twice within
 * a moment: only a second one a while after the first skips the drain.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT, startCluster, type Cluster } from '../support/cluster';

const { values: args } = parseArgs({
  options: {
    instances: { type: 'string', default: '3' },
    'base-port': { type: 'string', default: '8081' },
    'lb-port': { type: 'string', default: '8080' },
    'tls-port': { type: 'string', default: '8443' },
    'log-level': { type: 'string', default: 'info' },
    'instance-prefix': { type: 'string', default: 'node-' },
    quiet: { type: 'boolean', default: false },
    source: { type: 'boolean', default: false },
  },
});

function intArg(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`cluster: --${name} must be an integer in ${min}..${max}, not '${raw}'`);
    process.exit(2);
  }
  return n;
}

/** dist/ rebuilt when missing or older than its sources: the check `npm start` runs (config/build.cjs). */
function buildIfNeeded(): void {
  const script = join(PROJECT_ROOT, 'config/build.cjs');
  const result = spawnSync(process.execPath, [script, '--if-stale'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error('cluster: the build failed; fix it, or run the sources with: npm run cluster -- --source');
    process.exit(1);
  }
}

function ensureRabbitMq(): void {
  const script = join(PROJECT_ROOT, 'test/support/ensure-rabbitmq.cjs');
  const result = spawnSync(process.execPath, [script], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(1);
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** pino's JSON lines made readable: `time LEVEL [node-1] msg key=value ...`; anything else as is. */
function printLine(source: string, line: string, quiet: boolean): void {
  let record: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
      record = parsed as Record<string, unknown>;
  } catch {
    // not JSON: nginx, or a line written before the logger existed
  }
  if (!record) {
    if (!quiet || source !== 'nginx') console.log(`[${source}] ${line}`);
    return;
  }
  const { level, time, msg } = record;
  const rest = Object.entries(record).filter(([key]) => !['level', 'time', 'msg', 'instance'].includes(key));
  const when = typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const extra = rest
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  const label = typeof level === 'number' ? (LEVELS[level] ?? String(level)) : '?';
  console.log(`${when} ${label.padEnd(5)} [${source}] ${String(msg ?? '')}${extra ? ` ${extra}` : ''}`);
}

function printSummary(cluster: Cluster): void {
  const page = `http://localhost:${cluster.lbPort}`;
  const lines = [
    '',
    'stomp-relay cluster is up',
    `  demo page      ${page}  (e.g. ${page}/?user=alice&autoconnect=1)`,
    `  cluster view   ${page}/admin/  (every instance, its sessions, rates; a dev token with scope admin)`,
    `  over TLS       ${cluster.lbTlsUrl ?? '-'}  (wss:// for WebSockets; trust ${cluster.tls?.ca ?? '-'},`,
    `                 e.g. curl --cacert ${cluster.tls?.ca ?? '-'} ${cluster.lbTlsUrl ?? ''}/readyz)`,
    `  load balancer  nginx pid ${cluster.nginxPid}, docker/nginx/nginx.conf, prefix ${cluster.nginxDir}`,
    ...cluster.instances.map(
      (instance, i) =>
        `  ${i === 0 ? 'instances    ' : '             '}  ${instance.id}  ${instance.url}  pid ${instance.pid}`,
    ),
    '  RabbitMQ       management UI http://localhost:15672 (guest/guest), STOMP 127.0.0.1:61613',
    `  JWT_SECRET     ${cluster.secret}  (shared by the instances)`,
    '  push to alice  TOKEN=$(curl -s -X POST ' +
      `${page}/api/dev/token -H 'content-type: application/json' -d '{"user":"backend","scope":"push"}' | ` +
      'node -pe \'JSON.parse(require("fs").readFileSync(0)).token\')',
    `                 curl -X POST ${page}/api/users/alice/messages -H "authorization: Bearer $TOKEN" ` +
      `-H 'content-type: application/json' -d '{"destination":"/queue/greetings","body":"hello"}'`,
    'Ctrl-C stops everything.',
    '',
  ];
  console.log(lines.join('\n'));
}

/** A repeat within this long of the first stop signal is the same Ctrl-C (npm passes it on too). */
const SAME_SIGNAL_MS = 1_000;

async function main(): Promise<void> {
  const instances = intArg('instances', args.instances, 1, 32);
  const basePort = intArg('base-port', args['base-port'], 1, 65535);
  const lbPort = intArg('lb-port', args['lb-port'], 1, 65535);
  const tlsPort = intArg('tls-port', args['tls-port'], 1, 65535);
  const quiet = args.quiet;

  ensureRabbitMq();
  if (!args.source) buildIfNeeded();

  // Signals are handled from here on, before anything is started: a Ctrl-C while the instances
  // come up stops them too.
  const interrupted = new AbortController();
  let starting: Promise<Cluster> | undefined;
  let cluster: Cluster | undefined = undefined;
  let stopping: Promise<void> | undefined;
  let firstSignalAt = 0;
  const shutdown = (code: number): Promise<void> => {
    stopping ??= (async () => {
      console.log('cluster: stopping (nginx stops accepting, the instances drain)');
      // An interrupted start stops what it started itself (and then rejects).
      await starting?.catch(() => undefined);
      await cluster?.stop();
      console.log('cluster: stopped');
      process.exit(code);
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      const now = Date.now();
      if (firstSignalAt === 0) {
        firstSignalAt = now;
        interrupted.abort();
        void shutdown(0);
      } else if (now - firstSignalAt > SAME_SIGNAL_MS) {
        // The exit hook of startCluster kills what is left and removes its directory.
        console.error('cluster: second Ctrl-C: not waiting for the drain');
        process.exit(130);
      }
    });
  }

  try {
    starting = startCluster({
      instances,
      basePort,
      lbPort,
      tlsPort,
      instancePrefix: args['instance-prefix'],
      runtime: args.source ? 'source' : 'dist',
      logLevel: quiet ? 'warn' : args['log-level'],
      signal: interrupted.signal,
      onLog: (source, line) => printLine(source, line, quiet),
      onAccessLog: quiet ? undefined : (line) => console.log(`[nginx] ${line}`),
      onExit: (source, code, signal) => {
        if (stopping) return;
        console.error(`cluster: ${source} exited (${code ?? signal})`);
        // Without nginx there is no cluster to use; a lost instance is survivable (and maybe intended).
        if (source === 'nginx') void shutdown(1);
      },
    });
    cluster = await starting;
  } catch (err: unknown) {
    // startCluster has stopped what it started; an interrupted start is a requested stop.
    if (interrupted.signal.aborted) return;
    throw err;
  }
  if (stopping) return;
  printSummary(cluster);
}

main().catch((err: unknown) => {
  console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
