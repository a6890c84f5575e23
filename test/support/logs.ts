/**
 * A service whose log lines a test can read: a pino logger at `debug` (everything the service would
 * ever write) into memory. It has none of the logger's own redaction, so a test of what reaches the
 * log sees what the code handed to it.
 */
import pino, { type Logger } from 'pino';
import type { Settings } from '../../config/settings';
import { startService, type RunningService } from '../../app/server';
import { testSettings } from './service';

export interface LogEntry {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

export class LogCapture {
  /** Every line written, as written. */
  readonly lines: string[] = [];
  readonly logger: Logger;

  constructor(level = 'debug') {
    this.logger = pino({ level }, { write: (line: string) => void this.lines.push(line) });
  }

  entries(): LogEntry[] {
    return this.lines.map((line) => JSON.parse(line) as LogEntry);
  }
}

/** A test service (port 0, the test secret) logging into `capture`. */
export function startLoggedService(
  capture: LogCapture,
  overrides: Partial<Settings> = {},
): Promise<RunningService> {
  return startService({ settings: testSettings(overrides), logger: capture.logger });
}
