'use strict';
/**
 * Run by `npm test` after ensure-rabbitmq.cjs: makes sure a second RabbitMQ node, of the 4.x series,
 * answers on 127.0.0.1 (AMQP 5673, STOMP 61614, management 15673, Web-STOMP 15675), with the
 * deprecated features RabbitMQ 4.3 denies by default denied, or says why not in one line and exits 1.
 *
 *   node test/support/ensure-rabbitmq4.cjs            provision (first time), start, check
 *   node test/support/ensure-rabbitmq4.cjs --stop     stop the node and its epmd (the tree stays)
 *   node test/support/ensure-rabbitmq4.cjs --ctl ARGS rabbitmqctl ARGS against the node
 *
 * Debian 13 (trixie) packages RabbitMQ 4.0, this machine (Debian 12) 3.10. So the node runs from a
 * trixie tree that debootstrap builds under TREE_DIR (outside the repository, reused by every later
 * run), chrooted, as that tree's own rabbitmq user, with its own Erlang distribution port and its own
 * epmd (4370): nothing of it touches the machine's node, its epmd (4369) or its data directory.
 * /proc is mounted in a private mount namespace (unshare -m), so no mount outlives the node.
 * The package mirror is the Debian archive that this machine's apt configuration names.
 *
 * A run with the node up only checks it; the tree there and the node down, it starts it; the
 * first run also builds the tree (debootstrap, then apt-get install rabbitmq-server inside it).
 * Every step has a timeout (the constants below): at worst about 18 minutes, waiting for another
 * run's lock aside. Needs root for all but the check of a running node. Plain Node: runs before
 * anything is built.
 */
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { debianMirror } = require('./debian-mirror.cjs');

const TREE_DIR = '/var/lib/stomp-relay-test/rabbitmq4';
const ROOT = path.join(TREE_DIR, 'root');
const PARTIAL_ROOT = path.join(TREE_DIR, 'root.partial');
const LOCK_FILE = path.join(TREE_DIR, 'lock');
const SERVER_LOG = path.join(TREE_DIR, 'server.log');
const SUITE = 'trixie';
const NODE_NAME = 'sr-rabbit4@localhost';
const HOST = '127.0.0.1';
const PORTS = { amqp: 5673, stomp: 61614, management: 15673, webStomp: 15675, dist: 25673, epmd: 4370 };
const PLUGINS = ['rabbitmq_management', 'rabbitmq_stomp', 'rabbitmq_web_stomp'];

const DEBOOTSTRAP_S = 300;
const APT_S = 300;
const START_MS = 90_000;
const STOP_MS = 30_000;
const LOCK_WAIT_S = 900;
const LOCK_TIMED_OUT = 75;

/** What RabbitMQ 4.3 denies (or has removed), denied here too; see the comment in the file. */
const DENIED_FEATURES = [
  'transient_nonexcl_queues',
  'global_qos',
  'queue_master_locator',
  'amqp_address_v1',
  'amqp_filter_set_bug',
  'ram_node_type',
  'classic_queue_mirroring',
];

const RABBITMQ_CONF = `# Written by test/support/ensure-rabbitmq4.cjs: a test node beside the machine's own RabbitMQ.
listeners.tcp.local = ${HOST}:${PORTS.amqp}
stomp.listeners.tcp.1 = ${HOST}:${PORTS.stomp}
management.tcp.ip = ${HOST}
management.tcp.port = ${PORTS.management}
web_stomp.tcp.ip = ${HOST}
web_stomp.tcp.port = ${PORTS.webStomp}

# Deprecated features: this node (4.0) permits them by default; RabbitMQ 4.3 does not, and the tests
# must see what a 4.3 user sees. Denied by default in 4.3: transient_nonexcl_queues (a queue both
# non-durable and non-exclusive is refused, which closes the AMQP connection with 541), global_qos
# (basic.qos global=true is silently applied per consumer), queue_master_locator (the
# x-queue-master-locator argument is refused), amqp_address_v1 and amqp_filter_set_bug (AMQP 1.0).
# Removed in 4.3 (denying them here has the same effect): ram_node_type, classic_queue_mirroring.
# amqp_filter_set_bug does not exist in 4.0; the key is accepted and ignored. 4.3 also refuses the
# x-queue-mode argument and x-queue-version=1 (classic queue storage v1 is gone); no setting of 4.0
# denies those. management_metrics_collection is still permitted in 4.3, and the tests use it.
${DENIED_FEATURES.map((f) => `deprecated_features.permit.${f} = false`).join('\n')}
`;

