/**
 * The routers as the real service mounts them (app/server.ts): one push end to end, the ops
 * endpoints at the root and the JSON fallbacks, so a wiring mistake there cannot hide behind the
 * bare-app harness the other REST tests use.
 */
import { expect } from 'chai';

import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { call, record } from './harness';

describe('REST API mounted in the running service', () => {
  let service: RunningService;

  before(async () => {
    service = await startTestService();
  });
  after(async () => {
    await service.stop();
  });

  it('pushes to a user and answers 202 with the message-id', async () => {
    const { deliveries } = await record(service.broker, 'alice', {
      kind: 'user',
      user: 'alice',
      type: 'queue',
      name: 'greetings',
    });
    const res = await call(service, 'POST', '/api/users/alice/messages', {
      token: tokenFor(service, 'backend', 'push'),
      body: { destination: '/queue/greetings', body: 'hello' },
    });
    expect(res.status).to.equal(202);
    const { id } = res.body as { id: string };
    await waitFor(() => deliveries.length === 1, 2000, 'the push to arrive');
    expect(deliveries[0].messageId).to.equal(id);
  });

  it('serves /healthz, /readyz and /metrics at the root', async () => {
    expect((await call(service, 'GET', '/healthz')).status).to.equal(200);
    const ready = await call(service, 'GET', '/readyz');
    expect(ready.status).to.equal(200);
    expect(ready.body).to.deep.equal({ status: 'ready', broker: service.broker.kind, inbox: 'ready' });
    const metrics = await call(service, 'GET', '/metrics');
    expect(metrics.body).to.include('stomp_pushes_total{kind="user",outcome="accepted"} 1');
  });

  it('answers JSON errors for a missing token and an unknown /api route', async () => {
    const noToken = await call(service, 'POST', '/api/messages');
    expect(noToken.status).to.equal(401);
    expect((noToken.body as { error: string }).error).to.equal('unauthenticated');
    const unknown = await call(service, 'GET', '/api/nope');
    expect(unknown.status).to.equal(404);
    expect(unknown.body).to.deep.equal({
      error: 'not_found',
      detail: 'no such endpoint: GET /api/nope',
    });
  });
});
