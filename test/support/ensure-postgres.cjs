'use strict';
/**
 * Run by `npm test` after ensure-rabbitmq: makes sure a PostgreSQL answers on 127.0.0.1:5432 with
 * the test role and database the inbox tests use (INBOX_TEST_DATABASE_URL, default below), or says
 * in one line what is wrong and exits 1.
 *
 * A cluster that is down is started with pg_ctlcluster (Debian's postgresql-common, as root). The
 * role (CREATEDB: every test makes and drops its own database) and its database are created with
 * psql as the postgres superuser: `runuser -u postgres` when root, else over TCP as postgres.
 * Databases a crashed run left behind (older than an hour, no connections) are dropped. Every wait
 * is bounded (60 s). Plain Node: it must run before anything is compiled.
 */
const fs = require('node:fs');
const net = require('node:net');
const { spawnSync } = require('node:child_process');

const DEFAULT_URL = 'postgres://stomp_relay_test:stomp_relay_test@127.0.0.1:5432/stomp_relay_test';
const URL_TEXT = process.env.INBOX_TEST_DATABASE_URL || DEFAULT_URL;
const WAIT_MS = 60_000;
/** Prefix of the databases tests create (test/support/postgres-databases.ts): `<prefix><base36 ms>_<hex>`. */
const TEST_DB_PREFIX = 'stomp_relay_tmp_';
const TEST_DB_NAME = /^stomp_relay_tmp_([0-9a-z]+)_[0-9a-f]+$/;
const STALE_MS = 60 * 60 * 1000;
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

function fail(line) {
  console.error(`ensure-postgres: ${line}`);
  process.exit(1);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tcpOpen(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function run(command, args, timeoutMs = WAIT_MS) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutMs });
  const stderr = (result.stderr || '').trim() || (result.error ? result.error.message : '');
  return { ok: result.status === 0, stdout: (result.stdout || '').trim(), stderr };
}

function lastLine(text) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1].trim() : 'no output';
}

/** psql as the postgres superuser; resolves with stdout or exits with psql's last line. */
function superuserSql(sql, host, port) {
  const psqlArgs = ['-X', '-v', 'ON_ERROR_STOP=1', '-Atc', sql];
  const result = IS_ROOT
    ? run('runuser', ['-u', 'postgres', '--', 'psql', '-p', String(port), ...psqlArgs])
    : run('psql', ['-h', host, '-p', String(port), '-U', 'postgres', '-d', 'postgres', ...psqlArgs]);
  if (!result.ok) fail(`psql as postgres failed: ${lastLine(result.stderr || result.stdout)}`);
  return result.stdout;
}

const quoteIdent = (name) => `"${name.replace(/"/g, '""')}"`;
const quoteLiteral = (text) => `'${text.replace(/'/g, "''")}'`;

async function ensureRunning(host, port) {
  if (await tcpOpen(host, port)) return undefined;
  if (!IS_ROOT || !fs.existsSync('/etc/postgresql')) {
    fail(`nothing answers on ${host}:${port}; start PostgreSQL (sudo apt-get install postgresql)`);
  }
  const versions = fs.readdirSync('/etc/postgresql').filter((v) => /^\d+$/.test(v));
  if (versions.length === 0) fail('no cluster under /etc/postgresql; install postgresql');
  const version = versions.sort((a, b) => Number(b) - Number(a))[0];
  const started = run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start']);
  if (!started.ok) {
    const why = lastLine(started.stderr || started.stdout);
    fail(`nothing answers on ${host}:${port}, and pg_ctlcluster ${version} main start says: ${why}`);
  }
  const deadline = Date.now() + WAIT_MS;
  while (!(await tcpOpen(host, port))) {
    if (Date.now() >= deadline)
      fail(`started PostgreSQL ${version}, but ${port} did not answer in ${WAIT_MS / 1000} s`);
    await sleep(250);
  }
  return `started cluster ${version}/main`;
}

function ensureRoleAndDatabase(url, host, port) {
  const role = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const database = decodeURIComponent(url.pathname.slice(1));
  if (!role || !database) fail(`INBOX_TEST_DATABASE_URL needs a user and a database: ${URL_TEXT}`);
  const done = [];
  if (superuserSql(`SELECT 1 FROM pg_roles WHERE rolname = ${quoteLiteral(role)}`, host, port) !== '1') {
    const secret = password ? ` PASSWORD ${quoteLiteral(password)}` : '';
    superuserSql(`CREATE ROLE ${quoteIdent(role)} LOGIN CREATEDB${secret}`, host, port);
    done.push(`created role ${role}`);
  }
  if (
    superuserSql(`SELECT 1 FROM pg_database WHERE datname = ${quoteLiteral(database)}`, host, port) !== '1'
  ) {
    superuserSql(`CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(role)}`, host, port);
    done.push(`created database ${database}`);
  }
  return done;
}

/** Drops test databases older than STALE_MS that nobody is connected to (a crashed run's). */
function dropStale(host, port) {
  const names = superuserSql(
    `SELECT datname FROM pg_database d WHERE starts_with(datname, ${quoteLiteral(TEST_DB_PREFIX)}) ` +
      'AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)',
    host,
    port,
  )
    .split('\n')
    .filter(Boolean);
  let dropped = 0;
  for (const name of names) {
    const match = TEST_DB_NAME.exec(name);
    if (!match || Date.now() - parseInt(match[1], 36) < STALE_MS) continue;
    superuserSql(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`, host, port);
    dropped++;
  }
  return dropped;
}

async function main() {
  let url;
  try {
    url = new URL(URL_TEXT);
  } catch {
    fail(`INBOX_TEST_DATABASE_URL is not a URL: ${URL_TEXT}`);
  }
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 5432);
  const done = [];
  const started = await ensureRunning(host, port);
  if (started) done.push(started);
  done.push(...ensureRoleAndDatabase(url, host, port));
  const dropped = dropStale(host, port);
  if (dropped) done.push(`dropped ${dropped} stale test database(s)`);
  const check = run('psql', ['-X', URL_TEXT, '-Atc', 'SHOW server_version'], 15_000);
  if (!check.ok) fail(`cannot connect as the test role: ${lastLine(check.stderr || check.stdout)}`);
  const what = done.length ? done.join('; ') : 'already running with the test role and database';
  console.log(`ensure-postgres: PostgreSQL ${check.stdout} on ${host}:${port} ${what}`);
}

main().catch((err) => fail(err instanceof Error ? err.message : String(err)));
