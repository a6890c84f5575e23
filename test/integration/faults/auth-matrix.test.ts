/**
 * Fault point 2: who gets in. Every bad token on every place a token can ride (TCP, /stomp header,
 * query and subprotocol, SockJS header and query) and on REST is refused with a readable reason;
 * a token that expires while connected ends the session at its expiry; no spelling of another
 * user's destination or subscription reaches it, against the embedded broker and the RabbitMQ
 * relay; handshakes from origins outside ALLOWED_ORIGINS are refused.
 */
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { expect } from 'chai';
import jwt from 'jsonwebtoken';
import { header } from '../../../app/stomp/frame';
import { queueNames, rabbitmqctl, STOMP_URL } from '../../support/rabbitmq';
import {
  connectRaw,
  handshakeOutcome,
  openTcp,
  openWebSocket,
  RawClients,
  type RawStompClient,
  type RawTransport,
} from '../../support/raw-stomp';
import { startTestService, TEST_SECRET, tokenFor, type RunningService } from '../../support/service';
import { connectStomp } from '../../support/stomp-clients';
import { sleep, waitFor } from '../../support/wait';
import { openAuthorizationFile } from '../../support/authorization';
import { cleanUp } from '../../support/cleanup';
import { pushToUser } from './harness';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'stomp-relay-tests';
const now = (): number => Math.floor(Date.now() / 1000);
const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');

function hmacToken(payload: object, key: string): string {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
}

type Placement =
  'tcp' | 'stomp-header' | 'stomp-query' | 'stomp-subprotocol' | 'sockjs-passcode' | 'sockjs-query' | 'rest';
const PLACEMENTS: Placement[] = [
  'tcp',
  'stomp-header',
  'stomp-query',
  'stomp-subprotocol',
  'sockjs-passcode',
  'sockjs-query',
  'rest',
];

