/**
 * The one reading of an `Authorization` value as a bearer credential, shared by REST (passport-jwt
 * is given this instead of its own extractor) and STOMP CONNECT, so a header means the same thing on
 * both. RFC 6750 §2.1: `Bearer` (any case, RFC 7235 §2.1), whitespace, one b64token, nothing else;
 * passport-jwt's own extractor takes the second word of anything, `Bearer <jwt> junk` included.
 * Trailing blanks are allowed: HTTP strips them from header values, STOMP does not.
 *
 * The REST token cache keys on what this returns, so a cached token is exactly one this accepts.
 */
const BEARER = /^Bearer[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i;

/** `Bearer <jwt>` → `<jwt>`; undefined when the value is not exactly one bearer credential. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = BEARER.exec(authorization);
  return match ? match[1] : undefined;
}
