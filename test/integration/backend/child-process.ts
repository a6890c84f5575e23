/**
 * Runs an example backend (or any client that is not ours) as a child process: collects its output
 * lines, waits for a line, and stops it with SIGTERM (SIGKILL if it does not go within 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from '../../support/wait';

export class ChildRun {
  readonly lines: string[] = [];
  private exited = false;
  private exitCode: number | null = null;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    let partial = '';
    const collect = (chunk: Buffer): void => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('exit', (code) => {
      this.exited = true;
      this.exitCode = code;
    });
  }

  static start(name: string, command: string, args: string[], env: Record<string, string> = {}): ChildRun {
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ChildRun(name, child);
  }

  get output(): string {
    return this.lines.join('\n');
  }

  async waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    await waitFor(
      () => {
        if (this.exited) throw new Error(`${this.name} exited with ${this.exitCode}:\n${this.output}`);
        return this.lines.some((l) => pattern.test(l));
      },
      timeoutMs,
      `${this.name} to print ${pattern} (output so far:\n${this.output})`,
    );
    return this.lines.find((l) => pattern.test(l)) ?? '';
  }

  /** Resolves with the exit code once the process ends by itself (null: killed by a signal). */
  async waitForExit(timeoutMs = 10_000): Promise<number | null> {
    await waitFor(() => this.exited, timeoutMs, `${this.name} to exit (output so far:\n${this.output})`);
    return this.exitCode;
  }

  async stop(): Promise<number | null> {
    if (this.exited) return this.exitCode;
    this.child.kill('SIGTERM');
    try {
      await waitFor(() => this.exited, 5_000, `${this.name} to exit after SIGTERM`);
    } catch {
      this.child.kill('SIGKILL');
      await waitFor(() => this.exited, 2_000, `${this.name} to exit after SIGKILL`);
    }
    return this.exitCode;
  }
}
