/**
 * One pino logger, injected everywhere. Redaction is a backstop: code never passes tokens or frame
 * bodies to the logger in the first place.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, instanceId: string): Logger {
  return pino({
    level,
    base: { instance: instanceId },
    redact: {
      paths: ['token', 'authorization', 'passcode', '*.token', '*.authorization', '*.passcode'],
      censor: '[redacted]',
    },
  });
}

export const silentLogger: Logger = pino({ level: 'silent' });
