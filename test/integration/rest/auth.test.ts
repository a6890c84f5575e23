import { generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';

import { call, errorOf, startRestApp, tokenFor, type RestApp } from './harness';

const base64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('REST authentication (passport-jwt)', () => {
  describe('with a shared secret (HS256)', () => {
    let app: RestApp;

    before(async () => {
      app = await startRestApp({
        settings: { jwtIssuer: 'https://issuer.test', jwtAudience: 'stomp-relay' },
      });
    });
    after(async () => {
      await app.close();
    });

    const push = (headers: Record<string, string>) =>
      call(app, 'POST', '/api/messages', { headers, body: { destination: '/topic/t', body: 'x' } });
    const withToken = (token: string) => push({ authorization: `Bearer ${token}` });

    async function expect401(
      answer: Promise<Awaited<ReturnType<typeof push>>>,
      error: string,
      detail: RegExp,
    ) {
      const a = await answer;
      expect(a.status).to.equal(401);
      expect(a.headers.get('www-authenticate')).to.match(/^Bearer/);
      expect(errorOf(a).error).to.equal(error);
      expect(errorOf(a).detail).to.match(detail);
    }

    it('lets a valid token through', async () => {
      expect((await withToken(tokenFor(app, 'backend', 'push'))).status).to.equal(202);
    });

    it('accepts scope as a list claim too', async () => {
      const token = jwt.sign({ scope: ['read', 'push'] }, app.verifier.key, {
        algorithm: 'HS256',
        subject: 'backend',
        expiresIn: 60,
        issuer: 'https://issuer.test',
        audience: 'stomp-relay',
      });
      expect((await withToken(token)).status).to.equal(202);
    });

    it('answers 401 JSON without a token', async () => {
      await expect401(push({}), 'unauthenticated', /^missing bearer token/);
    });

    it('answers 401 JSON for an Authorization header that is not Bearer', async () => {
      await expect401(push({ authorization: 'Basic YWxpY2U6cHc=' }), 'unauthenticated', /not a bearer token/);
    });

    it('answers 401 token_expired for an expired token', async () => {
      const token = tokenFor(app, 'backend', 'push', { expiresIn: -10 });
      await expect401(withToken(token), 'token_expired', /^token expired at \d{4}-/);
    });

    it('refuses a token once it has expired, even after it was accepted (remembered tokens expire too)', async () => {
      const token = tokenFor(app, 'backend', 'push', { expiresIn: 2 });
      expect((await withToken(token)).status).to.equal(202);
      expect((await withToken(token)).status).to.equal(202);
      const exp = (jwt.decode(token) as { exp: number }).exp * 1000;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp - Date.now()) + 50));
      await expect401(withToken(token), 'token_expired', /^token expired at \d{4}-/);
    });

    it('does not take a remembered token for another one that differs only in its signature', async () => {
      const token = tokenFor(app, 'backend', 'push');
      expect((await withToken(token)).status).to.equal(202);
      await expect401(withToken(`${token.slice(0, -2)}xx`), 'unauthenticated', /^invalid token/);
    });

    it('answers 401 for a token without exp, which would be valid forever', async () => {
      const token = jwt.sign({ scope: 'push' }, app.verifier.key, {
        algorithm: 'HS256',
        subject: 'backend',
        issuer: 'https://issuer.test',
        audience: 'stomp-relay',
      });
      expect(jwt.decode(token)).to.not.have.property('exp');
      await expect401(withToken(token), 'unauthenticated', /^token has no expiry \(exp claim\)/);
    });

    it('answers 401 for a bearer header with anything after the token', async () => {
      await expect401(
        push({ authorization: `Bearer ${tokenFor(app, 'backend', 'push')} junk` }),
        'unauthenticated',
        /not a bearer token/,
      );
    });

    it('answers 401 for a token not valid yet', async () => {
      const token = tokenFor(app, 'backend', 'push', { notBefore: 600 });
      await expect401(withToken(token), 'unauthenticated', /^token not valid before/);
    });

    it('answers 401 for a token signed with another key', async () => {
      const token = jwt.sign({ scope: 'push' }, 'another-secret-another-secret-xx', {
        algorithm: 'HS256',
        subject: 'backend',
        issuer: 'https://issuer.test',
        audience: 'stomp-relay',
      });
      await expect401(withToken(token), 'unauthenticated', /^invalid token: invalid signature/);
    });

    it("answers 401 for alg 'none'", async () => {
      const token = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: 'backend', scope: 'push' })}.`;
      await expect401(withToken(token), 'unauthenticated', /^invalid token: /);
    });

    it('answers 401 for a garbage token', async () => {
      await expect401(withToken('not-a-jwt'), 'unauthenticated', /^invalid token: jwt malformed/);
    });

    it('answers 401 for a wrong issuer or audience', async () => {
      await expect401(
        withToken(tokenFor(app, 'backend', 'push', { issuer: 'https://evil.test' })),
        'unauthenticated',
        /issuer invalid/,
      );
      await expect401(
        withToken(tokenFor(app, 'backend', 'push', { audience: 'other' })),
        'unauthenticated',
        /audience invalid/,
      );
    });

    it('answers 401 for a validly signed token without a subject', async () => {
      const token = jwt.sign({ scope: 'push' }, app.verifier.key, {
        algorithm: 'HS256',
        expiresIn: 60,
        issuer: 'https://issuer.test',
        audience: 'stomp-relay',
      });
      await expect401(withToken(token), 'unauthenticated', /no subject/);
    });
  });

  describe('with a public key (RS256)', () => {
    let app: RestApp;
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });

    before(async () => {
      app = await startRestApp({ settings: { jwtPublicKey: publicKey } });
    });
    after(async () => {
      await app.close();
    });

    const push = (token: string) =>
      call(app, 'POST', '/api/messages', { token, body: { destination: '/topic/t', body: 'x' } });

    it('accepts an RS256 token signed with the private key', async () => {
      const token = jwt.sign({ scope: 'push' }, privateKey, {
        algorithm: 'RS256',
        subject: 'backend',
        expiresIn: 60,
      });
      expect((await push(token)).status).to.equal(202);
    });

    it('refuses an HS256 token whose secret is the public key (key confusion)', async () => {
      const token = jwt.sign({ scope: 'push' }, publicKey, { algorithm: 'HS256', subject: 'backend' });
      const answer = await push(token);
      expect(answer.status).to.equal(401);
      expect(errorOf(answer)).to.deep.equal({
        error: 'unauthenticated',
        detail: 'invalid token: invalid algorithm',
      });
    });
  });

  it('accepts a token without exp when JWT_REQUIRE_EXP=false', async () => {
    const app = await startRestApp({ settings: { jwtRequireExp: false } });
    try {
      const token = jwt.sign({ scope: 'push' }, app.verifier.key, { algorithm: 'HS256', subject: 'backend' });
      const answer = await call(app, 'POST', '/api/messages', {
        token,
        body: { destination: '/topic/t', body: 'x' },
      });
      expect(answer.status).to.equal(202);
    } finally {
      await app.close();
    }
  });

  it('keeps the keys of two services in one process apart', async () => {
    const one = await startRestApp();
    const two = await startRestApp();
    try {
      const forOne = tokenFor(one, 'backend', 'push');
      const body = { destination: '/topic/t', body: 'x' };
      expect((await call(one, 'POST', '/api/messages', { token: forOne, body })).status).to.equal(202);
      expect((await call(two, 'POST', '/api/messages', { token: forOne, body })).status).to.equal(401);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
