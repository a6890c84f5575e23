/**
 * NODE_ENV and the dev token endpoint, as an operator meets them: a misspelt or missing NODE_ENV on
 * what looks like a deployment stops the process with one line naming NODE_ENV; development with
 * nothing set serves POST /api/dev/token to this machine only.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { expect } from 'chai';
import pino from 'pino';
import { loadConfig } from '../../../app/config';
import { startService, type RunningService } from '../../../app/server';
import { PROJECT_ROOT } from '../../support/cluster';

interface Exit {
  code: number | null;
  stderr: string;
  stdout: string;
}

/** Runs app/main.ts with exactly `env` (plus PATH); kills it if it has not exited within 15 s. */
function runMain(env: Record<string, string>): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`app/main.ts still running after 15 s; stdout: ${stdout}`));
    }, 15_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

/** Connects to host:port; resolves with the error code, or 'connected'. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

const SECRET = 'a-real-looking-secret-of-forty-characters';

describe('NODE_ENV at start-up', () => {
  for (const [name, env] of [
    ['NODE_ENV=prod', { NODE_ENV: 'prod', JWT_SECRET: SECRET }],
    ['NODE_ENV=Production', { NODE_ENV: 'Production', JWT_SECRET: SECRET }],
    ['NODE_ENV unset with a real JWT_SECRET', { JWT_SECRET: SECRET }],
    ['NODE_ENV unset with HOST=0.0.0.0', { HOST: '0.0.0.0' }],
  ] as const) {
    it(`${name}: exits 1 with one line naming NODE_ENV, before listening`, async () => {
      const exit = await runMain(env);
      expect(exit.code).to.equal(1);
      expect(exit.stderr).to.match(/^stomp-relay: invalid setting NODE_ENV: [^\n]+\n$/);
      expect(exit.stdout, 'nothing started').to.not.include('listening');
    });
  }

  describe('development with nothing set (npm start on a laptop)', () => {
    let service: RunningService;
    const lines: { level: number; msg: string }[] = [];

    before(async () => {
      // What `npm start` reads from an empty environment, on a free port.
      const settings = loadConfig({ PORT: '0', LOG_LEVEL: 'info' });
      const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
      service = await startService({ settings, logger });
    });
    after(async () => {
      await service.stop();
    });

    it('serves the dev token endpoint on loopback only, and says so', async () => {
      const answer = await fetch(`http://127.0.0.1:${service.port}/api/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: 'alice', scope: 'push' }),
      });
      expect(answer.status).to.equal(200);
      const messages = lines.map((l) => l.msg);
      expect(messages).to.include(`listening on http://127.0.0.1:${service.port}`);
      expect(messages.some((m) => m.startsWith('development mode: POST /api/dev/token'))).to.equal(true);
      // And from other machines: nothing answers on this machine's other addresses.
      const external = Object.values(networkInterfaces())
        .flat()
        .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
        .map((a) => a!.address);
      for (const address of external) {
        expect(await tryConnect(address, service.port), address).to.equal('ECONNREFUSED');
      }
    });
  });
});
