/**
 * Origin policy for WebSocket and SockJS handshakes. Browsers always send Origin on WebSocket
 * upgrades and cross-origin XHR; a request without one is not from a browser page (or is a
 * same-origin GET), so it cannot be a cross-site attack and is let through, as Spring does.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined || allowed.includes('*')) return true;
  if (allowed.includes(origin)) return true;
  // Same origin: the page was served by this host (through whatever proxy kept the Host header).
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The answer to a WebSocket upgrade from an origin that is not allowed. */
export function refuseUpgrade(socket: Duplex): void {
  socket.end(
    'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\norigin not allowed\n',
  );
}
