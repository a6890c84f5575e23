/**
 * The routers as the real service mounts them (app/server.ts): one push end to end, the ops
 * endpoints at the root and the JSON fallbacks, so a wiring mistake there cannot hide behind the
 * bare-app harness the other REST tests use.
 */
import { expect } from 'chai';

import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { record } from './harness';

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
    const res = await fetch(`${service.url}/api/users/alice/messages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokenFor(service, 'backend', 'push')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ destination: '/queue/greetings', body: 'hello' }),
    });
    expect(res.status).to.equal(202);
    const { id } = (await res.json()) as { id: string };
    await waitFor(() => deliveries.length === 1, 2000, 'the push to arrive');
    expect(deliveries[0].messageId).to.equal(id);
  });

  it('serves /healthz, /readyz and /metrics at the root', async () => {
    expect((await fetch(`${service.url}/healthz`)).status).to.equal(200);
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).to.equal(200);
    expect(await ready.json()).to.deep.equal({ status: 'ready', broker: service.broker.kind });
    const metrics = await fetch(`${service.url}/metrics`);
    expect(await metrics.text()).to.include('stomp_pushes_total{kind="user",outcome="accepted"} 1');
  });

  it('answers JSON errors for a missing token and an unknown /api route', async () => {
    const noToken = await fetch(`${service.url}/api/messages`, { method: 'POST' });
    expect(noToken.status).to.equal(401);
    expect(((await noToken.json()) as { error: string }).error).to.equal('unauthenticated');
    const unknown = await fetch(`${service.url}/api/nope`);
    expect(unknown.status).to.equal(404);
    expect(await unknown.json()).to.deep.equal({
      error: 'not_found',
      detail: 'no such endpoint: GET /api/nope',
    });
  });
});
