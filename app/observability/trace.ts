/**
 * Per-message trace lines: with LOG_LEVEL=trace every step one message takes through this
 * instance is logged under its id, so a message that went missing can be followed from the REST
 * call to the socket (`npm run soak` collects them and prints the steps of each lost push). Off
 * (a no-op, not even a level check per step) at any other level.
 */
import type { Logger } from './logger';

export type TraceStep =
  /** REST took the push and the broker confirmed it. */
  | 'accepted'
  /** The instance queue brought it here; `local` subscriptions took it. */
  | 'routed'
  /** A session wrote it to its client. */
  | 'written'
  /** A session had it and did not write it (closed, or its subscription just went). */
  | 'not written';

export type MessageTracer = (step: TraceStep, id: string, fields: Record<string, unknown>) => void;

export const noTrace: MessageTracer = () => undefined;

export function messageTracer(logger: Logger): MessageTracer {
  if (!logger.isLevelEnabled('trace')) return noTrace;
  return (step, id, fields) => logger.trace({ trace: id, step, ...fields }, 'message trace');
}

/** One trace line where no tracer is kept (a hot path that has the logger at hand). */
export function traceMessage(
  logger: Logger,
  step: TraceStep,
  id: string,
  fields: Record<string, unknown>,
): void {
  if (logger.isLevelEnabled('trace')) logger.trace({ trace: id, step, ...fields }, 'message trace');
}
