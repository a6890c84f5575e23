import { expect } from 'chai';

import { call, errorOf, startRestApp, tokenFor, type RestApp } from './harness';

describe('ops endpoints and the /api fallbacks', () => {
  let app: RestApp;

  beforeEach(async () => {
    app = await startRestApp();
  });
  afterEach(async () => {
    await app.close();
  });

  it('GET /healthz answers 200 ok', async () => {
    const answer = await call(app, 'GET', '/healthz');
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({ status: 'ok' });
  });

  it('GET /readyz answers 200 while the broker is up', async () => {
    const answer = await call(app, 'GET', '/readyz');
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.equal({ status: 'ready', broker: 'embedded', inbox: 'ready' });
  });

  it('GET /readyz answers 503 with the reason when the broker is down', async () => {
    await app.broker.stop();
    const answer = await call(app, 'GET', '/readyz');
    expect(answer.status).to.equal(503);
    expect(errorOf(answer)).to.deep.equal({ error: 'not_ready', detail: 'the embedded broker is stopped' });
  });

  it('GET /readyz answers 503 while draining', async () => {
    app.draining = true;
    const answer = await call(app, 'GET', '/readyz');
    expect(answer.status).to.equal(503);
    expect(errorOf(answer).detail).to.include('draining');
  });

  it('GET /metrics answers Prometheus text with the push counters', async () => {
    await call(app, 'POST', '/api/messages', {
      token: tokenFor(app, 'backend', 'push'),
      body: { destination: '/topic/t', body: 'x' },
    });
    await call(app, 'POST', '/api/messages', { body: { destination: '/topic/t', body: 'x' } });
    const answer = await call(app, 'GET', '/metrics');
    expect(answer.status).to.equal(200);
    expect(answer.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    const text = answer.body as string;
    expect(text).to.include('# TYPE stomp_pushes_total counter');
    expect(text).to.include('stomp_pushes_total{kind="destination",outcome="accepted"} 1');
    expect(text).to.include('stomp_errors_total{kind="unauthenticated"} 1');
    expect(text).to.include('stomp_publish_latency_seconds_bucket');
  });

  it('answers unknown /api routes with 404 JSON', async () => {
    for (const [method, path] of [
      ['GET', '/api/nope'],
      ['POST', '/api/users/alice'],
      ['DELETE', '/api/users/alice/messages/x/y'],
    ]) {
      const answer = await call(app, method, path);
      expect(answer.status, `${method} ${path}`).to.equal(404);
      expect(errorOf(answer).error).to.equal('not_found');
      expect(errorOf(answer).detail).to.equal(`no such endpoint: ${method} ${path}`);
    }
  });

  it('answers a wrong method on an existing route with 405 JSON and Allow', async () => {
    for (const [method, path, allow] of [
      ['GET', '/api/messages', 'POST, OPTIONS'],
      ['DELETE', '/api/users/alice/messages', 'POST, OPTIONS'],
      ['PUT', '/api/users/alice/sessions', 'GET, HEAD, OPTIONS'],
      ['GET', '/api/dev/token', 'POST, OPTIONS'],
      ['POST', '/healthz', 'GET, HEAD, OPTIONS'],
      ['DELETE', '/metrics', 'GET, HEAD, OPTIONS'],
    ]) {
      const answer = await call(app, method, path, { token: tokenFor(app, 'backend', 'push') });
      expect(answer.status, `${method} ${path}`).to.equal(405);
      expect(answer.headers.get('allow'), `${method} ${path}`).to.equal(allow);
      expect(errorOf(answer)).to.deep.equal({
        error: 'method_not_allowed',
        detail: `${method} is not allowed on ${path}: use ${allow.split(', ')[0]}`,
      });
    }
  });

  it('answers OPTIONS on a route with 204 and Allow', async () => {
    const answer = await call(app, 'OPTIONS', '/api/users/alice/messages');
    expect(answer.status).to.equal(204);
    expect(answer.headers.get('allow')).to.equal('POST, OPTIONS');
  });
});
