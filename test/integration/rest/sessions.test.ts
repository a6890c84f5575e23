import { expect } from 'chai';

import type { SessionInfo } from '../../../app/presence/directory';
import { call, errorOf, startRestApp, tokenFor, type RestApp } from './harness';

/** A session as a real one reports itself: SockJS ones name their sub-transport. */
function session(sessionId: string, user: string, connectedAt: string): SessionInfo {
  return {
    sessionId,
    user,
    instance: 'instance-a',
    transport: sessionId === 's-2' ? 'websocket' : 'sockjs/xhr-streaming',
    connectedAt,
    subscriptions: [{ id: 'sub-0', destination: '/user/queue/greetings' }],
  };
}

describe('REST GET /api/users/{user}/sessions', () => {
  let app: RestApp;

  before(async () => {
    app = await startRestApp();
    app.presence.upsert(session('s-1', 'alice', '2024-01-01T00:00:00.000Z'));
    app.presence.upsert(session('s-2', 'alice', '2024-01-01T00:00:01.000Z'));
    app.presence.upsert(session('s-3', 'bob', '2024-01-01T00:00:02.000Z'));
  });
  after(async () => {
    await app.close();
  });

  const list = (user: string, token: string) =>
    call(app, 'GET', `/api/users/${encodeURIComponent(user)}/sessions`, { token });

  it("lists the user's own sessions with instance, transport, connected-at and subscriptions", async () => {
    const answer = await list('alice', tokenFor(app, 'alice'));
    expect(answer.status).to.equal(200);
    const body = answer.body as { user: string; sessions: SessionInfo[] };
    expect(body.user).to.equal('alice');
    expect(body.sessions.map((s) => s.sessionId)).to.deep.equal(['s-1', 's-2']);
    expect(body.sessions[0]).to.deep.equal(session('s-1', 'alice', '2024-01-01T00:00:00.000Z'));
  });

  it("lists anyone's sessions for a token with scope push", async () => {
    const answer = await list('bob', tokenFor(app, 'backend', 'push'));
    expect(answer.status).to.equal(200);
    expect((answer.body as { sessions: SessionInfo[] }).sessions.map((s) => s.sessionId)).to.deep.equal([
      's-3',
    ]);
  });

  it('answers an empty list for a user without sessions', async () => {
    const answer = await list('carol', tokenFor(app, 'carol'));
    expect(answer.body).to.deep.equal({ user: 'carol', sessions: [] });
  });

  it("refuses another user's sessions without scope push (403)", async () => {
    const answer = await list('alice', tokenFor(app, 'bob'));
    expect(answer.status).to.equal(403);
    expect(errorOf(answer).error).to.equal('forbidden');
  });

  it('needs a token (401)', async () => {
    const answer = await call(app, 'GET', '/api/users/alice/sessions');
    expect(answer.status).to.equal(401);
    expect(errorOf(answer).error).to.equal('unauthenticated');
  });
});
