/**
 * Runs one of the bench's stand-alone scripts (test/bench/<script>.ts) in a child process and
 * resolves with the JSON object on the last line it prints. The inbox figures come from such
 * scripts so they can be run alone too, and so the process measured is theirs, not the harness's.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export function runJsonChild<T>(root: string, script: string, args: string[], timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/bench', script), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code ?? signal}`);
        resolve(JSON.parse(line) as T);
      } catch (e: unknown) {
        reject(
          new Error(
            `${script} ${args.join(' ')}: ${e instanceof Error ? e.message : String(e)} ${err.slice(-300)}`,
          ),
        );
      }
    });
  });
}
