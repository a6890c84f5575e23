/**
 * The lean way in for the common push: a backend reusing a token it has pushed with before, a
 * JSON body with a Content-Length. express's router, body-parser and res.json are a large share
 * of what a push costs the service when nothing else is done per call: this path matches the two
 * push URLs and the batch URL by string, reads the body as one Buffer and writes the answer with
 * one writeHead/end, ahead of express, then runs the very logic the express routes run (push.ts,
 * batch.ts).
 *
 * It takes a request only when everything it needs can be decided from the request line and
 * headers, before one byte of the body is read: anything else (no or a new token, a missing
 * scope, chunked or compressed bodies, a body over the limit, query strings, other spellings of
 * the path) goes to express untouched, which answers it as before. So authentication here is the
 * token cache's alone: a token is in it only once passport-jwt has verified it, and each use
 * re-checks `exp`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { VerifiedTokenCache } from '../auth/verified-token-cache';
import { bearerToken } from '../auth/bearer';
import type { MessageTarget } from '../destinations/destination';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { errorAnswer, reportError } from './errors';
import type { Principal } from './passport';
import { pushOnce, type PushDeps, type PushKind } from './push';
import { sharedTarget, userTarget } from './targets';
import { userName } from './validation';

const USER_PUSH = /^\/api\/users\/([^/?#]+)\/messages$/;
const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** POST /api/messages/batch as batch.ts answers it: the 200 body for a caller and a parsed body. */
export type BatchCall = (caller: Principal, body: unknown) => Promise<unknown>;

export interface LeanPushDeps extends PushDeps {
  tokens: VerifiedTokenCache;
  /** REST_BODY_LIMIT_BYTES: a larger body goes to express, which refuses it with 413. */
  bodyLimitBytes: number;
  logger: Logger;
  metrics: Metrics;
  /** The batch call, and REST_BATCH_BODY_LIMIT_BYTES (a larger body goes to express, 413). */
  batch: { call: BatchCall; bodyLimitBytes: number };
}

/** What a taken request is: one push (and where its destination goes), or a batch. */
type Route =
  | { kind: PushKind; resolve: (caller: Principal) => (destination: string) => MessageTarget }
  | { kind: 'batch' };

interface Taken {
  route: Route;
  caller: Principal;
  length: number;
}

const BATCH: Route = { kind: 'batch' };
const SHARED: Route = {
  kind: 'destination',
  resolve: (caller) => (destination) => sharedTarget(destination, caller),
};

/** body-parser's strict mode: a JSON body starts with `{` or `[`, and says so as it does. */
function strictViolation(text: string): string | undefined {
  const at = text.search(/\S/);
  if (at < 0 || text[at] === '{' || text[at] === '[') return undefined;
  try {
    JSON.parse(text.slice(0, at) + '#'.repeat(text.length - at));
  } catch (err: unknown) {
    if (err instanceof Error) return err.message.replace(/#+/g, (p) => text.substring(at, at + p.length));
  }
  return 'Unexpected token';
}

function writeJson(
  res: ServerResponse,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: unknown,
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export class LeanPushRoute {
  constructor(private readonly deps: LeanPushDeps) {}

  /** Takes the request and answers it, or returns false without touching it (express's then). */
  take(req: IncomingMessage, res: ServerResponse): boolean {
    const taken = this.match(req);
    if (taken === undefined) return false;
    this.serve(req, res, taken);
    return true;
  }

  /** Which call the URL is, by string: anything spelt otherwise is express's to answer. */
  private route(url: string): Route | undefined {
    if (url === '/api/messages') return SHARED;
    if (url === '/api/messages/batch') return BATCH;
    const user = USER_PUSH.exec(url);
    if (user === null) return undefined;
    let name: string;
    try {
      name = decodeURIComponent(user[1]);
    } catch {
      return undefined; // express answers an undecodable parameter
    }
    return {
      kind: 'user',
      resolve: () => (destination) => userTarget(destination, userName(name, 'the user in the URL')),
    };
  }

  private match(req: IncomingMessage): Taken | undefined {
    if (req.method !== 'POST') return undefined;
    const route = this.route(req.url ?? '');
    if (route === undefined) return undefined;
    const headers = req.headers;
    if (!JSON_TYPE.test(headers['content-type'] ?? '')) return undefined;
    const encoding = headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return undefined;
    if (headers['transfer-encoding'] !== undefined) return undefined;
    const limit = route.kind === 'batch' ? this.deps.batch.bodyLimitBytes : this.deps.bodyLimitBytes;
    const length = Number(headers['content-length']);
    if (!Number.isInteger(length) || length < 1 || length > limit) return undefined;
    const jwt = bearerToken(headers.authorization);
    const known = jwt === undefined ? undefined : this.deps.tokens.get(jwt);
    if (known === undefined || !known.scopes.includes('push')) return undefined;
    return { route, caller: { user: known.user, scopes: known.scopes }, length };
  }

  private serve(req: IncomingMessage, res: ServerResponse, taken: Taken): void {
    const body = Buffer.allocUnsafe(taken.length);
    let received = 0;
    let overrun = false;
    req.on('data', (chunk: Buffer) => {
      if (received + chunk.length > taken.length) overrun = true;
      else chunk.copy(body, received);
      received += chunk.length;
    });
    req.on('end', () => {
      if (overrun || received !== taken.length) {
        this.fail(
          req,
          res,
          new ServiceError('bad_request', 'request body size did not match content length'),
        );
        return;
      }
      this.push(req, res, taken, body).catch((err: unknown) => this.fail(req, res, err));
    });
    // A client gone before its body arrived gets no answer; there is no one to read it.
    req.on('error', () => undefined);
  }

  private async push(req: IncomingMessage, res: ServerResponse, taken: Taken, bytes: Buffer): Promise<void> {
    const text = bytes.toString('utf8');
    const strict = strictViolation(text);
    if (strict !== undefined)
      throw new ServiceError('bad_request', `request body is not valid JSON: ${strict}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : 'unparseable';
      throw new ServiceError('bad_request', `request body is not valid JSON: ${why}`);
    }
    const { route, caller } = taken;
    if (route.kind === 'batch') {
      writeJson(res, 200, {}, await this.deps.batch.call(caller, parsed));
      return;
    }
    const call = { caller, headers: req.headers };
    writeJson(res, 202, {}, await pushOnce(this.deps, route.kind, call, parsed, route.resolve(caller)));
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const path = (req.url ?? '').split('?')[0];
    const error = reportError(this.deps, err, { method: req.method ?? 'POST', path });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const { status, headers, body } = errorAnswer(error);
    writeJson(res, status, headers, body);
  }
}
