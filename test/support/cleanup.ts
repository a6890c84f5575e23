/**
 * Cleanup that runs on failure too: an `after` hook written as one await after another stops at
 * the first that throws (a service whose stop fails, a before hook that never made it, a policy
 * already gone), and whatever came after it (the queues to delete) stays behind on a shared
 * RabbitMQ. Here each step runs whatever the ones before it did; then the first failure is thrown,
 * so the hook still fails.
 */
export async function cleanUp(...steps: (() => unknown)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err: unknown) {
      failures.push(err);
    }
  }
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, `${failures.length} cleanup steps failed`);
}
