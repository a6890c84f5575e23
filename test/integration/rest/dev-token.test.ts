import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';

import { call, errorOf, startRestApp, type RestApp } from './harness';

describe('REST POST /api/dev/token', () => {
  let app: RestApp;

  before(async () => {
    app = await startRestApp({
      settings: { nodeEnv: 'development', jwtIssuer: 'iss', jwtAudience: 'aud', devTokenTtlS: 120 },
    });
  });
  after(async () => {
    await app.close();
  });

  const issue = (body: unknown, target = app) => call(target, 'POST', '/api/dev/token', { body });

  it('issues a short-lived token the API accepts', async () => {
    const answer = await issue({ user: 'alice', scope: 'push' });
    expect(answer.status).to.equal(200);
    expect(answer.headers.get('cache-control')).to.equal('no-store');
    const { token, user, expiresIn } = answer.body as { token: string; user: string; expiresIn: number };
    expect({ user, expiresIn }).to.deep.equal({ user: 'alice', expiresIn: 120 });
    expect(app.verifier.verify(token)).to.deep.include({ user: 'alice', scopes: ['push'] });
    const claims = jwt.decode(token) as jwt.JwtPayload;
    expect(claims).to.include({ iss: 'iss', aud: 'aud' });
    expect(claims.exp! - claims.iat!).to.equal(120);
    const pushed = await call(app, 'POST', '/api/users/alice/messages', {
      token,
      body: { destination: '/queue/greetings', body: 'hi' },
    });
    expect(pushed.status).to.equal(202);
  });

  it('issues a token without scope when none is asked for, and allows unicode user names', async () => {
    const answer = await issue({ user: 'zoë' });
    expect(answer.status).to.equal(200);
    const { token } = answer.body as { token: string };
    expect(app.verifier.verify(token)).to.deep.include({ user: 'zoë', scopes: [] });
  });

  it('refuses bad input with 400', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /user must be a non-empty string/],
      [{ user: '' }, /user must be a non-empty string/],
      [{ user: 'a'.repeat(201) }, /longer than 200/],
      [{ user: 'al\u0007ice' }, /control characters/],
      [{ user: 'al ice' }, /spaces/],
      [{ user: 'alice', scope: 5 }, /scope must be/],
      [{ user: 'alice', scope: 'push\nadmin' }, /scope must be/],
      [{ user: 'alice', admin: true }, /unknown field 'admin'/],
    ];
    for (const [body, detail] of cases) {
      const answer = await issue(body);
      expect(answer.status, JSON.stringify(body)).to.equal(400);
      expect(errorOf(answer).detail, JSON.stringify(body)).to.match(detail);
    }
  });

  it('is off (404 JSON) when NODE_ENV=production', async () => {
    const prod = await startRestApp({ settings: { nodeEnv: 'production' } });
    try {
      const answer = await issue({ user: 'alice', scope: 'push' }, prod);
      expect(answer.status).to.equal(404);
      expect(errorOf(answer).error).to.equal('not_found');
    } finally {
      await prod.close();
    }
  });

  it('answers 501 when the service verifies with a public key', async () => {
    const { publicKey } = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const pk = await startRestApp({ settings: { jwtPublicKey: publicKey } });
    try {
      const answer = await issue({ user: 'alice' }, pk);
      expect(answer.status).to.equal(501);
      expect(errorOf(answer).error).to.equal('not_implemented');
      expect(errorOf(answer).detail).to.include('JWT_SECRET');
    } finally {
      await pk.close();
    }
  });
});
