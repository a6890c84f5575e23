/**
 * Process entry: settings, service, signals. A bad setting stops the process with one line naming
 * it; SIGTERM drains (clients told to reconnect elsewhere, in-flight pushes finished) and exits 0.
 */
import { ConfigError, loadConfig } from './config';
import { startService } from './server';

async function main(): Promise<void> {
  let settings;
  try {
    settings = loadConfig();
  } catch (err: unknown) {
    if (err instanceof ConfigError) {
      process.stderr.write(`stomp-relay: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const service = await startService({ settings });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    service.logger.info({ signal }, 'shutting down');
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        service.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`stomp-relay: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
