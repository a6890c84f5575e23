/**
 * Authentication on every transport: each place a token may ride (CONNECT Authorization and
 * passcode headers, `access_token` on /stomp and /ws, Sec-WebSocket-Protocol), and each way a token
 * can be bad, answered by an ERROR whose message says why, then the close.
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { header } from '../../../app/stomp/frame';
import {
  openTcp,
  openWebSocket,
  openWebSocketRaw,
  RawClients,
  wrapWebSocket,
  type RawStompClient,
} from '../../support/raw-stomp';
import { startTestService, TEST_SECRET, tokenFor, type RunningService } from '../../support/service';
import { StompClients } from '../../support/stomp-clients';

const now = (): number => Math.floor(Date.now() / 1000);
const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

function hs256(payload: object, secret: string): string {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** Ways a token is refused, with what the ERROR message must say. */
function badTokens(): { name: string; token: string | undefined; why: RegExp }[] {
  const good = jwt.sign({}, TEST_SECRET, { algorithm: 'HS256', subject: 'alice', expiresIn: 600 });
  return [
    { name: 'no token', token: undefined, why: /no token/ },
    {
      name: 'expired',
      token: jwt.sign({ sub: 'alice', exp: now() - 60 }, TEST_SECRET, { algorithm: 'HS256' }),
      why: /token expired/,
    },
    {
      name: 'not yet valid',
      token: jwt.sign({ sub: 'alice', nbf: now() + 3600, exp: now() + 7200 }, TEST_SECRET, {
        algorithm: 'HS256',
      }),
      why: /not valid before/,
    },
    {
      name: 'signed with another key',
      token: jwt.sign({ sub: 'alice' }, 'some-other-secret-of-enough-length!!', {
        algorithm: 'HS256',
        expiresIn: 600,
      }),
      why: /invalid token: invalid signature/,
    },
    {
      name: 'alg none',
      token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp: now() + 600 })}.`,
      why: /invalid token/,
    },
    { name: 'truncated', token: good.slice(0, -6), why: /invalid token/ },
    { name: 'garbage', token: 'not-a-jwt', why: /invalid token: jwt malformed/ },
    { name: 'without sub', token: hs256({ exp: now() + 600 }, TEST_SECRET), why: /no subject/ },
    { name: 'without exp', token: hs256({ sub: 'alice' }, TEST_SECRET), why: /token has no expiry/ },
  ];
}

describe('session: authentication', () => {
  const raw = new RawClients();
  const stomp = new StompClients();
  afterEach(async () => {
    raw.closeAll();
    await stomp.closeAll();
  });

  describe('token placements', () => {
    let service: RunningService;
    before(async () => {
      service = await startTestService({ stompTcpPort: 0 });
    });
    after(async () => {
      await service.stop();
    });

    const expectUser = async (client: RawStompClient, user: string, headers: Record<string, string> = {}) => {
      const connected = await client.connect(undefined, headers);
      expect(header(connected, 'user-name')).to.equal(user);
    };

    it('CONNECT Authorization: Bearer <jwt>', async () => {
      const client = raw.add(await openWebSocket(service));
      await expectUser(client, 'alice', { Authorization: `Bearer ${tokenFor(service, 'alice')}` });
    });

    it('CONNECT passcode: <jwt> (with any login), over WebSocket and TCP', async () => {
      const ws = raw.add(await openWebSocket(service));
      await expectUser(ws, 'alice', { login: 'whatever', passcode: tokenFor(service, 'alice') });
      const tcp = raw.add(await openTcp(service));
      await expectUser(tcp, 'bob', { passcode: tokenFor(service, 'bob') });
    });

    it('access_token query parameter on /stomp', async () => {
      const client = raw.add(
        await openWebSocket(service, { path: `/stomp?access_token=${tokenFor(service, 'carol')}` }),
      );
      await expectUser(client, 'carol');
    });

    it('access_token query parameter on /ws (SockJS websocket and xhr-streaming)', async () => {
      for (const transport of ['websocket', 'xhr-streaming'] as const) {
        const client = await stomp.connect(service, 'dave', {
          transport: 'sockjs',
          sockjsTransports: [transport],
          query: `?access_token=${tokenFor(service, 'dave')}`,
          connectHeaders: {},
        });
        expect(client.connected.headers['user-name']).to.equal('dave');
      }
    });

    it('Sec-WebSocket-Protocol value after v12.stomp; the token is never echoed as the protocol', async () => {
      const ws = await openWebSocketRaw(service, { protocols: ['v12.stomp', tokenFor(service, 'erin')] });
      expect(ws.protocol).to.equal('v12.stomp');
      await expectUser(raw.add(wrapWebSocket(ws)), 'erin');
    });

    it('the user is the token’s sub, not a login header', async () => {
      const client = raw.add(await openWebSocket(service));
      await expectUser(client, 'alice', { login: 'bob', passcode: tokenFor(service, 'alice') });
    });

    it('a session whose token expires while connected gets an ERROR at expiry, then the close', async () => {
      const client = raw.add(await openWebSocket(service));
      await client.connect(tokenFor(service, 'alice', '', 1));
      const error = await client.expectErrorAndClose(3000);
      expect(header(error, 'message')).to.match(/token expired/);
    });
  });

  describe('refused tokens', () => {
    let service: RunningService;
    before(async () => {
      service = await startTestService({ stompTcpPort: 0 });
    });
    after(async () => {
      await service.stop();
    });

    for (const { name, why } of badTokens()) {
      it(`${name}: ERROR with a readable message, then close (WebSocket bearer, TCP passcode, SockJS)`, async () => {
        // Signed when the test runs, not when mocha loads the file: a whole-suite run takes longer
        // than these tokens' ten minutes, and a token expired by then is refused for the wrong reason.
        const token = badTokens().find((c) => c.name === name)!.token;
        const ws = raw.add(await openWebSocket(service));
        ws.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: token && `Bearer ${token}` });
        expect(header(await ws.expectErrorAndClose(), 'message')).to.match(why);
        expect(ws.all('CONNECTED')).to.have.length(0);

        const tcp = raw.add(await openTcp(service));
        tcp.send('CONNECT', { 'accept-version': '1.2', host: 'h', login: 'alice', passcode: token });
        expect(header(await tcp.expectErrorAndClose(), 'message')).to.match(why);

        const refused = await stomp
          .connect(service, 'alice', {
            transport: 'sockjs',
            sockjsTransports: ['xhr-streaming'],
            connectHeaders: token === undefined ? {} : { Authorization: `Bearer ${token}` },
          })
          .then(
            () => new Error('connected'),
            (err: unknown) => err,
          );
        expect(String(refused)).to.match(why);
      });
    }

    it('an ERROR answering CONNECT is not escaped: the client cannot know the version yet', async () => {
      const client = raw.add(await openTcp(service));
      client.send('CONNECT', { 'accept-version': '1.2', host: 'h', passcode: 'not-a-jwt' });
      await client.expectErrorAndClose();
      expect(Buffer.concat(client.bytesIn).toString('utf8')).to.include(
        'message:invalid token: jwt malformed\n',
      );
    });

    it('a bad access_token in the URL is refused the same way', async () => {
      const client = raw.add(await openWebSocket(service, { path: '/stomp?access_token=not-a-jwt' }));
      client.send('CONNECT', { 'accept-version': '1.2', host: 'h' });
      expect(header(await client.expectErrorAndClose(), 'message')).to.match(/invalid token/);
    });
  });

  describe('tokens without exp, with JWT_REQUIRE_EXP=false', () => {
    let service: RunningService;
    before(async () => {
      service = await startTestService({ jwtRequireExp: false });
    });
    after(async () => {
      await service.stop();
    });

    it('connects: the setting is what lets a token that never expires in', async () => {
      const client = raw.add(await openWebSocket(service));
      const connected = await client.connect(hs256({ sub: 'alice' }, TEST_SECRET));
      expect(header(connected, 'user-name')).to.equal('alice');
    });
  });

  describe('issuer and audience, when configured', () => {
    let service: RunningService;
    before(async () => {
      service = await startTestService({ jwtIssuer: 'https://issuer.test', jwtAudience: 'stomp-relay' });
    });
    after(async () => {
      await service.stop();
    });

    const attempt = async (token: string): Promise<string> => {
      const client = raw.add(await openWebSocket(service));
      client.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: `Bearer ${token}` });
      const answer = await client.waitForFrame((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
      if (answer.command === 'ERROR') await client.waitForClose();
      return answer.command === 'ERROR' ? `ERROR ${header(answer, 'message')}` : 'CONNECTED';
    };
    const sign = (claims: object): string =>
      jwt.sign({ sub: 'alice', ...claims }, TEST_SECRET, { algorithm: 'HS256', expiresIn: 600 });

    it('the right iss and aud connect', async () => {
      expect(await attempt(tokenFor(service, 'alice'))).to.equal('CONNECTED');
    });
    it('a wrong issuer is refused', async () => {
      expect(await attempt(sign({ iss: 'https://evil.test', aud: 'stomp-relay' }))).to.match(
        /ERROR .*issuer invalid/,
      );
    });
    it('a wrong audience is refused', async () => {
      expect(await attempt(sign({ iss: 'https://issuer.test', aud: 'other' }))).to.match(
        /ERROR .*audience invalid/,
      );
    });
    it('a token without iss and aud is refused', async () => {
      expect(await attempt(sign({}))).to.match(/ERROR .*invalid/);
    });
  });

  describe('RS256 public key', () => {
    let service: RunningService;
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    before(async () => {
      service = await startTestService({ jwtSecret: '', jwtPublicKey: publicPem });
    });
    after(async () => {
      await service.stop();
    });

    const attempt = async (token: string): Promise<string> => {
      const client = raw.add(await openWebSocket(service));
      client.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: `Bearer ${token}` });
      const answer = await client.waitForFrame((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
      return answer.command === 'ERROR'
        ? `ERROR ${header(answer, 'message')}`
        : `CONNECTED ${header(answer, 'user-name')}`;
    };

    it('an RS256 token signed with the private key connects', async () => {
      const token = jwt.sign({ sub: 'alice' }, privateKey, { algorithm: 'RS256', expiresIn: 600 });
      expect(await attempt(token)).to.equal('CONNECTED alice');
    });
    it('an HS256 token keyed with the public key (key confusion) is refused', async () => {
      expect(await attempt(hs256({ sub: 'alice', exp: now() + 600 }, publicPem))).to.match(
        /ERROR invalid token/,
      );
    });
  });
});
