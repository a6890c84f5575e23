/**
 * Tokens in URLs. Browsers cannot set headers on a WebSocket, an EventSource or a SockJS request,
 * so a client may put its JWT in the `access_token` query parameter.
 */

/** The `access_token` query parameter, if the URL carries one. */
export function queryToken(url: string | undefined): string | undefined {
  if (!url) return undefined;
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('access_token') ?? undefined;
}
