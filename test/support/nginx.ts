/**
 * nginx as the local cluster and the nginx tests run it: unprivileged, in the foreground, from a
 * scratch prefix directory holding a link to docker/nginx/nginx.conf (the file docker compose
 * mounts) and the local half of the per-cluster pair that file includes (cluster/server.conf and
 * cluster/upstream-servers.conf), so the routing and hashing rules exist once.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { accessSync, constants, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

const PROJECT_ROOT = resolve(__dirname, '../..');
export const SHARED_NGINX_CONF = join(PROJECT_ROOT, 'docker/nginx/nginx.conf');
export const MAKE_CERTIFICATE = join(PROJECT_ROOT, 'docker/tls/make-certificate.sh');

/** Where nginx is: PATH, then the sbin directories packages install it to (not on a user's PATH). */
export function findNginx(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/bin']) {
    const candidate = join(dir, 'nginx');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; next directory
    }
  }
  return undefined;
}

/** A development certificate from docker/tls/make-certificate.sh: a CA and the server's pair. */
export interface TlsFiles {
  /** The CA that signed the certificate: what a client trusts. */
  ca: string;
  cert: string;
  key: string;
}

/** Makes a fresh CA and a certificate for localhost and 127.0.0.1 in `dir` (openssl). */
export function makeCertificate(dir: string): TlsFiles {
  const result = spawnSync('sh', [MAKE_CERTIFICATE, dir], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0)
    throw new Error(`make-certificate.sh failed: ${result.stderr || result.error?.message}`);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/** base64 SHA-256 of a certificate's public key: what Chromium's --ignore-certificate-errors-spki-list takes. */
export function spkiFingerprint(certPath: string): string {
  const spki = new X509Certificate(readFileSync(certPath)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export interface NginxLayout {
  /** The prefix directory: nginx.conf (symlink to the shared file), cluster/, temp dirs, pid. */
  dir: string;
  conf: string;
  pidFile: string;
  accessLog: string;
}

export interface NginxListeners {
  /** Plain HTTP (and ws://) port on 127.0.0.1. */
  httpPort: number;
  /** HTTPS (and wss://) port on 127.0.0.1, with `tls`'s certificate. */
  httpsPort?: number;
  tls?: TlsFiles;
}

/**
 * Lays out `dir` for nginx: a link to docker/nginx/nginx.conf and the local half of the
 * per-cluster pair (listen on 127.0.0.1 only: the dev token endpoint is open in development).
 * `listen` is the HTTP port, or the HTTP and HTTPS listeners.
 */
export function writeNginxConfig(
  dir: string,
  listen: number | NginxListeners,
  upstreamPorts: readonly number[],
): NginxLayout {
  const listeners = typeof listen === 'number' ? { httpPort: listen } : listen;
  mkdirSync(join(dir, 'cluster'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  symlinkSync(SHARED_NGINX_CONF, conf);
  // The access log goes to a file: nginx cannot open /dev/stdout when that is a socket (Node's pipes).
  const accessLog = join(dir, 'access.log');
  const server = [`listen 127.0.0.1:${listeners.httpPort};`, `access_log ${accessLog} stomp_relay;`];
  if (listeners.httpsPort !== undefined) {
    if (!listeners.tls) throw new Error('an HTTPS port needs a certificate');
    server.push(
      `listen 127.0.0.1:${listeners.httpsPort} ssl;`,
      `ssl_certificate ${listeners.tls.cert};`,
      `ssl_certificate_key ${listeners.tls.key};`,
    );
  }
  writeFileSync(
    join(dir, 'cluster/server.conf'),
    `# written by test/support/nginx.ts\n${server.join('\n')}\n`,
  );
  // max_fails=0: never marked failed, so the hash never moves a SockJS session (see nginx.conf).
  const servers = upstreamPorts.map((port) => `server 127.0.0.1:${port} max_fails=0;`);
  writeFileSync(
    join(dir, 'cluster/upstream-servers.conf'),
    `# written by test/support/nginx.ts\n${servers.join('\n')}\n`,
  );
  return { dir, conf, pidFile: join(dir, 'nginx.pid'), accessLog };
}

/** nginx's arguments for a layout: unprivileged, foreground, errors to stderr. */
export function nginxArgs(layout: NginxLayout): string[] {
  return [
    '-p',
    `${layout.dir}/`,
    '-c',
    layout.conf,
    '-e',
    'stderr',
    '-g',
    `daemon off; pid ${layout.pidFile};`,
  ];
}
