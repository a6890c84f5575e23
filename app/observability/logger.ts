/**
 * One pino logger, injected everywhere. Redaction is a backstop: code never passes tokens or frame
 * bodies to the logger in the first place.
 *
 * Two formats, as pino users expect: JSON lines (one object per line, epoch-millisecond `time`) for
 * production and anything that collects logs, and pino-pretty's readable lines (local time, level
 * name, message, then the fields on the same line) for a developer's terminal. LOG_FORMAT picks;
 * `auto` is pretty unless NODE_ENV is `production`.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export type LogFormat = 'json' | 'pretty';

/** The format LOG_FORMAT names; `auto`: JSON in production, pretty everywhere else. */
export function logFormatFor(setting: string, nodeEnv: string): LogFormat {
  if (setting === 'json' || setting === 'pretty') return setting;
  return nodeEnv === 'production' ? 'json' : 'pretty';
}

/** pino-pretty in the process (synchronous, so nothing is lost when the process exits). */
function prettyStream(): pretty.PrettyStream {
  return pretty({
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,instance',
    messageFormat: '{if instance}[{instance}] {end}{msg}',
    singleLine: true,
  });
}

export function createLogger(level: string, instanceId: string, format: LogFormat = 'json'): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { instance: instanceId },
    redact: {
      paths: ['token', 'authorization', 'passcode', '*.token', '*.authorization', '*.passcode'],
      censor: '[redacted]',
    },
  };
  return format === 'pretty' ? pino(options, prettyStream()) : pino(options);
}

export const silentLogger: Logger = pino({ level: 'silent' });