// Sourced by the tree's rabbitmq-server and rabbitmqctl alike, so both use this node's epmd.
const RABBITMQ_ENV_CONF = `# Written by test/support/ensure-rabbitmq4.cjs
NODENAME=${NODE_NAME}
DIST_PORT=${PORTS.dist}
export ERL_EPMD_PORT=${PORTS.epmd}
export ERL_EPMD_ADDRESS=${HOST}
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
`;

const CONFIG_FILES = {
  'etc/rabbitmq/rabbitmq.conf': RABBITMQ_CONF,
  'etc/rabbitmq/rabbitmq-env.conf': RABBITMQ_ENV_CONF,
  'etc/rabbitmq/enabled_plugins': `[${PLUGINS.join(',')}].\n`,
};

/** chroot and debootstrap live in sbin, which a user's PATH may lack. */
const HOST_ENV = { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH || ''}` };

/** The environment commands get inside the tree: nothing of this machine's leaks in. */
const TREE_ENV = ['HOME=/var/lib/rabbitmq', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'];

function fail(line) {
  console.error(`ensure-rabbitmq4: ${line}`);
  process.exit(1);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lastLine(text) {
  const lines = String(text || '')
    .split('\n')
    .filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1].trim() : 'no output';
}

/**
 * Runs `command` under timeout(1), which signals the whole process group when `seconds` pass
 * (debootstrap and apt-get leave children that a plain kill would not reach).
 */
function run(command, args, seconds, options = {}) {
  const result = spawnSync('timeout', ['-k', '10', String(seconds), command, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: HOST_ENV,
    ...options,
  });
  const out = `${result.stdout || ''}\n${result.stderr || ''}`;
  if (result.status === 124 || result.status === 137)
    return { ok: false, why: `timed out after ${seconds} s`, out };
  if (result.status !== 0) {
    const why = result.error
      ? result.error.message
      : `exit ${result.status}: ${lastLine(result.stderr || result.stdout)}`;
    return { ok: false, why, out };
  }
  return { ok: true, why: '', out };
}

/** `sh -c script` inside the tree at `root`, with /proc mounted in a private mount namespace. */
function inTreeArgs(root, script, user) {
  const chroot = [
    'chroot',
    ...(user ? [`--userspec=${user}:${user}`] : []),
    root,
    '/usr/bin/env',
    '-i',
    ...TREE_ENV,
  ];
  const inner = [...chroot, 'sh', '-c', script].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return ['-m', '--fork', '--', 'sh', '-c', `mount -t proc proc '${root}/proc' && exec ${inner}`];
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

/** GET /api/overview on the 4.x node's management port as guest, or undefined if it does not answer. */
async function overview() {
  try {
    const res = await fetch(`http://${HOST}:${PORTS.management}/api/overview`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
      signal: globalThis.AbortSignal.timeout(3000),
    });
    return res.ok ? await res.json() : undefined;
  } catch {
    return undefined;
  }
}

/** The node's version if this node (name and ports) is up and answering, else undefined. */
async function runningVersion() {
  const info = await overview();
  if (!info || info.node !== NODE_NAME) return undefined;
  for (const port of [PORTS.amqp, PORTS.stomp, PORTS.webStomp]) if (!(await tcpOpen(port))) return undefined;
  return info.rabbitmq_version;
}

function configCurrent(root) {
  return Object.entries(CONFIG_FILES).every(([file, text]) => {
    try {
      return fs.readFileSync(path.join(root, file), 'utf8') === text;
    } catch {
      return false;
    }
  });
}

function writeConfig(root) {
  for (const [file, text] of Object.entries(CONFIG_FILES)) fs.writeFileSync(path.join(root, file), text);
}

