'use strict';
/**
 * Run by `npm test` before mocha: makes sure a RabbitMQ with the plugins the tests need answers on
 * 127.0.0.1 (AMQP 5672, STOMP 61613, management 15672, Web STOMP 15674), or says in one line how to
 * get one and exits 1.
 *
 * Order: a node already answering is used as it is; else a local `rabbitmq-server` is started
 * (`-detached`); else, with a Docker engine, docker/compose.yml's `rabbitmq` service. On a local node
 * the missing plugins are enabled with rabbitmq-plugins (a container brings its own). Every wait is
 * bounded (60 s). Plain Node, no TypeScript: it must run before anything is compiled or installed.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const HOST = '127.0.0.1';
const PORTS = { amqp: 5672, stomp: 61613, management: 15672, 'web-stomp': 15674 };
const PLUGINS = ['rabbitmq_stomp', 'rabbitmq_management', 'rabbitmq_web_stomp'];
const WAIT_MS = 60_000;
const COMPOSE_FILE = path.resolve(__dirname, '../../docker/compose.yml');
const HOW_TO =
  'ensure-rabbitmq: no RabbitMQ on 127.0.0.1:5672 and none to start; install one (sudo apt-get install ' +
  'rabbitmq-server) or run it in Docker (docker compose -f docker/compose.yml up -d rabbitmq)';

function fail(line) {
  console.error(`ensure-rabbitmq: ${line}`);
  process.exit(1);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tcpOpen(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Resolves with the ports among `ports` that still refuse connections at the deadline ([] = all up). */
async function waitForPorts(ports, deadline) {
  for (;;) {
    const closed = [];
    for (const port of ports) if (!(await tcpOpen(port))) closed.push(port);
    if (closed.length === 0 || Date.now() >= deadline) return closed;
    await sleep(500);
  }
}

/** Absolute path of `command` on PATH (plus the sbin directories packages install RabbitMQ to). */
function findCommand(command) {
  const dirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/sbin']) {
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here; next directory
    }
  }
  return undefined;
}

function run(command, args, timeoutMs = WAIT_MS) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutMs });
  const stderr = (result.stderr || '').trim() || (result.error ? result.error.message : '');
  return { ok: result.status === 0, stdout: result.stdout || '', stderr };
}

function lastLine(text) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1].trim() : 'no output';
}

/** GET /api/overview as guest; resolves with the RabbitMQ version, or undefined if it does not answer. */
async function managementVersion() {
  try {
    const res = await fetch(`http://${HOST}:${PORTS.management}/api/overview`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
      signal: globalThis.AbortSignal.timeout(5000),
    });
    if (!res.ok) return undefined;
    const body = await res.json();
    return body.rabbitmq_version || body.management_version || 'unknown version';
  } catch {
    return undefined;
  }
}

/** Brings a node up on 5672; returns what it did, or exits with one line. */
async function ensureNode() {
  if (await tcpOpen(PORTS.amqp)) return { did: undefined, local: true };
  const server = findCommand('rabbitmq-server');
  if (server) {
    const started = run(server, ['-detached']);
    if (!started.ok) fail(`rabbitmq-server -detached failed: ${lastLine(started.stderr || started.stdout)}`);
    const closed = await waitForPorts([PORTS.amqp], Date.now() + WAIT_MS);
    if (closed.length) fail(`started rabbitmq-server, but 5672 did not answer within ${WAIT_MS / 1000} s`);
    return { did: 'started the local rabbitmq-server', local: true };
  }
  if (fs.existsSync(COMPOSE_FILE) && run('docker', ['compose', 'version'], 10_000).ok) {
    // Generous: the first run pulls the image.
    const up = run('docker', ['compose', '-f', COMPOSE_FILE, 'up', '-d', 'rabbitmq'], 300_000);
    if (!up.ok) fail(`docker compose up -d rabbitmq failed: ${lastLine(up.stderr || up.stdout)}`);
    const closed = await waitForPorts([PORTS.amqp], Date.now() + WAIT_MS);
    if (closed.length)
      fail(`started the rabbitmq container, but 5672 did not answer within ${WAIT_MS / 1000} s`);
    return { did: 'started docker compose service rabbitmq', local: false };
  }
  console.error(HOW_TO);
  process.exit(1);
}

/** Enables the plugins the local node lacks; returns the ones it enabled. */
function ensurePlugins() {
  const plugins = findCommand('rabbitmq-plugins');
  if (!plugins) return [];
  const listed = run(plugins, ['list', '-e', '-m', '-q']);
  if (!listed.ok) fail(`rabbitmq-plugins list failed: ${lastLine(listed.stderr || listed.stdout)}`);
  const enabled = new Set(listed.stdout.split('\n').map((l) => l.trim()));
  const missing = PLUGINS.filter((p) => !enabled.has(p));
  if (missing.length) {
    const result = run(plugins, ['enable', ...missing]);
    if (!result.ok) fail(`rabbitmq-plugins enable ${missing.join(' ')} failed: ${lastLine(result.stderr)}`);
  }
  return missing;
}

async function main() {
  const node = await ensureNode();
  const done = node.did ? [node.did] : [];
  // A container brings its plugins with it; local tools would talk to a different node.
  const enabled = node.local ? ensurePlugins() : [];
  if (enabled.length) done.push(`enabled ${enabled.join(', ')}`);

  const deadline = Date.now() + WAIT_MS;
  const closed = await waitForPorts([PORTS.stomp, PORTS.management, PORTS['web-stomp']], deadline);
  if (closed.length) {
    fail(
      `RabbitMQ is up but port(s) ${closed.join(', ')} do not answer; enable plugins ${PLUGINS.join(', ')}`,
    );
  }
  let version = await managementVersion();
  while (!version && Date.now() < deadline) {
    await sleep(500);
    version = await managementVersion();
  }
  if (!version) fail('the management API (GET :15672/api/overview as guest) does not answer');

  const what = done.length ? done.join('; ') : 'already running with its plugins';
  console.log(`ensure-rabbitmq: RabbitMQ ${version} ${what}; 5672, 61613, 15672, 15674 answer`);
}

main().catch((err) => fail(err instanceof Error ? err.message : String(err)));
