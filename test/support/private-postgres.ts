/**
 * A PostgreSQL server of a test's own, for the tests that restart PostgreSQL for real: the
 * machine's server (127.0.0.1:5432) is shared by every other test running meanwhile, so it is never
 * the one restarted inside `npm test`. This one is made with initdb into a temporary directory,
 * listens on 127.0.0.1 on a free port (its Unix socket in that directory, not /var/run/postgresql),
 * runs as the postgres user (root cannot run postgres; `runuser` when we are root) and is removed,
 * directory and all, by `remove()`. Every command is bounded in time.
 *
 * The superuser has a random password (scram-sha-256 over TCP), so the server is no open door on
 * the machine while it runs.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { freePort } from './cluster';

const execFileAsync = promisify(execFile);
const BIN = process.env.POSTGRES_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
const COMMAND_MS = 60_000;
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** uid and gid of the postgres user, from /etc/passwd. */
function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const fields = line?.split(':');
  if (!fields) throw new Error('no postgres user in /etc/passwd: install postgresql');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** Runs one of PostgreSQL's programs as the postgres user; rejects with its stderr. */
async function asPostgres(program: string, args: string[]): Promise<string> {
  const path = join(BIN, program);
  if (!existsSync(path)) throw new Error(`${path} not found (POSTGRES_BIN_DIR names the directory)`);
  const [command, all] = IS_ROOT ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
  try {
    const { stdout } = await execFileAsync(command, all, { timeout: COMMAND_MS });
    return stdout;
  } catch (err: unknown) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`${program} ${args.join(' ')}: ${stderr || (err as Error).message}`, { cause: err });
  }
}

export class PrivatePostgres {
  private running = false;

  private constructor(
    private readonly dir: string,
    readonly port: number,
    private readonly password: string,
  ) {}

  /** A fresh server, initialised and started. */
  static async start(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-pg-'));
    const server = new PrivatePostgres(dir, await freePort(), randomBytes(12).toString('hex'));
    try {
      const { uid, gid } = postgresIds();
      if (IS_ROOT) chownSync(dir, uid, gid);
      const pwfile = join(dir, 'password');
      writeFileSync(pwfile, server.password, { mode: 0o600 });
      if (IS_ROOT) chownSync(pwfile, uid, gid);
      await asPostgres('initdb', [
        '-D',
        server.dataDir,
        '-U',
        'postgres',
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=peer',
        '-E',
        'UTF8',
        '--no-sync',
      ]);
      rmSync(pwfile);
      await server.startServer();
      return server;
    } catch (err: unknown) {
      await server.remove();
      throw err;
    }
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  url(database = 'postgres'): string {
    return `postgres://postgres:${this.password}@127.0.0.1:${this.port}/${database}`;
  }

  /** Starts the server and waits until it accepts connections (pg_ctl -w). */
  async startServer(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`;
    await asPostgres('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-o',
      options,
      'start',
    ]);
    this.running = true;
  }

  /**
   * Stops the server. `immediate` is a crash as far as clients can tell (connections cut, no
   * clean shutdown; the next start recovers from the WAL); `fast` ends sessions cleanly first.
   */
  async stopServer(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await asPostgres('pg_ctl', ['-D', this.dataDir, '-w', '-t', '60', '-m', mode, 'stop']);
    this.running = false;
  }

  /** The server's log so far, for a failure message. */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'server.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops the server if it runs and deletes its directory. Safe to call more than once. */
  async remove(): Promise<void> {
    if (this.running) await this.stopServer('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
