/**
 * One push (POST /api/users/{user}/messages, POST /api/messages) from a parsed body to its 202
 * answer: validate, publish (answered only once the broker has taken it), count, log. Both ways a
 * push arrives share it: the express routes and the lean route (lean-push.ts), so they cannot
 * answer differently.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Admission } from '../admission';
import type { DeliveryPolicies } from '../delivery/policies';
import { formatTarget, type MessageTarget } from '../destinations/destination';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { traceMessage } from '../observability/trace';
import type { Principal } from './passport';
import { idempotencyKeyOf, storedAnswer, type StoredAnswer } from './inbox-routes';
import type { RestPublisher } from './publisher';
import { failedOutcome, type PushOutcome } from './push-outcome';
import { pushRequest } from './validation';

export type PushKind = 'user' | 'destination';

/** The 202 body: `{"id"}`, with `online` where the broker could tell (user pushes). */
export type PushAnswer = { id: string } | { id: string; online: boolean } | StoredAnswer;

/** Who pushes, and the request headers that may say more (Idempotency-Key, durable pushes only). */
export interface PushCall {
  caller: Principal;
  headers: IncomingHttpHeaders;
}

export interface PushDeps {
  publisher: RestPublisher;
  /** The delivery seam: which policy serves a destination; the durable one stores and answers. */
  deliveries: DeliveryPolicies;
  admission: Admission;
  metrics: Metrics;
  logger: Logger;
}

/**
 * Pushes `body` (the parsed request body) to where `resolve` says its destination goes; resolves
 * with the 202 body, rejects with the ServiceError the caller answers with.
 */
export async function pushOnce(
  deps: PushDeps,
  kind: PushKind,
  call: PushCall,
  body: unknown,
  resolve: (destination: string) => MessageTarget,
): Promise<PushAnswer> {
  const { publisher, deliveries, admission, metrics, logger } = deps;
  let outcome: PushOutcome = 'rejected';
  try {
    publisher.assertAdmitting();
    const request = pushRequest(body);
    const target = resolve(request.destination);
    const destination = formatTarget(target);
    const policy = deliveries.policyFor(target);
    if (policy.keepsHistory) {
      // Committed to the store, not only handed to the broker: the durable policy's receipt is the 202.
      const idempotencyKey = idempotencyKeyOf(call);
      const id = randomUUID();
      const receipt = await admission.track(
        policy.publish(target, { id, ...request.message }, { idempotencyKey }),
      );
      const stored = storedAnswer(id, receipt);
      if (stored.online === false) metrics.pushesOffline.inc();
      outcome = 'accepted';
      return stored;
    }
    const id = randomUUID();
    const started = performance.now();
    publisher.assertReady();
    publisher.assertRoomFor(1);
    const receipt = await publisher.publish(target, { id, ...request.message });
    metrics.publishLatency.observe({ source: 'rest' }, (performance.now() - started) / 1000);
    outcome = 'accepted';
    // Checked first: otherwise the record is built for every push with debug logging off.
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        {
          id,
          caller: call.caller.user,
          destination,
          kind,
          bytes: request.message.body.length,
        },
        'REST push accepted',
      );
    }
    if (receipt.online === false) metrics.pushesOffline.inc();
    traceMessage(logger, 'accepted', id, { destination, online: receipt.online });
    // `online` only where the broker could tell (user pushes): SPEC, REST section.
    return receipt.online === undefined ? { id } : { id, online: receipt.online };
  } catch (err: unknown) {
    outcome = failedOutcome(err);
    throw err;
  } finally {
    metrics.pushes.inc({ kind, outcome });
  }
}