/** 'connected' (or 'accepted' on REST), or the refusal's readable reason. */
async function attempt(
  service: RunningService,
  placement: Placement,
  token: string | undefined,
): Promise<string> {
  const t = token ?? '';
  const rawOutcome = async (
    client: RawStompClient,
    headers: Record<string, string | undefined>,
  ): Promise<string> => {
    try {
      await client.connect(undefined, headers);
      return 'connected';
    } catch (err: unknown) {
      await client.waitForClose(3000).catch(() => undefined);
      return `${err instanceof Error ? err.message : String(err)}${client.closed ? '' : ' [NOT CLOSED]'}`;
    } finally {
      client.close();
    }
  };
  const stompOutcome = async (
    transport: 'websocket' | 'sockjs',
    query: string,
    connectHeaders: Record<string, string>,
  ): Promise<string> => {
    try {
      const client = await connectStomp(service, 'x', {
        transport,
        query,
        connectHeaders,
        sockjsTransports: ['xhr-streaming'],
      });
      await client.close();
      return 'connected';
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
  };
  switch (placement) {
    case 'tcp':
      return rawOutcome(await openTcp(service), token === undefined ? {} : { passcode: t });
    case 'stomp-header':
      return rawOutcome(
        await openWebSocket(service),
        token === undefined ? {} : { Authorization: `Bearer ${t}` },
      );
    case 'stomp-query':
      return stompOutcome(
        'websocket',
        token === undefined ? '' : `?access_token=${encodeURIComponent(t)}`,
        {},
      );
    case 'stomp-subprotocol':
      return rawOutcome(
        await openWebSocket(service, { protocols: token === undefined ? ['v12.stomp'] : ['v12.stomp', t] }),
        {},
      );
    case 'sockjs-passcode':
      return stompOutcome('sockjs', '', token === undefined ? {} : { passcode: t });
    case 'sockjs-query':
      return stompOutcome('sockjs', token === undefined ? '' : `?access_token=${encodeURIComponent(t)}`, {});
    case 'rest': {
      const res = await fetch(`${service.url}/api/messages`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${t}` }),
        },
        body: JSON.stringify({ destination: '/topic/auth-matrix', body: 'x' }),
      });
      const json = (await res.json()) as { detail?: unknown };
      return res.status === 202 ? 'accepted' : `HTTP ${res.status} ${String(json.detail)}`;
    }
  }
}

async function expectRefusedEverywhere(
  service: RunningService,
  token: string | undefined,
  why: RegExp,
): Promise<void> {
  const outcomes = await Promise.all(
    PLACEMENTS.map(async (p) => [p, await attempt(service, p, token)] as const),
  );
  const wrong = outcomes.filter(
    ([p, outcome]) =>
      !why.test(outcome) || /NOT CLOSED/.test(outcome) || (p === 'rest' && !outcome.startsWith('HTTP 401')),
  );
  expect(wrong, `expected every placement refused with ${String(why)}`).to.deep.equal([]);
}

describe('faults: authentication and authorization', function () {
  this.timeout(60_000);

  describe('tokens (HS256 with issuer and audience configured)', () => {
    let service: RunningService;
    const sign = (claims: object, key = TEST_SECRET): string =>
      hmacToken({ sub: 'alice', scope: 'push', iss: ISSUER, aud: AUDIENCE, ...claims }, key);

    before(async () => {
      service = await startTestService({
        stompTcpPort: 0,
        jwtIssuer: ISSUER,
        jwtAudience: AUDIENCE,
        allowedOrigins: ['*'],
      });
    });
    after(async () => {
      await service.stop();
    });

    it('a good token is accepted on every placement (the control)', async () => {
      const good = sign({ exp: now() + 600 });
      for (const p of PLACEMENTS)
        expect(await attempt(service, p, good), p).to.match(/^(connected|accepted)$/);
    });

    const cases: [string, () => string | undefined, RegExp][] = [
      ['no token', () => undefined, /no token|missing bearer token/],
      ['expired', () => sign({ exp: now() - 30 }), /token expired/],
      ['not yet valid', () => sign({ nbf: now() + 3600, exp: now() + 7200 }), /not valid before/],
      [
        'wrong key',
        () => sign({ exp: now() + 600 }, 'another-secret-that-is-long-enough-to-pass'),
        /invalid signature/,
      ],
      ['wrong issuer', () => sign({ iss: 'https://evil.test', exp: now() + 600 }), /issuer invalid/],
      ['wrong audience', () => sign({ aud: 'someone-else', exp: now() + 600 }), /audience invalid/],
      [
        'no issuer or audience',
        () => hmacToken({ sub: 'alice', exp: now() + 600 }, TEST_SECRET),
        /issuer invalid|audience invalid/,
      ],
      [
        'alg none',
        () =>
          `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })}.`,
        /invalid token/,
      ],
      [
        'alg none with a signature',
        () =>
          `${b64({ alg: 'none' })}.${b64({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })}.c2ln`,
        /invalid token/,
      ],
      ['truncated', () => sign({ exp: now() + 600 }).slice(0, -5), /invalid token/],
      [
        'payload swapped under a good signature',
        () => {
          const [h, , s] = sign({ exp: now() + 600 }).split('.');
          return `${h}.${b64({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now() + 600 })}.${s}`;
        },
        /invalid signature/,
      ],
    ];
    for (const [name, make, why] of cases) {
      it(`${name}: refused on TCP, /stomp (header, query, subprotocol), /ws (passcode, query) and REST`, async () => {
        await expectRefusedEverywhere(service, make(), why);
      });
    }

    it('a token that expires while connected ends the session with an ERROR at expiry, on every transport', async () => {
      const ttl = 2;
      const token = sign({ exp: now() + ttl });
      const expiresAt = (now() + ttl) * 1000;
      const tcp = await openTcp(service);
      await tcp.connect(undefined, { passcode: token });
      const ws = await openWebSocket(service);
      await ws.connect(token);
      const sockjs = await connectStomp(service, 'alice', {
        transport: 'sockjs',
        sockjsTransports: ['xhr-streaming'],
        connectHeaders: { passcode: token },
      });
      for (const client of [tcp, ws]) {
        const error = await client.expectErrorAndClose(ttl * 1000 + 4000);
        expect(header(error, 'message')).to.match(/token expired/);
        expect(Math.abs(Date.now() - expiresAt), 'ms from exp').to.be.below(1500);
      }
      await waitFor(
        () => sockjs.errors.length > 0 && sockjs.isClosed(),
        5000,
        'the SockJS session to end with an ERROR',
      );
      expect(sockjs.errors[0]?.headers.message).to.match(/token expired/);
      await sockjs.close();
    });
  });

  describe('key confusion (RS256 public key configured)', () => {
    let service: RunningService;
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

    before(async () => {
      service = await startTestService({
        stompTcpPort: 0,
        jwtSecret: '',
        jwtPublicKey: publicPem,
        allowedOrigins: ['*'],
      });
    });
    after(async () => {
      await service.stop();
    });

    it('an RS256 token signed with the private key is accepted everywhere (the control)', async () => {
      const good = jwt.sign({ sub: 'alice', scope: 'push' }, privateKey, {
        algorithm: 'RS256',
        expiresIn: 600,
      });
      for (const p of PLACEMENTS)
        expect(await attempt(service, p, good), p).to.match(/^(connected|accepted)$/);
    });

    it('an HS256 token keyed with the RSA public key is refused everywhere', async () => {
      await expectRefusedEverywhere(
        service,
        hmacToken({ sub: 'alice', scope: 'push', exp: now() + 600 }, publicPem),
        /invalid algorithm|invalid token/,
      );
    });

    it('alg none is refused everywhere', async () => {
      await expectRefusedEverywhere(
        service,
        `${b64({ alg: 'none' })}.${b64({ sub: 'alice', scope: 'push', exp: now() + 600 })}.`,
        /invalid token/,
      );
    });
  });

  for (const broker of ['embedded', 'rabbitmq'] as const) {
    describe(`another user's destinations and subscriptions (${broker})`, () => {
      let service: RunningService;
      const clients = new RawClients();
      const suffix = randomUUID().slice(0, 6);
      const alice = `alice-${suffix}`;
      const bob = `bob-${suffix}`;

      before(async () => {
        service = await startTestService({
          stompTcpPort: 0,
          // The open rules are the worst case: /queue/** is subscribable too.
          authorizationFile: openAuthorizationFile(),
          ...(broker === 'rabbitmq' ? { brokerUrl: STOMP_URL } : {}),
        });
      });
      afterEach(() => clients.closeAll());
      after(() =>
        cleanUp(
          () => service?.stop(),
          async () => {
            if (broker !== 'rabbitmq') return;
            // alice's lookalike /queue subscriptions made durable client queues: remove them, even
            // when the service's stop failed.
            for (const name of await queueNames('stomp-relay.queue.')) {
              if (name.includes(suffix)) await rabbitmqctl(['delete_queue', name, '-q']);
            }
          },
        ),
      );

      const inst = (): string => service.settings.instanceId;
      const spellings = (): string[] => [
        `/user/${bob}/queue/greetings`,
        `/user/${bob}/topic/news`,
        `/user/queue/greetings/../../${bob}/queue/greetings`,
        `/user/%2F${bob}/queue/greetings`,
        `/user/queue/%67reetings`,
        `/user/${encodeURIComponent(bob)}%2Fqueue%2Fgreetings`,
        '/user/*/queue/greetings',
        '/user/#',
        '/user/queue/*',
        '/user/queue/#',
        '/user/queue/greetings.#',
        `/amq/queue/stomp-relay.${inst()}.user.${bob}`,
        `/amq/queue/stomp-relay.${inst()}.user.${bob}~1`,
        `/exchange/stomp-relay.user/${bob}`,
        '/exchange/stomp-relay.user',
        '/exchange/amq.topic/#',
        '/exchange/stomp-relay.directory',
        `/queue/../user/${bob}/queue/greetings`,
        '/topic/#',
        '/topic/*',
        `/topic/stomp-relay.user.${bob}`.replace(/\.[^.]*$/, '.*'),
        '/temp-queue/x',
        '/reply-queue/x',
        `/USER/${bob}/queue/greetings`,
        `//user/${bob}/queue/greetings`,
        `/user/${bob}\n/queue/greetings`,
      ];

      it("SUBSCRIBE and SEND with any spelling of bob's destinations are refused, naming the destination", async () => {
        for (const transport of ['tcp', 'websocket'] as RawTransport[]) {
          for (const command of ['SUBSCRIBE', 'SEND']) {
            for (const destination of spellings()) {
              const client = clients.add(await connectRaw(service, alice, { transport }));
              client.send(command, { id: 'x', destination });
              const error = await client.expectErrorAndClose();
              const message = header(error, 'message') ?? '';
              expect(message, `${transport} ${command} ${JSON.stringify(destination)}`).to.match(
                /not allowed|cannot send|cannot subscribe/,
              );
            }
          }
        }
      });

      it("nothing pushed to bob reaches alice; alice cannot ACK or UNSUBSCRIBE bob's subscription", async () => {
        const bobClient = clients.add(await connectRaw(service, bob, { transport: 'websocket' }));
        await bobClient.sendWithReceipt('SUBSCRIBE', {
          id: 'bob-sub',
          destination: '/user/queue/greetings',
          ack: 'client-individual',
        });
        // alice subscribes to every legal destination that is spelled like bob's.
        const aliceClient = clients.add(await connectRaw(service, alice, { transport: 'tcp' }));
        const lookalikes = [
          '/user/queue/greetings',
          `/queue/stomp-relay.${inst()}.user.${bob}`,
          `/topic/stomp-relay.user.${bob}`,
          `/queue/${bob}`,
          `/topic/${bob}.greetings`,
        ];
        for (const [i, destination] of lookalikes.entries())
          await aliceClient.sendWithReceipt('SUBSCRIBE', { id: `a${i}`, destination });
        const pusher = tokenFor(service, 'backend', 'push');
        for (let i = 0; i < 5; i++)
          expect((await pushToUser(service.url, pusher, bob, `for bob ${i}`)).status).to.equal(202);
        const delivered = await bobClient.waitForFrame('MESSAGE');
        await waitFor(() => bobClient.all('MESSAGE').length === 5, 5000, 'bob to get his 5 pushes');
        await sleep(300);
        expect(aliceClient.all('MESSAGE'), 'messages alice received').to.have.length(0);

        // bob's ack id and subscription id mean nothing in alice's session.
        const ackId = header(delivered, 'ack')!;
        const acker = clients.add(await connectRaw(service, alice, { transport: 'websocket' }));
        acker.send('ACK', { id: ackId });
        expect(header(await acker.expectErrorAndClose(), 'message')).to.match(/no pending acknowledgement/);
        const unsubscriber = clients.add(await connectRaw(service, alice, { transport: 'websocket' }));
        unsubscriber.send('UNSUBSCRIBE', { id: 'bob-sub' });
        expect(header(await unsubscriber.expectErrorAndClose(), 'message')).to.match(
          /no subscription with id 'bob-sub'/,
        );
        // bob's subscription is intact and his ack is still his to give.
        await bobClient.sendWithReceipt('ACK', { id: ackId });
        expect((await pushToUser(service.url, pusher, bob, 'after')).status).to.equal(202);
        await bobClient.waitForFrame(
          'MESSAGE',
          (f) => f.body.toString() === '"after"' || f.body.toString() === 'after',
        );
        expect(aliceClient.all('MESSAGE')).to.have.length(0);
      });
    });
  }

  describe('origins', () => {
    let service: RunningService;
    const ALLOWED = 'https://app.example.com';

    before(async () => {
      service = await startTestService({ allowedOrigins: [ALLOWED] });
    });
    after(async () => {
      await service.stop();
    });

    // SockJS's raw endpoint speaks no subprotocol; offering one there would fail the handshake.
    const wsStatus = (path: string, origin: string): Promise<string> =>
      handshakeOutcome(service, path, { origin, protocols: path === '/stomp' ? ['v12.stomp'] : [] });

    const refusedOrigins = [
      'https://evil.example',
      'http://app.example.com',
      'https://app.example.com.evil.example',
      'https://app.example.com:8443',
      'null',
      'file://',
    ];

    it('WebSocket (/stomp) and SockJS (/ws/websocket, /ws/info, xhr) handshakes from other origins get 403', async () => {
      for (const origin of refusedOrigins) {
        expect(await wsStatus('/stomp', origin), `/stomp ${origin}`).to.equal('HTTP 403');
        expect(await wsStatus('/ws/websocket', origin), `/ws/websocket ${origin}`).to.equal('HTTP 403');
        expect(
          (await fetch(`${service.url}/ws/info`, { headers: { origin } })).status,
          `/ws/info ${origin}`,
        ).to.equal(403);
        expect(
          (await fetch(`${service.url}/ws/000/abc/xhr`, { method: 'POST', headers: { origin } })).status,
          `/ws xhr ${origin}`,
        ).to.equal(403);
      }
    });

    it('the allowed origin gets through', async () => {
      expect(await wsStatus('/stomp', ALLOWED)).to.equal('open');
      expect(await wsStatus('/ws/websocket', ALLOWED)).to.equal('open');
      expect((await fetch(`${service.url}/ws/info`, { headers: { origin: ALLOWED } })).status).to.equal(200);
    });
  });
});
