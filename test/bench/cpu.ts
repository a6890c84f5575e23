/**
 * Who was busy during a measurement: CPU share of given processes (100 % = one core) and of the
 * whole machine (100 % = all cores), from /proc. Tells what capped a run.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + (fields[4] ?? 0);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function processTicks(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
}

export interface CpuShares {
  /** Per named process, percent of one core. */
  processes: Record<string, number>;
  /** Whole machine, percent of all cores. */
  machine: number;
}

export class CpuMeter {
  private readonly startedAt = Date.now();
  private readonly machine = machineTicks();
  private readonly start: Record<string, number>;

  constructor(private readonly pids: Record<string, number[]>) {
    this.start = Object.fromEntries(
      Object.entries(pids).map(([name, list]) => [name, sum(list.map(processTicks))]),
    );
  }

  stop(): CpuShares {
    const seconds = (Date.now() - this.startedAt) / 1000;
    const ticksPerSecond = 100; // USER_HZ on Linux
    const processes: Record<string, number> = {};
    for (const [name, list] of Object.entries(this.pids)) {
      processes[name] = round(
        ((sum(list.map(processTicks)) - this.start[name]) / ticksPerSecond / seconds) * 100,
      );
    }
    const now = machineTicks();
    const machine = round(
      ((now.busy - this.machine.busy) / Math.max(1, now.total - this.machine.total)) * 100,
    );
    return { processes, machine };
  }
}

export const coreCount = (): number => cpus().length;

function sum(values: number[]): number {
  return values.reduce((a, b) => a + (Number.isNaN(b) ? 0 : b), 0);
}

function round(n: number): number {
  return Math.round(n);
}
