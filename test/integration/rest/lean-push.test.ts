/**
 * The lean push route (app/rest/lean-push.ts) takes a push or a batch ahead of express only when
 * its token is one passport-jwt verified before and everything else is decided by the request line
 * and headers; whatever it takes it answers exactly as the express route would: same status, error
 * code, detail and headers, for good calls and every kind of bad one.
 */
import { gzipSync } from 'node:zlib';
import http from 'node:http';
import { expect } from 'chai';

import { LeanPushRoute } from '../../../app/rest/lean-push';
import { call, errorOf, startRestApp, tokenFor, type ApiAnswer, type RestApp } from './harness';

/** An answer body without its ids (they differ), saying only whether each was there. */
function withoutIds(body: unknown): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const { id, results, ...rest } = body as Record<string, unknown>;
  return {
    id: typeof id,
    ...rest,
    ...(Array.isArray(results) ? { results: results.map(withoutIds) } : {}),
  };
}

/** What must be the same whichever route answered (ids differ, the rest may not). */
function comparable(answer: ApiAnswer): unknown {
  const body = answer.body;
  const { id, ...rest } = (withoutIds(body) ?? {}) as Record<string, unknown>;
  return {
    status: answer.status,
    id: typeof id,
    rest: typeof body === 'object' ? rest : body,
    contentType: answer.headers.get('content-type'),
    retryAfter: answer.headers.get('retry-after'),
  };
}

