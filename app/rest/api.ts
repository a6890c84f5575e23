/**
 * The REST API a backend uses to push (mounted at /api). The rule that matters most: a push answers
 * 202 only after Broker.publish() has resolved, i.e. after the broker has taken the message; any
 * failure on the way is an error status, never a 202 for a message that may be lost.
 *
 * Authentication runs before the body is read, so an anonymous caller cannot make the service
 * parse (or buffer up to the limit) a body it will refuse anyway.
 */
import express, { type Request, type RequestHandler } from 'express';
import type { Settings } from '../../config/settings';
import type { Admission } from '../admission';
import { ADMIN_SCOPE, adminGate } from '../admin/access';
import type { ClusterView } from '../admin/cluster-view';
import type { TokenVerifier } from '../auth/token-verifier';
import { VerifiedTokenCache } from '../auth/verified-token-cache';
import type { Broker } from '../broker/broker';
import { deliverySeam } from '../delivery/delivery-seam';
import type { SessionDirectory } from '../presence/directory';
import type { Inbox } from '../inbox/inbox';
import type { MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { batchCall, batchHandler, type BatchInbox } from './batch';
import { errorMiddleware, methodNotAllowed, notFound, sendError } from './errors';
import { batchInboxOf, statusHandler } from './inbox-routes';
import { apiDescriptionHandler } from './openapi';
import { createAuthenticator, principalOf, requireScope } from './passport';
import { LeanPushRoute } from './lean-push';
import { RestPublisher } from './publisher';
import { pushOnce, type PushDeps, type PushKind } from './push';
import { sessionsHandler } from './sessions-route';
import { sharedTarget, userTarget } from './targets';
import { devTokenRequest, userName } from './validation';

export interface ApiDeps {
  settings: Settings;
  broker: Broker;
  /** Who is connected where: GET /api/users/{user}/sessions. */
  presence: SessionDirectory;
  /** Durable destinations' pushes (single and batch) and the status call. */
  inbox: Inbox;
  verifier: TokenVerifier;
  metrics: Metrics;
  logger: Logger;
  /** Refuses pushes once SIGTERM has started the drain; counts the ones in flight. */
  admission: Admission;
  /** The cluster view GET /api/admin/cluster answers from. */
  admin: ClusterView;
  /** The inbox for a batch's durable items, when a test gives its own; else `inbox`'s. */
  batchInbox?: BatchInbox;
}

/** A remembered REST token is verified again after this long even if it expires later. */
const TOKEN_CACHE_MAX_AGE_MS = 5 * 60_000;

export function createApiRouter(deps: ApiDeps): express.Router {
  return createApi(deps).router;
}

/** The express side of both push routes; lean-push.ts takes the common case before express. */
function pushHandler(
  deps: PushDeps,
  kind: PushKind,
  resolve: (req: Request, destination: string) => MessageTarget,
): RequestHandler {
  return async (req, res) => {
    const call = { caller: principalOf(req), headers: req.headers };
    const answer = await pushOnce(deps, kind, call, req.body, (destination) => resolve(req, destination));
    res.status(202).json(answer);
  };
}

interface PushRoutes {
  pushDeps: PushDeps;
  /** The status call's. */
  inbox: Inbox;
  authenticate: RequestHandler;
  json: RequestHandler;
  batch: RequestHandler;
}

/** The three push calls: to a user, to a topic or queue, and many at once. */
function mountPushRoutes(router: express.Router, settings: Settings, routes: PushRoutes): void {
  const { pushDeps, authenticate, json } = routes;
  const push = requireScope('push');
  // POST /api/users/{user}/messages: like Spring's convertAndSendToUser.
  router.post(
    '/users/:user/messages',
    authenticate,
    push,
    json,
    pushHandler(pushDeps, 'user', (req, destination) =>
      userTarget(destination, userName(req.params.user, 'the user in the URL')),
    ),
  );
  router.all('/users/:user/messages', methodNotAllowed(['POST']));

  // GET /api/users/{user}/messages/{id}: where a durable push is, per device.
  router.get('/users/:user/messages/:id', authenticate, push, statusHandler(routes.inbox));
  router.all('/users/:user/messages/:id', methodNotAllowed(['GET']));

  // POST /api/messages: like convertAndSend, to /topic/<name> or /queue/<name>.
  router.post(
    '/messages',
    authenticate,
    push,
    json,
    pushHandler(pushDeps, 'destination', (req, destination) => sharedTarget(destination, principalOf(req))),
  );
  router.all('/messages', methodNotAllowed(['POST']));

  // POST /api/messages/batch: many pushes and publishes in one call, one result per item.
  router.post(
    '/messages/batch',
    authenticate,
    push,
    express.json({ limit: settings.restBatchBodyLimitBytes }),
    routes.batch,
  );
  router.all('/messages/batch', methodNotAllowed(['POST']));
}

/** POST /api/dev/token: development only, so the demo page and curl examples work without an IdP. */
function mountDevToken(router: express.Router, deps: ApiDeps, json: RequestHandler): void {
  const { settings, verifier, logger } = deps;
  if (settings.nodeEnv === 'production') {
    router.post('/dev/token', () => {
      throw new ServiceError('not_found', 'POST /api/dev/token is off when NODE_ENV=production');
    });
  } else {
    router.post('/dev/token', json, (req, res) => {
      const { user, scope } = devTokenRequest(req.body);
      if (!verifier.canIssue()) {
        sendError(
          res,
          'not_implemented',
          'dev tokens need a shared secret (JWT_SECRET, HS256); this instance verifies with JWT_PUBLIC_KEY',
        );
        return;
      }
      const token = verifier.issue(user, scope, settings.devTokenTtlS, {
        issuer: settings.jwtIssuer,
        audience: settings.jwtAudience,
      });
      logger.info({ user, scope }, 'dev token issued');
      res.set('Cache-Control', 'no-store').json({ token, user, expiresIn: settings.devTokenTtlS });
    });
  }
  router.all('/dev/token', methodNotAllowed(['POST']));
}

/**
 * The /api router, and the lean route of the push and batch calls (lean-push.ts) to be asked first: they share the token
 * cache, so a token passport-jwt verified on the router is one the lean route knows.
 */
export function createApi(deps: ApiDeps): { router: express.Router; lean: LeanPushRoute } {
  const { settings, broker, inbox, metrics, logger, admission } = deps;
  const router = express.Router();
  const tokens = new VerifiedTokenCache({
    maxEntries: settings.restTokenCacheSize,
    maxAgeMs: TOKEN_CACHE_MAX_AGE_MS,
  });
  const authenticate = createAuthenticator(deps.verifier, tokens);
  const json = express.json({ limit: settings.restBodyLimitBytes });
  const publisher = new RestPublisher({ settings, broker, metrics, admission });
  // The same delivery seam as the sessions' (delivery-seam.ts): durable pushes are the durable policy's.
  const deliveries = deliverySeam(inbox, broker);
  const pushDeps: PushDeps = { publisher, deliveries, admission, metrics, logger };
  const batchInbox = deps.batchInbox ?? batchInboxOf(deliveries);
  const batchDeps = { settings, publisher, metrics, logger, inbox: batchInbox };
  const batch = batchHandler(batchDeps);
  mountPushRoutes(router, settings, { pushDeps, inbox, authenticate, json, batch });

  // GET /api/users/{user}/sessions: a user may list their own; a backend (scope push) anyone's.
  router.get('/users/:user/sessions', authenticate, sessionsHandler(deps.presence));
  router.all('/users/:user/sessions', methodNotAllowed(['GET']));

  mountDevToken(router, deps, json);

  // GET /api/admin/cluster: the live cluster view behind /admin (off in production unless enabled).
  router.get('/admin/cluster', adminGate(settings), authenticate, requireScope(ADMIN_SCOPE), (_req, res) => {
    res.set('Cache-Control', 'no-store').json(deps.admin.snapshot());
  });
  router.all('/admin/cluster', adminGate(settings), methodNotAllowed(['GET']));

  // GET /api/openapi.json: the API description, for anyone (it holds no secret).
  router.get('/openapi.json', apiDescriptionHandler(settings));
  router.all('/openapi.json', methodNotAllowed(['GET']));

  router.use(notFound);
  router.use(errorMiddleware({ logger, metrics }));
  const lean = new LeanPushRoute({
    ...pushDeps,
    tokens,
    bodyLimitBytes: settings.restBodyLimitBytes,
    batch: { call: batchCall(batchDeps), bodyLimitBytes: settings.restBatchBodyLimitBytes },
  });
  return { router, lean };
}
