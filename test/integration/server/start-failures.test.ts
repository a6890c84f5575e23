/**
 * Every start-up failure ends the process the same way: one line on stderr saying what failed and
 * why, a non-zero exit, within a bound (the longest wait is the AMQP connect bound, 10 s). The
 * real entry point (app/main.ts) against the local RabbitMQ, one case per way a start can fail:
 * a refused login, a missing vhost, a closed AMQP port, a bad authorization file, and an
 * INSTANCE_ID another running instance already holds. Nothing may print the password.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RabbitRelayBroker } from '../../../app/broker/rabbitmq/rabbit-relay-broker';
import { PROJECT_ROOT } from '../../support/cluster';
import { AMQP_URL, STOMP_URL } from '../../support/rabbitmq';

/** The bound a start may take to fail: the AMQP connect bound plus the process's own start. */
const BOUND_MS = 20_000;

interface Exit {
  code: number | null;
  stderr: string;
  ms: number;
}

/** Runs app/main.ts with `env` until it exits (killed past the bound, which fails the test). */
function start(env: Record<string, string>): Promise<Exit> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'development',
      PORT: '0',
      LOG_LEVEL: 'warn',
      INSTANCE_ID: `startfail-${randomBytes(3).toString('hex')}`,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const killer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS + 5_000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, ms: Date.now() - started });
    });
  });
}

/** One line, naming `what`, no secret, a non-zero exit within the bound. */
function expectOneLine(exit: Exit, what: RegExp): void {
  const lines = exit.stderr.split('\n').filter((line) => line !== '');
  expect(lines, exit.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^stomp-relay: /);
  expect(lines[0]).to.match(what);
  expect(lines[0]).not.to.include('wrong-secret');
  expect(exit.code, exit.stderr).to.equal(1);
  expect(exit.ms).to.be.below(BOUND_MS);
}

describe('start-up failures: one line, a non-zero exit, within a bound', function () {
  this.timeout(BOUND_MS + 10_000);
  const stompUrl = `${STOMP_URL}/%2F`;

  it('a wrong broker password: the login RabbitMQ refused', async () => {
    const exit = await start({ BROKER_URL: 'stomp://guest:wrong-secret@127.0.0.1:61613/%2F' });
    expectOneLine(exit, /127\.0\.0\.1:5672.*ACCESS_REFUSED/);
  });

  it('a wrong STOMP password with a good AMQP_URL: the STOMP login refused', async () => {
    const exit = await start({
      BROKER_URL: 'stomp://guest:wrong-secret@127.0.0.1:61613/%2F',
      AMQP_URL,
    });
    expectOneLine(exit, /127\.0\.0\.1:61613/);
  });

  it('a vhost that does not exist: RabbitMQ says which', async () => {
    const exit = await start({ BROKER_URL: 'stomp://guest:guest@127.0.0.1:61613/nope' });
    expectOneLine(exit, /vhost nope not found/);
  });

  it('AMQP_URL on a closed port: connection refused, after the connect bound', async () => {
    const exit = await start({ BROKER_URL: stompUrl, AMQP_URL: 'amqp://guest:wrong-secret@127.0.0.1:1' });
    expectOneLine(exit, /127\.0\.0\.1:1.*ECONNREFUSED/);
  });

  it('a bad authorization file: the file and what is wrong with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-auth-'));
    try {
      const file = join(dir, 'authorization.json');
      writeFileSync(file, '{"rules": [');
      const exit = await start({ BROKER_URL: stompUrl, AUTHORIZATION_FILE: file });
      expectOneLine(exit, /AUTHORIZATION_FILE|authorization\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an INSTANCE_ID another running instance holds: refused, the first one untouched', async () => {
    const instanceId = `startdup-${randomBytes(3).toString('hex')}`;
    const first = new RabbitRelayBroker({
      brokerUrl: stompUrl,
      amqpUrl: AMQP_URL,
      instanceId,
      poolSize: 1,
      heartbeatMs: 2000,
      prefetch: 10,
      reconnectMaxMs: 1000,
    });
    await first.start();
    try {
      const exit = await start({ BROKER_URL: stompUrl, INSTANCE_ID: instanceId });
      expectOneLine(exit, new RegExp(`INSTANCE_ID '${instanceId}' is in use`));
      expect(first.readiness()).to.deep.equal({ ready: true });
    } finally {
      await first.stop();
    }
  });
});