/** Processes whose root directory is the tree: the node, its epmd and their helpers, nothing else. */
function treeProcesses() {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/root`) === ROOT) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A uid/gid free both on this machine and in the tree, so the node's processes are nobody else's. */
function freeSystemId(root) {
  const taken = new Set();
  for (const file of ['/etc/passwd', '/etc/group', `${root}/etc/passwd`, `${root}/etc/group`]) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) taken.add(line.split(':')[2]);
  }
  for (let id = 999; id >= 900; id--) if (!taken.has(String(id))) return id;
  return fail("no free uid/gid between 900 and 999 for the tree's rabbitmq user");
}

function ensureDebootstrap() {
  if (run('sh', ['-c', 'command -v debootstrap'], 10).ok) return;
  const apt = run(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap'],
    APT_S,
  );
  if (!apt.ok) fail(`debootstrap is missing and apt-get install debootstrap failed (${apt.why})`);
}

/** What an interrupted provisioning left; never while something is mounted in it. */
function removePartialTree() {
  const mounted = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => (line.split(' ')[4] || '').startsWith(`${TREE_DIR}/`));
  if (mounted) fail(`something is mounted under ${TREE_DIR}; unmount it (see /proc/self/mountinfo)`);
  fs.rmSync(PARTIAL_ROOT, { recursive: true, force: true });
}

/** Builds the tree in PARTIAL_ROOT and renames it to ROOT: ROOT exists only complete. */
function provision() {
  const mirror = debianMirror();
  if (!mirror)
    fail('no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d/*; cannot debootstrap');
  ensureDebootstrap();
  removePartialTree();
  // In its own mount namespace: the /proc and /sys it mounts in the tree end with it, even on a timeout.
  const boot = run(
    'unshare',
    ['-m', '--fork', '--', 'debootstrap', '--variant=minbase', SUITE, PARTIAL_ROOT, mirror],
    DEBOOTSTRAP_S,
  );
  if (!boot.ok) fail(`debootstrap ${SUITE} from ${mirror} failed (${boot.why})`);

  fs.writeFileSync(
    `${PARTIAL_ROOT}/etc/hosts`,
    '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n',
  );
  // The package must not start its service inside the tree (it would try the standard ports).
  fs.writeFileSync(`${PARTIAL_ROOT}/usr/sbin/policy-rc.d`, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const id = freeSystemId(PARTIAL_ROOT);
  const install = [
    `groupadd --system --gid ${id} rabbitmq`,
    `useradd --system --uid ${id} --gid ${id} --home-dir /var/lib/rabbitmq --shell /usr/sbin/nologin rabbitmq`,
    'apt-get update -q',
    'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server',
    'apt-get clean',
  ].join(' && ');
  const apt = run('unshare', inTreeArgs(PARTIAL_ROOT, install), APT_S);
  if (!apt.ok) fail(`apt-get install rabbitmq-server in the ${SUITE} tree failed (${apt.why})`);
  fs.renameSync(PARTIAL_ROOT, ROOT);
}

/** Starts the node in the background (it outlives this script) and waits until it answers. */
async function start() {
  const log = fs.openSync(SERVER_LOG, 'a');
  const server = spawn(
    'unshare',
    inTreeArgs(ROOT, 'cd /var/lib/rabbitmq && exec /usr/lib/rabbitmq/bin/rabbitmq-server', 'rabbitmq'),
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: HOST_ENV,
    },
  );
  fs.closeSync(log);
  let exited = false;
  server.once('exit', () => (exited = true));
  server.once('error', () => (exited = true));
  server.unref();
  const deadline = Date.now() + START_MS;
  for (;;) {
    const version = await runningVersion();
    if (version) return version;
    if (exited)
      fail(
        `the node exited while starting: ${lastLine(fs.readFileSync(SERVER_LOG, 'utf8'))} (${SERVER_LOG})`,
      );
    if (Date.now() >= deadline) fail(`the node did not answer within ${START_MS / 1000} s (${SERVER_LOG})`);
    await sleep(250);
  }
}

/** SIGTERM to the node (a clean stop), then to what is left (epmd); SIGKILL what outlives the wait. */
async function stop() {
  if (treeProcesses().length === 0) return false;
  const pidFile = path.join(ROOT, `var/lib/rabbitmq/mnesia/${NODE_NAME}.pid`);
  const beam = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : NaN;
  for (const pids of [treeProcesses().filter((pid) => pid === beam), treeProcesses()]) {
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_MS;
    while (pids.some(alive) && Date.now() < deadline) await sleep(100);
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
  await sleep(100);
  const left = treeProcesses();
  if (left.length) fail(`processes ${left.join(', ')} in ${ROOT} survived SIGKILL`);
  return true;
}

function ctl(args) {
  if (!fs.existsSync(ROOT))
    fail(`no ${SUITE} tree at ${ROOT}: run node test/support/ensure-rabbitmq4.cjs first`);
  const chroot = [
    '--userspec=rabbitmq:rabbitmq',
    ROOT,
    '/usr/bin/env',
    '-i',
    ...TREE_ENV,
    '/usr/sbin/rabbitmqctl',
    ...args,
  ];
  const result = spawnSync('chroot', chroot, { stdio: 'inherit', timeout: 120_000, env: HOST_ENV });
  process.exit(result.status ?? 1);
}

/** Builds the tree if missing, (re)writes the config, starts the node; says what it did. */
async function ensure() {
  const began = Date.now();
  // Again under the lock: a run that held it before this one may have started the node.
  const up = fs.existsSync(ROOT) && configCurrent(ROOT) && (await runningVersion());
  if (up) return `RabbitMQ ${up} already running`;
  const done = [];
  if (!fs.existsSync(ROOT)) {
    provision();
    done.push(`built the ${SUITE} tree in ${ROOT}`);
  }
  if (!configCurrent(ROOT)) {
    if (await stop()) done.push('stopped it for its new config');
    writeConfig(ROOT);
  }
  // Up but not answering (wedged, half started), or an epmd left behind: start from nothing.
  if (await stop()) done.push('stopped what was left of an earlier node');
  const taken = [];
  for (const port of Object.values(PORTS)) if (await tcpOpen(port)) taken.push(port);
  if (taken.length) fail(`port(s) ${taken.join(', ')} are taken by something that is not this node`);
  const version = await start();
  done.push('started');
  return `RabbitMQ ${version} ${done.join(', ')} in ${((Date.now() - began) / 1000).toFixed(1)} s`;
}

/** One run at a time: re-executes itself under flock (a second `npm test` waits for the first). */
function underLock() {
  if (process.env.STOMP_RELAY_RABBIT4_LOCKED === '1') return false;
  fs.mkdirSync(TREE_DIR, { recursive: true });
  const result = spawnSync(
    'flock',
    [
      '-E',
      String(LOCK_TIMED_OUT),
      '-w',
      String(LOCK_WAIT_S),
      LOCK_FILE,
      process.execPath,
      path.resolve(process.argv[1]),
      ...process.argv.slice(2),
    ],
    {
      stdio: 'inherit',
      env: { ...process.env, STOMP_RELAY_RABBIT4_LOCKED: '1' },
    },
  );
  if (result.status === LOCK_TIMED_OUT) fail(`another run held ${LOCK_FILE} for over ${LOCK_WAIT_S} s`);
  process.exit(result.status ?? 1);
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === '--ctl') return ctl(rest);
  if (mode !== undefined && mode !== '--stop') fail(`unknown argument ${mode} (none, --stop or --ctl ARGS)`);
  if (mode === undefined && fs.existsSync(ROOT) && configCurrent(ROOT)) {
    // The common case needs neither root nor the lock.
    const version = await runningVersion();
    if (version)
      return console.log(
        `ensure-rabbitmq4: RabbitMQ ${version} already running; ${PORTS.amqp}, ${PORTS.stomp}, ${PORTS.management}, ${PORTS.webStomp} answer`,
      );
  }
  if (process.getuid && process.getuid() !== 0)
    fail('needs root (debootstrap, chroot, a private mount namespace)');
  underLock();
  if (mode === '--stop') {
    console.log(
      `ensure-rabbitmq4: ${(await stop()) ? `stopped ${NODE_NAME}` : `${NODE_NAME} was not running`}`,
    );
    return;
  }
  console.log(
    `ensure-rabbitmq4: ${await ensure()}; ${PORTS.amqp}, ${PORTS.stomp}, ${PORTS.management}, ${PORTS.webStomp} answer`,
  );
}

main().catch((err) => fail(err instanceof Error ? err.message : String(err)));