describe('REST lean push route', () => {
  let app: RestApp;
  let taken: string[];
  const original = LeanPushRoute.prototype.take;

  before(() => {
    // Records which requests the lean route took; the route itself is unchanged.
    LeanPushRoute.prototype.take = function (this: LeanPushRoute, req, res) {
      const took = original.call(this, req, res);
      taken.push(`${req.method} ${req.url} ${took ? 'lean' : 'express'}`);
      return took;
    };
  });
  after(() => {
    LeanPushRoute.prototype.take = original;
  });
  beforeEach(async () => {
    taken = [];
    app = await startRestApp();
  });
  afterEach(async () => {
    await app.close();
  });

  let fresh = 0;
  /** A token never used before (express verifies it), and one used once already (lean). */
  async function tokens(): Promise<{ first: string; reused: string }> {
    fresh++;
    const reused = tokenFor(app, `backend-warm-${fresh}`, 'push');
    await call(app, 'POST', '/api/messages', {
      token: reused,
      body: { destination: '/topic/warm', body: 'x' },
    });
    return { first: tokenFor(app, `backend-new-${fresh}`, 'push'), reused };
  }

  const CASES: { name: string; path: string; body: unknown }[] = [
    {
      name: 'a user push',
      path: '/api/users/alice/messages',
      body: { destination: '/queue/greetings', body: 'hi' },
    },
    {
      name: 'a topic publish',
      path: '/api/messages',
      body: { destination: '/topic/prices', body: { p: 1 } },
    },
    { name: 'JSON cut short', path: '/api/messages', body: '{"destination": "/topic/x", ' },
    { name: 'a JSON string', path: '/api/messages', body: ' "just a string"' },
    { name: 'a JSON number', path: '/api/messages', body: '42' },
    { name: 'an array', path: '/api/messages', body: '[1, 2]' },
    { name: 'an empty object', path: '/api/messages', body: '{}' },
    { name: 'an unknown field', path: '/api/messages', body: { destination: '/topic/x', body: 1, ttl: 5 } },
    { name: 'a bad destination', path: '/api/messages', body: { destination: '/queue/a*', body: 1 } },
    { name: 'a user destination', path: '/api/messages', body: { destination: '/user/queue/x', body: 1 } },
    {
      name: 'a bad user',
      path: '/api/users/has%20space/messages',
      body: { destination: '/queue/x', body: 1 },
    },
    {
      name: 'a refused header',
      path: '/api/messages',
      body: { destination: '/topic/x', body: 1, headers: { 'message-id': 'm' } },
    },
    {
      name: 'too deep a body',
      path: '/api/messages',
      body: `{"destination": "/topic/x", "body": ${'['.repeat(200)}${']'.repeat(200)}}`,
    },
    {
      name: 'a batch',
      path: '/api/messages/batch',
      body: {
        messages: [
          { user: 'alice', destination: '/queue/greetings', body: 'hi' },
          { users: ['bob', 'carol', 'bob'], destination: '/queue/greetings', body: { n: 1 } },
          { destination: '/topic/prices', body: 'x', headers: { 'x-request-id': '7' } },
        ],
      },
    },
    {
      name: 'a batch with items refused on their own',
      path: '/api/messages/batch',
      body: {
        messages: [
          { user: 'alice', destination: '/queue/a*', body: 1 },
          { destination: '/user/queue/x', body: 1 },
          42,
          { user: 'alice', destination: '/queue/greetings', body: 'ok' },
        ],
      },
    },
    {
      name: 'a batch body that is not {"messages": [...]}',
      path: '/api/messages/batch',
      body: '{"messages": 5}',
    },
    { name: 'a batch cut short', path: '/api/messages/batch', body: '{"messages": [' },
    {
      name: 'a batch past REST_BATCH_MAX',
      path: '/api/messages/batch',
      body: { messages: Array.from({ length: 1001 }, () => ({ destination: '/topic/x', body: 1 })) },
    },
  ];

  for (const c of CASES) {
    it(`answers ${c.name} as the express route does`, async () => {
      const { first, reused } = await tokens();
      taken = [];
      const viaExpress = await call(app, 'POST', c.path, { token: first, body: c.body });
      const viaLean = await call(app, 'POST', c.path, { token: reused, body: c.body });
      expect(taken).to.deep.equal([`POST ${c.path} express`, `POST ${c.path} lean`]);
      expect(comparable(viaLean)).to.deep.equal(comparable(viaExpress));
    });
  }

  it('answers 503 as the express route does while the broker is down, and while draining', async () => {
    const { first, reused } = await tokens();
    const body = { destination: '/queue/greetings', body: 'x' };
    await app.broker.stop();
    const down = [first, reused].map((token) =>
      call(app, 'POST', '/api/users/alice/messages', { token, body }),
    );
    const [a, b] = await Promise.all(down);
    expect(a.status).to.equal(503);
    expect(comparable(b)).to.deep.equal(comparable(a));
    expect(b.body).to.deep.equal(a.body);
    app.draining = true;
    const [c, d] = await Promise.all(
      [tokenFor(app, 'backend-draining', 'push'), reused].map((token) =>
        call(app, 'POST', '/api/messages', { token, body: { destination: '/topic/x', body: 1 } }),
      ),
    );
    expect(errorOf(c).error).to.equal('draining');
    expect(d.body).to.deep.equal(c.body);
  });

  it('leaves to express what it cannot decide from the headers alone', async () => {
    const { reused } = await tokens();
    const ok = JSON.stringify({ destination: '/topic/prices', body: 'x' });
    taken = [];
    // A query string, another spelling of the path, another method: express's.
    expect((await call(app, 'POST', '/api/messages?x=1', { token: reused, body: ok })).status).to.equal(202);
    expect((await call(app, 'POST', '/api/messages/', { token: reused, body: ok })).status).to.equal(202);
    expect((await call(app, 'GET', '/api/messages', { token: reused })).status).to.equal(405);
    // A token without scope push: express answers 403.
    const reader = tokenFor(app, 'reader', 'read');
    expect((await call(app, 'POST', '/api/messages', { token: reader, body: ok })).status).to.equal(403);
    expect((await call(app, 'POST', '/api/messages', { token: reader, body: ok })).status).to.equal(403);
    // Not JSON by its content type, compressed, chunked, or over REST_BODY_LIMIT_BYTES.
    const text = await call(app, 'POST', '/api/messages', {
      token: reused,
      body: ok,
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).to.equal(400);
    const answers = await Promise.all([
      raw(app, reused, gzipSync(ok), { 'content-encoding': 'gzip' }),
      raw(app, reused, Buffer.from(ok), { 'transfer-encoding': 'chunked' }),
    ]);
    expect(answers).to.deep.equal([202, 202]);
    const big = { destination: '/topic/prices', body: 'x'.repeat(app.settings.restBodyLimitBytes) };
    expect((await call(app, 'POST', '/api/messages', { token: reused, body: big })).status).to.equal(413);
    // A batch over REST_BATCH_BODY_LIMIT_BYTES, though under it would be the lean route's.
    const bigBatch = {
      messages: [{ destination: '/topic/x', body: 'x'.repeat(app.settings.restBatchBodyLimitBytes) }],
    };
    const tooBig = await call(app, 'POST', '/api/messages/batch', { token: reused, body: bigBatch });
    expect(tooBig.status).to.equal(413);
    expect(taken.filter((t) => t.endsWith('lean'))).to.deep.equal([]);
    // And with none of that, the same token is the lean route's.
    expect((await call(app, 'POST', '/api/messages', { token: reused, body: ok })).status).to.equal(202);
    expect(taken.at(-1)).to.equal('POST /api/messages lean');
  });
});

/** A POST with headers fetch would not send as given (content-encoding, chunked); the status. */
function raw(app: RestApp, token: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${app.url}/api/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    if (headers['transfer-encoding'] === 'chunked') {
      req.write(body.subarray(0, 10));
      req.end(body.subarray(10));
    } else {
      req.setHeader('content-length', body.length);
      req.end(body);
    }
  });
}
