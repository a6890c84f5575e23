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
import type { Inbox } from '../inbox/inbox';
import type { MessageTarget } from '../destinations/destination';
import { isServiceError, ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { batchHandler, type BatchInbox } from './batch';
import { errorMiddleware, methodNotAllowed, notFound, sendError } from './errors';
import { batchInboxOf, statusHandler } from './inbox-routes';
import { apiDescriptionHandler } from './openapi';
import { createAuthenticator, principalOf, requireScope } from './passport';
import { LeanPushRoute } from './lean-push';
import { RestPublisher } from './publisher';
import { pushOnce, type PushKind } from './push';
import { sharedTarget, userTarget } from './targets';
import { devTokenRequest, userName } from './validation';

export interface ApiDeps {
  settings: Settings;
  broker: Broker;
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

/**
 * The /api router, and the lean push route (lean-push.ts) to be asked first: they share the token
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
  const push = requireScope('push');
  const publisher = new RestPublisher({ settings, broker, metrics, admission });

  const pushDeps = { publisher, inbox, admission, metrics, logger };
  /** The express side of both push routes; lean-push.ts takes the common case before express. */
  function pushHandler(
    kind: PushKind,
    resolve: (req: Request, destination: string) => MessageTarget,
  ): RequestHandler {
    return async (req, res) => {
      const call = { caller: principalOf(req), headers: req.headers };
      const answer = await pushOnce(pushDeps, kind, call, req.body, (destination) =>
        resolve(req, destination),
      );
      res.status(202).json(answer);
    };
  }

  // POST /api/users/{user}/messages: like Spring's convertAndSendToUser.
  router.post(
    '/users/:user/messages',
    authenticate,
    push,
    json,
    pushHandler('user', (req, destination) =>
      userTarget(destination, userName(req.params.user, 'the user in the URL')),
    ),
  );
  router.all('/users/:user/messages', methodNotAllowed(['POST']));

  // GET /api/users/{user}/messages/{id}: where a durable push is, per device.
  router.get('/users/:user/messages/:id', authenticate, push, statusHandler(inbox));
  router.all('/users/:user/messages/:id', methodNotAllowed(['GET']));

  // POST /api/messages: like convertAndSend, to /topic/<name> or /queue/<name>.
  router.post(
    '/messages',
    authenticate,
    push,
    json,
    pushHandler('destination', (req, destination) => sharedTarget(destination, principalOf(req))),
  );
  router.all('/messages', methodNotAllowed(['POST']));

  // POST /api/messages/batch: many pushes and publishes in one call, one result per item.
  router.post(
    '/messages/batch',
    authenticate,
    push,
    express.json({ limit: settings.restBatchBodyLimitBytes }),
    batchHandler({
      settings,
      publisher,
      metrics,
      logger,
      inbox: deps.batchInbox ?? batchInboxOf(inbox),
    }),
  );
  router.all('/messages/batch', methodNotAllowed(['POST']));

  // GET /api/users/{user}/sessions: a user may list their own; a backend (scope push) anyone's.
  router.get('/users/:user/sessions', authenticate, async (req, res) => {
    const user = userName(req.params.user, 'the user in the URL');
    const caller = principalOf(req);
    if (caller.user !== user && !caller.scopes.includes('push')) {
      throw new ServiceError('forbidden', "listing another user's sessions needs a token with scope 'push'");
    }
    let sessions;
    try {
      sessions = await broker.sessions.list(user);
    } catch (err: unknown) {
      if (isServiceError(err) && err.code !== 'internal') throw err;
      throw new ServiceError('broker_unavailable', 'the session list could not be read from the broker', {
        cause: err,
      });
    }
    res.json({ user, sessions });
  });
  router.all('/users/:user/sessions', methodNotAllowed(['GET']));

  // POST /api/dev/token: development only, so the demo page and curl examples work without an IdP.
  if (settings.nodeEnv === 'production') {
    router.post('/dev/token', () => {
      throw new ServiceError('not_found', 'POST /api/dev/token is off when NODE_ENV=production');
    });
  } else {
    router.post('/dev/token', json, (req, res) => {
      const { user, scope } = devTokenRequest(req.body);
      if (!deps.verifier.canIssue()) {
        sendError(
          res,
          'not_implemented',
          'dev tokens need a shared secret (JWT_SECRET, HS256); this instance verifies with JWT_PUBLIC_KEY',
        );
        return;
      }
      const token = deps.verifier.issue(user, scope, settings.devTokenTtlS, {
        issuer: settings.jwtIssuer,
        audience: settings.jwtAudience,
      });
      logger.info({ user, scope }, 'dev token issued');
      res.set('Cache-Control', 'no-store').json({ token, user, expiresIn: settings.devTokenTtlS });
    });
  }

  router.all('/dev/token', methodNotAllowed(['POST']));

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
  const lean = new LeanPushRoute({ ...pushDeps, tokens, bodyLimitBytes: settings.restBodyLimitBytes });
  return { router, lean };
}
