/**
 * `npm run cluster` stopped the ways a person stops it: Ctrl-C in a terminal (SIGINT to the whole
 * foreground process group: npm, the launcher and anything else in the group) and SIGINT to npm
 * alone. Each time, a client connected through nginx (plain WebSocket and SockJS xhr-streaming)
 * gets the draining ERROR, every process the launcher started is gone, their ports are free and
 * the scratch directory is removed.
 *
 * Ports from 19000-19099, so a developer's own cluster (8080-8083, 8443) is never touched; instance
 * ids carry a per-run prefix (they name broker queues on the shared RabbitMQ).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { PROJECT_ROOT } from '../../support/cluster';
import { ReconnectingStomp } from '../../support/stomp-clients';
import { waitFor } from '../../support/wait';

interface Launched {
  npm: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

interface Summary {
  secret: string;
  nginxPid: number;
  prefix: string;
  instancePids: number[];
}

/** `npm run cluster` in its own process group, as a terminal runs a foreground job. */
function launch(ports: { lb: number; base: number; tls: number }, prefix: string): Launched {
  const npm = spawn(
    'npm',
    [
      'run',
      'cluster',
      '--',
      '--instances',
      '2',
      '--lb-port',
      String(ports.lb),
      '--base-port',
      String(ports.base),
      '--tls-port',
      String(ports.tls),
      '--instance-prefix',
      prefix,
      '--quiet',
      '--source',
    ],
    { cwd: PROJECT_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  npm.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  npm.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => npm.once('exit', (code) => resolveExit(code)));
  return { npm, output: () => output, exited };
}

function parseSummary(output: string): Summary {
  const secret = /JWT_SECRET\s+(\S+)/.exec(output)?.[1];
  const nginx = /nginx pid (\d+), .*prefix (\S+)/.exec(output);
  const instancePids = [...output.matchAll(/http:\/\/127\.0\.0\.1:\d+\s+pid (\d+)/g)].map((m) =>
    Number(m[1]),
  );
  if (!secret || !nginx) throw new Error(`no summary in:\n${output}`);
  return { secret, nginxPid: Number(nginx[1]), prefix: nginx[2]!, instancePids };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portFree(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
    () => false,
    () => true,
  );
}

describe('npm run cluster: stopping it', function () {
  this.timeout(180_000);
  const launched: Launched[] = [];

  afterEach(function () {
    const last = launched.at(-1);
    if (this.currentTest?.state === 'failed' && last)
      console.log(last.output().split('\n').slice(-40).join('\n'));
  });

  after(() => {
    // A failed test may leave its cluster running: its launcher's exit hook cleans up on SIGTERM.
    for (const { npm } of launched) {
      if (npm.exitCode !== null || !npm.pid) continue;
      try {
        process.kill(-npm.pid, 'SIGTERM');
      } catch {
        // the group is gone already
      }
    }
  });

  async function startAndConnect(ports: {
    lb: number;
    base: number;
    tls: number;
  }): Promise<{ run: Launched; summary: Summary; clients: ReconnectingStomp[] }> {
    const prefix = `stop-${randomBytes(3).toString('hex')}-`;
    const run = launch(ports, prefix);
    launched.push(run);
    await waitFor(
      () => run.output().includes('Ctrl-C stops everything') || run.npm.exitCode !== null,
      120_000,
      'the cluster summary',
    );
    const summary = parseSummary(run.output());
    expect(summary.instancePids).to.have.length(2);
    const token = jwt.sign({}, summary.secret, {
      algorithm: 'HS256',
      subject: `stopper-${prefix}`,
      expiresIn: 600,
    });
    const urls = [`http://127.0.0.1:${ports.lb}`];
    const clients = (['websocket', 'xhr-streaming'] as const).map(
      (transport) =>
        new ReconnectingStomp({
          user: `stopper-${prefix}`,
          urls,
          transport,
          token,
          destination: '/user/queue/greetings',
        }),
    );
    for (const client of clients) client.start();
    await Promise.all(clients.map((client) => client.waitLive()));
    return { run, summary, clients };
  }

  async function expectStoppedCleanly(
    run: Launched,
    summary: Summary,
    clients: ReconnectingStomp[],
    ports: number[],
  ): Promise<void> {
    const code = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('timeout'), 60_000))]);
    expect(code, 'npm run cluster exit').to.equal(0);
    for (const client of clients) {
      expect(
        client.errors.some((message) => /draining/.test(message)),
        `${client.label} was told: ${JSON.stringify(client.errors)} (closes ${JSON.stringify(client.closeCodes)})`,
      ).to.equal(true);
      await client.stop();
    }
    for (const pid of [summary.nginxPid, ...summary.instancePids])
      expect(alive(pid), `pid ${pid}`).to.equal(false);
    expect(existsSync(summary.prefix), summary.prefix).to.equal(false);
    for (const port of ports) expect(await portFree(port), `port ${port}`).to.equal(true);
    expect(run.output()).to.not.include('not waiting for the drain');
  }

  it('Ctrl-C in a terminal (SIGINT to the process group): clients told to drain, nothing left', async () => {
    const ports = { lb: 19080, base: 19081, tls: 19083 };
    const { run, summary, clients } = await startAndConnect(ports);
    process.kill(-run.npm.pid!, 'SIGINT');
    await expectStoppedCleanly(run, summary, clients, [19080, 19081, 19082, 19083]);
  });

  it('SIGINT to npm alone: the same orderly stop', async () => {
    const ports = { lb: 19084, base: 19085, tls: 19087 };
    const { run, summary, clients } = await startAndConnect(ports);
    process.kill(run.npm.pid!, 'SIGINT');
    await expectStoppedCleanly(run, summary, clients, [19084, 19085, 19086, 19087]);
  });
});
