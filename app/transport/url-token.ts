/**
 * Tokens in URLs. Browsers cannot set headers on a WebSocket, an EventSource or a SockJS request,
 * so a client may put its JWT in the `access_token` query parameter; it is read once, for
 * authentication, and kept out of every log line: sockjs-node logs request URLs, query and all.
 */

/** The `access_token` query parameter, if the URL carries one. */
export function queryToken(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('access_token') ?? undefined;
}

/** A query parameter that names a credential, up to the end of its value. */
const CREDENTIAL_PARAMETER = /([?&;](?:access_token|token|jwt|passcode|authorization)=)[^&;#\s"']*/gi;
/** A JWT anywhere (base64url of `{"` starts its header), whatever carried it. */
const JWT = /\beyJ[\w-]*\.[\w-]+\.[\w-]*/g;

/** The text with every credential in it (a token parameter's value, any JWT) replaced by `[redacted]`. */
export function redactTokens(text: string): string {
  return text.replace(CREDENTIAL_PARAMETER, '$1[redacted]').replace(JWT, '[redacted]');
}
