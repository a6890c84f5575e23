/**
 * Endpoints for whoever runs the service (mounted at /): liveness, readiness for the load balancer,
 * and Prometheus metrics. None needs authentication; none reveals more than the broker kind and
 * why the instance is not ready.
 */
import express from 'express';
import type { Broker } from '../broker/broker';
import type { Inbox } from '../inbox/inbox';
import type { Metrics } from '../observability/metrics';
import { methodNotAllowed, sendError } from './errors';

export interface OpsDeps {
  broker: Broker;
  inbox: Inbox;
  metrics: Metrics;
  isDraining(): boolean;
}

export function createOpsRouter(deps: OpsDeps): express.Router {
  const router = express.Router();

  // Liveness: the process answers. Deliberately independent of the broker, so a broker outage
  // makes instances unready (taken out of the balancer) rather than restarted.
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', (_req, res) => {
    if (deps.isDraining()) {
      sendError(res, 'not_ready', 'the instance is draining (shutting down)');
      return;
    }
    const readiness = deps.broker.readiness();
    if (!readiness.ready) {
      sendError(res, 'not_ready', readiness.reason);
      return;
    }
    // The inbox store is named but does not make the instance unready: with PostgreSQL down only
    // durable pushes fail (503), and taking every instance out of the balancer would stop the rest.
    const inbox = deps.inbox.readiness();
    res.json({
      status: 'ready',
      broker: deps.broker.kind,
      inbox: inbox.ready === true ? 'ready' : inbox.ready === 'off' ? 'off' : 'unavailable',
      ...(inbox.ready === true ? {} : { inboxReason: inbox.reason }),
    });
  });

  router.get('/metrics', async (_req, res) => {
    const text = await deps.metrics.registry.metrics();
    res.set('Content-Type', deps.metrics.registry.contentType).send(text);
  });

  for (const path of ['/healthz', '/readyz', '/metrics']) router.all(path, methodNotAllowed(['GET']));

  return router;
}
