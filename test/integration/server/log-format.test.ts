/**
 * What a person sees in the terminal: the service as a process (embedded broker, PORT 0), started
 * and stopped with SIGINT, in each LOG_FORMAT. Development prints pino-pretty's readable lines,
 * production JSON lines, and LOG_FORMAT overrides either way.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from '../../support/cluster';
import { waitFor } from '../../support/wait';

interface Run {
  lines: string[];
  code: number | null;
}

/** Starts app/main.ts with `env`, waits for its listening line, then SIGINT and collects its output. */
async function runUntilListening(env: Record<string, string>): Promise<Run> {
  const inherited = { ...process.env };
  delete inherited.LOG_FORMAT;
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    cwd: PROJECT_ROOT,
    env: { ...inherited, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  try {
    await waitFor(
      () => output.includes('listening on') || child.exitCode !== null,
      20_000,
      'the listening line',
    );
  } finally {
    child.kill('SIGINT');
  }
  const code = await exited;
  return { lines: output.split('\n').filter((line) => line !== ''), code };
}

const SECRET = 'log-format-test-secret-0123456789abcdef';

describe('log format', function () {
  this.timeout(60_000);

  it('prints readable lines in development: local time, level name, message, fields on the line', async () => {
    const { lines, code } = await runUntilListening({ NODE_ENV: 'development', INSTANCE_ID: 'dev-1' });
    expect(code).to.equal(0);
    const listening = lines.find((line) => line.includes('listening on'));
    expect(listening, lines.join('\n')).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[dev-1\] listening on /);
    expect(listening).to.match(/"port":\d+/);
    for (const line of lines) expect(() => JSON.parse(line), line).to.throw();
    expect(lines.some((line) => /^\[[\d:.]+\] INFO: \[dev-1\] shutting down/.test(line))).to.equal(true);
  });

  it('prints JSON lines in production, and wherever LOG_FORMAT=json says so', async () => {
    const envs: Record<string, string>[] = [
      { NODE_ENV: 'production', JWT_SECRET: SECRET },
      { NODE_ENV: 'development', LOG_FORMAT: 'json' },
    ];
    for (const env of envs) {
      const { lines, code } = await runUntilListening({ ...env, INSTANCE_ID: 'json-1' });
      expect(code, JSON.stringify(env)).to.equal(0);
      for (const line of lines) {
        const record = JSON.parse(line) as { time?: unknown; level?: unknown; instance?: unknown };
        expect(record.time, line).to.be.a('number');
        expect(record.level, line).to.be.a('number');
        expect(record.instance, line).to.equal('json-1');
      }
      expect(
        lines.some((line) => line.includes('listening on')),
        JSON.stringify(env),
      ).to.equal(true);
    }
  });

  it('prints readable lines in production when LOG_FORMAT=pretty', async () => {
    const { lines } = await runUntilListening({
      NODE_ENV: 'production',
      JWT_SECRET: SECRET,
      LOG_FORMAT: 'pretty',
    });
    expect(lines.find((line) => line.includes('listening on'))).to.match(/^\[[\d:.]+\] INFO: /);
  });

  it('refuses an unknown LOG_FORMAT with one line naming it', async () => {
    const { lines, code } = await runUntilListening({ LOG_FORMAT: 'xml' });
    expect(code).to.equal(1);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^stomp-relay: invalid setting LOG_FORMAT: .*xml/);
  });
});
