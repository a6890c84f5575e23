/**
 * BROKER_URL: where the STOMP plugin listens. One or more comma-separated
 * `stomp://user:pass@host:port/vhost` addresses form a failover list: each pool connection starts at
 * the first and moves to the next one each time it fails, wrapping around.
 *
 * The vhost is the path, percent-encoded (`/%2F` is the default vhost `/`, which is also what an
 * empty path means). Credentials are percent-decoded too. `label` is the address without its
 * credentials, the only form that may appear in logs, readiness reasons and errors.
 */
import { ServiceError } from '../../errors';

export interface StompAddress {
  host: string;
  port: number;
  login: string;
  passcode: string;
  vhost: string;
  /** `stomp://host:port/vhost`, without credentials: safe to log. */
  label: string;
}

export const DEFAULT_STOMP_PORT = 61613;

function invalid(entry: string, why: string): ServiceError {
  // The entry may hold a password: show it with the credentials blanked out.
  const shown = entry.replace(/\/\/[^@/]*@/, '//***@');
  return new ServiceError('bad_request', `BROKER_URL entry '${shown}' is invalid: ${why}`);
}

function decode(entry: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw invalid(entry, `its ${what} is not valid percent-encoding`);
  }
}

export function parseBrokerAddress(entry: string): StompAddress {
  const trimmed = entry.trim();
  if (trimmed === '') throw invalid(entry, 'it is empty');
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw invalid(trimmed, 'it is not a URL (expected stomp://user:pass@host:port/vhost)');
  }
  if (url.protocol !== 'stomp:') throw invalid(trimmed, `the scheme must be stomp://, not ${url.protocol}//`);
  if (url.hostname === '') throw invalid(trimmed, 'it has no host');
  if (url.search !== '' || url.hash !== '')
    throw invalid(trimmed, 'query strings and fragments mean nothing here');
  const port = url.port === '' ? DEFAULT_STOMP_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(trimmed, 'the port must be 1-65535');
  const path = url.pathname;
  if (path.slice(1).includes('/')) {
    throw invalid(trimmed, "the vhost is one path segment; write '/' inside it as %2F");
  }
  const vhost = path === '' || path === '/' ? '/' : decode(trimmed, path.slice(1), 'vhost');
  const login = decode(trimmed, url.username, 'user name');
  const passcode = decode(trimmed, url.password, 'password');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return {
    host,
    port,
    login,
    passcode,
    vhost,
    label: `stomp://${url.hostname}:${port}/${encodeURIComponent(vhost)}`,
  };
}

/** The failover list, in order. Throws a ServiceError naming the bad entry and why. */
export function parseBrokerUrl(value: string): StompAddress[] {
  if (value.trim() === '') {
    throw new ServiceError('bad_request', 'BROKER_URL is empty: expected stomp://user:pass@host:port/vhost');
  }
  return value.split(',').map(parseBrokerAddress);
}
