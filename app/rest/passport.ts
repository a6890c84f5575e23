/**
 * Bearer-JWT authentication for the REST API: passport-jwt configured from the same TokenVerifier
 * the STOMP transports use (same key, same pinned algorithms, same iss/aud), so a token means the
 * same thing on every entry point. Each service gets its own Passport instance: tests run several
 * services in one process, and a shared global would mix their keys.
 *
 * passport's own failure answer is a bare `401 Unauthorized` text; the custom callback below turns
 * every failure into a ServiceError instead, so the client reads why (expired, bad signature,
 * missing token) in the usual JSON error shape.
 */
import type { Request, RequestHandler } from 'express';
import jwt, { type JwtPayload } from 'jsonwebtoken';
import passport from 'passport';
import { Strategy as JwtStrategy } from 'passport-jwt';
import { bearerToken } from '../auth/bearer';
import { TokenVerifier } from '../auth/token-verifier';
import type { VerifiedTokenCache } from '../auth/verified-token-cache';
import { ServiceError } from '../errors';

/** Who is calling, as the verified token says. */
export interface Principal {
  user: string;
  scopes: string[];
}

/** Set by authenticate() for the request it let through; a WeakMap keeps Express.User untouched. */
const principals = new WeakMap<Request, Principal>();

/** The caller of an authenticated request; throws when the route forgot to authenticate. */
export function principalOf(req: Request): Principal {
  const found = principals.get(req);
  if (!found) throw new ServiceError('unauthenticated', 'this endpoint needs a bearer token');
  return found;
}

/** Refuses (403) a caller whose token lacks `scope`. */
export function requireScope(scope: string): RequestHandler {
  return (req, _res, next) => {
    const { scopes } = principalOf(req);
    if (!scopes.includes(scope)) {
      const has = scopes.length > 0 ? `it has: ${scopes.join(' ')}` : 'it has none';
      next(new ServiceError('forbidden', `this call needs a token with scope '${scope}' (${has})`));
      return;
    }
    next();
  };
}

function isPrincipal(value: unknown): value is Principal {
  if (typeof value !== 'object' || value === null) return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.user === 'string' && Array.isArray(p.scopes) && p.scopes.every((s) => typeof s === 'string')
  );
}

/** Why passport-jwt failed, in the wording TokenVerifier uses for STOMP. */
function explainFailure(req: Request, info: unknown): ServiceError {
  if (info instanceof ServiceError) return info;
  if (info instanceof jwt.JsonWebTokenError) return TokenVerifier.explain(info);
  const authorization = req.get('authorization');
  if (authorization === undefined) {
    return new ServiceError(
      'unauthenticated',
      'missing bearer token: send the header Authorization: Bearer <jwt>',
    );
  }
  return new ServiceError('unauthenticated', 'the Authorization header is not a bearer token (Bearer <jwt>)');
}

/** passport-jwt takes string issuers/audiences only; TokenVerifier only ever configures strings. */
function stringsOnly(
  value: string | RegExp | (string | RegExp)[] | undefined,
): string | string[] | undefined {
  if (value === undefined || typeof value === 'string') return value;
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => {
    if (typeof v !== 'string') throw new TypeError('passport-jwt cannot check a RegExp issuer or audience');
    return v;
  });
}

/**
 * Builds the per-service authenticator; its middleware answers 401 JSON or lets the request on.
 * A bearer token passport-jwt accepted before (and that has not expired since) is taken from
 * `cache` without running passport again; anything else goes through passport-jwt.
 */
export function createAuthenticator(verifier: TokenVerifier, cache: VerifiedTokenCache): RequestHandler {
  const instance = new passport.Passport();
  const options = verifier.verifyOptions;
  instance.use(
    new JwtStrategy(
      {
        // Not ExtractJwt.fromAuthHeaderAsBearerToken(): it takes `Bearer <jwt> junk` too. STOMP reads
        // the header with the same function.
        jwtFromRequest: (req: Request) => bearerToken(req.get('authorization')) ?? null,
        // passport-jwt hands the key to jsonwebtoken unchanged; its types predate KeyObject, which
        // jsonwebtoken takes (and needs, to skip a failing PEM parse per request).
        secretOrKeyProvider: (_req, _token, done) => done(null, verifier.key as unknown as Buffer),
        algorithms: verifier.algorithms,
        issuer: stringsOnly(options.issuer),
        audience: stringsOnly(options.audience),
        passReqToCallback: true,
      },
      (
        req: Request,
        payload: JwtPayload,
        done: (err: unknown, user?: Principal | false, info?: unknown) => void,
      ) => {
        try {
          const verified = verifier.claims(payload);
          const jwt = bearerToken(req.get('authorization'));
          if (jwt !== undefined) cache.add(jwt, verified);
          done(null, { user: verified.user, scopes: verified.scopes });
        } catch (err: unknown) {
          // A token with a good signature but no usable subject: an authentication failure, not a 500.
          done(null, false, err);
        }
      },
    ),
  );

  return (req, res, next) => {
    const jwt = bearerToken(req.get('authorization'));
    const known = jwt === undefined ? undefined : cache.get(jwt);
    if (known !== undefined) {
      principals.set(req, { user: known.user, scopes: known.scopes });
      next();
      return;
    }
    const handler: RequestHandler = instance.authenticate(
      'jwt',
      { session: false },
      (err: unknown, user: unknown, info: unknown) => {
        if (err) {
          next(err);
          return;
        }
        if (!isPrincipal(user)) {
          next(explainFailure(req, info));
          return;
        }
        principals.set(req, user);
        next();
      },
    ) as RequestHandler;
    handler(req, res, next);
  };
}
