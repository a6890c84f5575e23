/**
 * JWT verification shared by every transport and by passport-jwt on the REST API, so a token means
 * the same thing everywhere. Algorithms are pinned by the kind of key configured — HS256 for a
 * secret, RS256 or ES256 for a public key — so `alg: none` and HS256-signed-with-the-public-key
 * (key confusion) are refused by construction, not by a check someone might forget.
 */
import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import jwt, { type Algorithm, type JwtPayload, type VerifyOptions } from 'jsonwebtoken';
import { ServiceError } from '../errors';

/** Characters a user name may not contain (shared with REST's user name check). */
export const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Z}\s]/u;

export interface TokenSettings {
  jwtSecret: string;
  jwtPublicKey: string;
  jwtIssuer: string;
  jwtAudience: string;
  /** Refuse a token without `exp` (jsonwebtoken checks `exp` only when a token has one). */
  jwtRequireExp: boolean;
}

export interface VerifiedToken {
  user: string;
  scopes: string[];
  /** Epoch milliseconds of `exp`, when the token has one. */
  expiresAt?: number;
}

export class TokenVerifier {
  readonly algorithms: Algorithm[];
  /**
   * The key as a KeyObject, made once. Given a string, jsonwebtoken first tries it as a PEM public
   * key on every verify and falls back to a secret only after that parse throws, which costs far
   * more than checking the signature itself.
   */
  readonly key: KeyObject;
  /** True when the secret was generated at start because none was configured (development). */
  readonly generatedSecret: boolean;
  private readonly options: VerifyOptions;
  private readonly requireExp: boolean;

  constructor(settings: TokenSettings) {
    if (settings.jwtPublicKey) {
      this.key = createPublicKey(settings.jwtPublicKey);
      const type = this.key.asymmetricKeyType;
      if (type === 'rsa') this.algorithms = ['RS256'];
      else if (type === 'ec') this.algorithms = ['ES256'];
      else
        throw new ServiceError(
          'bad_request',
          `JWT_PUBLIC_KEY: unsupported key type ${String(type)} (RSA or EC P-256)`,
        );
      this.generatedSecret = false;
    } else {
      this.algorithms = ['HS256'];
      this.generatedSecret = !settings.jwtSecret;
      this.key = createSecretKey(Buffer.from(settings.jwtSecret || randomBytes(32).toString('base64url')));
    }
    this.requireExp = settings.jwtRequireExp;
    this.options = {
      algorithms: this.algorithms,
      ...(settings.jwtIssuer ? { issuer: settings.jwtIssuer } : {}),
      ...(settings.jwtAudience ? { audience: settings.jwtAudience } : {}),
    };
  }

  /** Options passport-jwt passes on to jsonwebtoken: the same as verify() uses. */
  get verifyOptions(): VerifyOptions {
    return { ...this.options };
  }

  verify(token: string): VerifiedToken {
    let payload: string | JwtPayload;
    try {
      payload = jwt.verify(token, this.key, this.options);
    } catch (err: unknown) {
      throw TokenVerifier.explain(err);
    }
    return this.claims(payload);
  }

  /**
   * Turns a payload whose signature, times, issuer and audience passed into the session's
   * identity; shared with the passport strategy, so STOMP and REST refuse the same claims.
   */
  claims(payload: string | JwtPayload): VerifiedToken {
    if (typeof payload === 'string' || typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw new ServiceError('unauthenticated', 'token has no subject (sub claim)');
    }
    // A token without exp would be valid forever, and a leaked one could never be retired.
    if (this.requireExp && typeof payload.exp !== 'number') {
      throw new ServiceError(
        'unauthenticated',
        'token has no expiry (exp claim): this service accepts only tokens that expire',
      );
    }
    if (payload.sub.length > 200)
      throw new ServiceError('unauthenticated', 'token subject is longer than 200 characters');
    // The user name ends up in logs, headers and broker names, and REST paths must be able to name it.
    if (UNPRINTABLE.test(payload.sub)) {
      throw new ServiceError(
        'unauthenticated',
        'token subject must not contain spaces or control characters',
      );
    }
    const scope: unknown = payload.scope;
    const scopes =
      typeof scope === 'string'
        ? scope.split(' ').filter(Boolean)
        : Array.isArray(scope)
          ? scope.map(String)
          : [];
    return {
      user: payload.sub,
      scopes,
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    };
  }

  /** Development tokens: only possible with a shared secret (HS256). */
  canIssue(): boolean {
    return this.algorithms[0] === 'HS256';
  }

  issue(
    user: string,
    scope: string,
    ttlSeconds: number,
    claims: { issuer?: string; audience?: string } = {},
  ): string {
    if (!this.canIssue())
      throw new ServiceError('bad_request', 'tokens can only be issued with JWT_SECRET (HS256)');
    return jwt.sign({ scope }, this.key, {
      algorithm: 'HS256',
      subject: user,
      expiresIn: ttlSeconds,
      ...(claims.issuer ? { issuer: claims.issuer } : {}),
      ...(claims.audience ? { audience: claims.audience } : {}),
    });
  }

  /** Why jsonwebtoken refused a token, in words a user can act on; passport-jwt failures too. */
  static explain(err: unknown): ServiceError {
    if (err instanceof jwt.TokenExpiredError) {
      return new ServiceError('token_expired', `token expired at ${err.expiredAt.toISOString()}`, {
        cause: err,
      });
    }
    if (err instanceof jwt.NotBeforeError) {
      return new ServiceError('unauthenticated', `token not valid before ${err.date.toISOString()}`, {
        cause: err,
      });
    }
    if (err instanceof jwt.JsonWebTokenError) {
      return new ServiceError('unauthenticated', `invalid token: ${err.message}`, { cause: err });
    }
    return new ServiceError('unauthenticated', 'invalid token', { cause: err });
  }
}
