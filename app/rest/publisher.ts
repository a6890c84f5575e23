/**
 * How a REST call hands messages to the broker, for the single pushes and the batch alike: refused
 * up front while the broker is down or while the instance already holds REST_MAX_PUSHES_IN_FLIGHT
 * messages waiting on it, then each publish tracked (the drain waits for it) and counted in flight
 * until the broker has taken it or refused it.
 */
import type { Settings } from '../../config/settings';
import type { Admission } from '../admission';
import type { Broker, OutgoingMessage, PublishReceipt } from '../broker/broker';
import type { MessageTarget } from '../destinations/destination';
import { isServiceError, ServiceError } from '../errors';
import type { Metrics } from '../observability/metrics';

export interface PublisherDeps {
  settings: Settings;
  broker: Broker;
  metrics: Metrics;
  admission: Admission;
}

export class RestPublisher {
  constructor(private readonly deps: PublisherDeps) {}

  /** Throws `draining` once SIGTERM has started the drain. */
  assertAdmitting(): void {
    if (this.deps.admission.isDraining()) {
      throw new ServiceError(
        'draining',
        'this instance is shutting down; send the request to another instance',
      );
    }
  }

  /** Throws `broker_unavailable` while the broker connection is down. */
  assertReady(): void {
    const readiness = this.deps.broker.readiness();
    if (!readiness.ready) {
      throw new ServiceError('broker_unavailable', `the broker is unavailable: ${readiness.reason}`);
    }
  }

  /**
   * Throws `overloaded` unless `count` more publishes fit under REST_MAX_PUSHES_IN_FLIGHT. Each one
   * waiting on the broker holds its body; past the cap the caller is told to come back (or go to
   * another instance) rather than this instance holding without bound.
   */
  assertRoomFor(count: number): void {
    const { admission, settings, metrics } = this.deps;
    if (admission.inFlightCount + count > settings.restMaxPushesInFlight) {
      metrics.limitsHit.inc({ limit: 'rest_pushes_in_flight' });
      const what = count === 1 ? 'this push' : `these ${count} messages`;
      throw new ServiceError(
        'overloaded',
        `this instance already has ${admission.inFlightCount} pushes waiting on the broker, no room ` +
          `for ${what} under ${settings.restMaxPushesInFlight} (REST_MAX_PUSHES_IN_FLIGHT): retry shortly, ` +
          'or on another instance',
      );
    }
  }

  /**
   * A batch's `count` messages, handed to the broker by `run` through the `publish` it is given
   * (each resolving only once the broker has taken that message), counted in flight together from
   * now until `run` settles: the call holds every body until it answers, and one count per call,
   * not one tracked promise and two gauge updates per message, is what a batch's items cost here.
   * `publish` rejects with the broker's own error: the caller tells each item what it means.
   */
  async publishBatch<T>(
    count: number,
    run: (
      publish: (target: MessageTarget, message: OutgoingMessage) => Promise<PublishReceipt>,
    ) => Promise<T>,
  ): Promise<T> {
    const { admission, broker, metrics } = this.deps;
    // A broker that throws instead of rejecting fails that message alone, as publish() does.
    const publish = (target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> => {
      try {
        return broker.publish(target, message);
      } catch (err: unknown) {
        return Promise.reject(err);
      }
    };
    metrics.restPushesInFlight.inc(count);
    try {
      return await admission.track(run(publish), count);
    } finally {
      metrics.restPushesInFlight.dec(count);
    }
  }

  /** Hands the message to the broker; resolves only once the broker has taken it. */
  async publish(target: MessageTarget, message: OutgoingMessage): Promise<PublishReceipt> {
    const { admission, broker, metrics } = this.deps;
    metrics.restPushesInFlight.inc();
    try {
      return await admission.track(broker.publish(target, message));
    } catch (err: unknown) {
      // The broker's own refusals (limits, unavailable) keep their code; anything else is an
      // unexplained failure to take the message, which for the caller means "not delivered, retry".
      if (isServiceError(err) && err.code !== 'internal') throw err;
      throw new ServiceError('broker_unavailable', 'the broker did not take the message', { cause: err });
    } finally {
      metrics.restPushesInFlight.dec();
    }
  }
}
