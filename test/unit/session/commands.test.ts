/**
 * The command table (app/session/commands.ts) through a real StompSession on an in-memory socket:
 * CONNECT, SEND, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT as a client sees them, each refusal an ERROR
 * with a reason the client can act on, followed by the close the spec asks for.
 * ACK, NACK and transactions are in commands-ack.test.ts.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { COMMANDS } from '../../../app/session/commands';
import { sessionBench, type SessionBench } from '../../support/in-memory-session';
import type { RawStompClient } from '../../support/raw-stomp';
import { sleep } from '../../support/wait';

/** The ERROR a refused frame gets, after which the session must close. */
async function refused(client: RawStompClient): Promise<string> {
  const error = await client.expectErrorAndClose();
  return header(error, 'message') ?? '';
}

describe('command table', function () {
  let bench: SessionBench;
  beforeEach(
    async () => (bench = await sessionBench({ maxSubscriptionsPerSession: 3, maxSessionsPerUser: 2 })),
  );
  afterEach(async () => bench.stop());

  it('has a handler for every client frame of STOMP 1.2 and for nothing else', function () {
    expect([...COMMANDS.keys()].sort()).to.deep.equal([
      'ABORT',
      'ACK',
      'BEGIN',
      'COMMIT',
      'CONNECT',
      'DISCONNECT',
      'NACK',
      'SEND',
      'STOMP',
      'SUBSCRIBE',
      'UNSUBSCRIBE',
    ]);
  });

  for (const command of ['MESSAGE', 'RECEIPT', 'CONNECTED', 'FOO']) {
    it(`answers a client's ${command} with an ERROR naming it, and closes`, async function () {
      const client = await bench.connect('alice');
      client.send(command, { destination: '/topic/x' });
      expect(await refused(client)).to.equal(`unknown command '${command}'`);
    });
  }

  describe('CONNECT', function () {
    it('answers CONNECTED with the version, user, session and heart-beat agreed', async function () {
      const { client, session } = bench.open();
      const connected = await client.connect(bench.token('alice'), {
        'accept-version': '1.1,1.2',
        'heart-beat': '0,0',
      });
      expect(header(connected, 'version')).to.equal('1.2');
      expect(header(connected, 'user-name')).to.equal('alice');
      expect(header(connected, 'session')).to.equal(session.id);
      // CONNECTED states what the server can do (spec: its sx,sy); 0,0 from the client means none is sent.
      const { heartbeatSendMs, heartbeatReceiveMs } = bench.ctx.settings;
      expect(header(connected, 'heart-beat')).to.equal(`${heartbeatSendMs},${heartbeatReceiveMs}`);
      expect(header(connected, 'server')).to.equal('stomp-relay/test');
      expect(bench.ctx.registry.countForUser('alice')).to.equal(1);
    });

    it('takes the token from passcode and from STOMP as from CONNECT', async function () {
      const { client } = bench.open();
      client.send('STOMP', { 'accept-version': '1.2', host: 'x', passcode: bench.token('bob') });
      const connected = await client.waitForFrame('CONNECTED');
      expect(header(connected, 'user-name')).to.equal('bob');
    });

    it('refuses a CONNECT without a token, saying where one goes', async function () {
      const { client } = bench.open();
      client.send('CONNECT', { 'accept-version': '1.2', host: 'x' });
      expect(await refused(client)).to.match(/^no token: send 'Authorization: Bearer <jwt>'/);
    });

    it('refuses an Authorization header that is not a bearer token, even with a good passcode', async function () {
      const { client } = bench.open();
      client.send('CONNECT', {
        'accept-version': '1.2',
        Authorization: `Basic ${bench.token('alice')}`,
        passcode: bench.token('alice'),
      });
      expect(await refused(client)).to.contain('not a bearer token');
    });

    it('refuses a version it does not speak, listing those it does', async function () {
      const { client } = bench.open();
      client.send('CONNECT', { 'accept-version': '2.0', passcode: bench.token('alice') });
      const error = await client.expectErrorAndClose();
      expect(header(error, 'message')).to.equal('no common STOMP version: this server speaks 1.0, 1.1, 1.2');
      expect(header(error, 'version')).to.equal('1.0,1.1,1.2');
    });

    it('refuses while draining, and past the per-user session limit', async function () {
      await bench.connect('alice');
      await bench.connect('alice');
      const third = bench.open().client;
      third.send('CONNECT', { 'accept-version': '1.2', passcode: bench.token('alice') });
      expect(await refused(third)).to.equal('user already has 2 sessions on this instance');
      await bench.connect('bob');
      bench.draining = true;
      const late = bench.open().client;
      late.send('CONNECT', { 'accept-version': '1.2', passcode: bench.token('carol') });
      expect(await refused(late)).to.equal('this instance is draining: connect to another instance');
    });

    it('refuses any other frame before CONNECT, and a second CONNECT', async function () {
      const { client } = bench.open();
      client.send('SUBSCRIBE', { id: '1', destination: '/topic/x' });
      expect(await refused(client)).to.equal('SUBSCRIBE before CONNECT: send CONNECT first');
      const again = await bench.connect('alice');
      again.send('CONNECT', { 'accept-version': '1.2', passcode: bench.token('alice') });
      expect(await refused(again)).to.equal('already connected');
    });
  });

  describe('SEND and SUBSCRIBE', function () {
    it('delivers a SEND to a topic to its subscriber, as written, with only application headers', async function () {
      const sub = await bench.connect('bob');
      await sub.sendWithReceipt('SUBSCRIBE', { id: 's1', destination: '/topic/news' });
      const pub = await bench.connect('alice');
      await pub.sendWithReceipt(
        'SEND',
        { destination: '/topic/news', 'content-type': 'text/plain', 'x-tag': 'a', 'user-name': 'mallory' },
        'hello',
      );
      const message = await sub.waitForFrame('MESSAGE');
      expect(message.body.toString()).to.equal('hello');
      expect(header(message, 'subscription')).to.equal('s1');
      expect(header(message, 'destination')).to.equal('/topic/news');
      expect(header(message, 'content-type')).to.equal('text/plain');
      expect(header(message, 'x-tag')).to.equal('a');
      expect(header(message, 'user-name'), 'a reserved name is stripped').to.equal(undefined);
      expect(header(message, 'message-id')).to.be.a('string').and.not.equal('');
    });

    it('refuses a SEND without destination, to /user, or where the rules forbid', async function () {
      const cases: [Record<string, string>, RegExp][] = [
        [{}, /^SEND needs a 'destination' header$/],
        [{ destination: '' }, /^SEND needs a 'destination' header$/],
        [{ destination: '/user/queue/x' }, /user destinations are written by the service/],
        [{ destination: '/topic/readonly.a' }, /^not allowed to send to '\/topic\/readonly\.a'$/],
      ];
      for (const [headers, reason] of cases) {
        const client = await bench.connect('alice');
        client.send('SEND', headers, 'x');
        expect(await refused(client), JSON.stringify(headers)).to.match(reason);
        await sleep(0);
      }
    });

    it('sends /app to its handler; a route with no handler, or inside a transaction, is refused', async function () {
      const seen: string[] = [];
      bench.ctx.appRouter.add('ping', async (msg) => void seen.push(`${msg.user}:${msg.body.toString()}`));
      const client = await bench.connect('alice');
      await client.sendWithReceipt('SEND', { destination: '/app/ping' }, 'hi');
      expect(seen).to.deep.equal(['alice:hi']);
      client.send('SEND', { destination: '/app/nothing' });
      expect(await refused(client)).to.equal("no handler for '/app/nothing'");

      const tx = await bench.connect('alice');
      tx.send('BEGIN', { transaction: 't' });
      tx.send('SEND', { destination: '/app/ping', transaction: 't' }, 'no');
      expect(await refused(tx)).to.equal('/app messages cannot be part of a transaction');
      expect(seen).to.have.length(1);
    });

    it('refuses SUBSCRIBE without id (1.2), with an id in use, a bad ack mode, /app, or a forbidden destination', async function () {
      const cases: [Record<string, string>, RegExp][] = [
        [{ destination: '/topic/a' }, /^SUBSCRIBE needs a 'id' header$/],
        [
          { id: '1', destination: '/topic/a', ack: 'sometimes' },
          /^ack must be one of auto, client, client-individual$/,
        ],
        [{ id: '1', destination: '/app/echo' }, /\/app is for SEND$/],
        [{ id: '1', destination: '/topic/private.x' }, /^not allowed to subscribe to '\/topic\/private\.x'$/],
        [{ id: '1', destination: '/user/alice/queue/x' }, /of your own user$/],
      ];
      for (const [headers, reason] of cases) {
        const client = await bench.connect('bob');
        client.send('SUBSCRIBE', headers);
        expect(await refused(client), JSON.stringify(headers)).to.match(reason);
      }
      const client = await bench.connect('bob');
      await client.sendWithReceipt('SUBSCRIBE', { id: '1', destination: '/topic/a' });
      client.send('SUBSCRIBE', { id: '1', destination: '/topic/b' });
      expect(await refused(client)).to.equal("subscription id '1' is already in use");
    });

    it('holds a session to maxSubscriptionsPerSession and lists its subscriptions in the registry', async function () {
      const client = await bench.connect('alice');
      for (const id of ['a', 'b', 'c'])
        await client.sendWithReceipt('SUBSCRIBE', { id, destination: `/topic/${id}` });
      const [listed] = await bench.presence.list('alice');
      expect(listed?.subscriptions.map((s) => s.id)).to.deep.equal(['a', 'b', 'c']);
      client.send('SUBSCRIBE', { id: 'd', destination: '/topic/d' });
      expect(await refused(client)).to.equal('at most 3 subscriptions per session');
      expect(bench.ctx.registry.countForUser('alice'), 'the closed session is gone').to.equal(0);
    });

    it('STOMP 1.0: a subscription without id is named by its destination, and UNSUBSCRIBE by destination works', async function () {
      const client = await bench.connect('alice', { 'accept-version': '1.0' });
      await client.sendWithReceipt('SUBSCRIBE', { destination: '/topic/old' });
      const pub = await bench.connect('bob');
      await pub.sendWithReceipt('SEND', { destination: '/topic/old' }, 'one');
      expect(header(await client.waitForFrame('MESSAGE'), 'subscription')).to.equal('/topic/old');
      await client.sendWithReceipt('UNSUBSCRIBE', { destination: '/topic/old' });
      await pub.sendWithReceipt('SEND', { destination: '/topic/old' }, 'two');
      await sleep(50);
      expect(client.all('MESSAGE')).to.have.length(1);
    });
  });

  describe('UNSUBSCRIBE and DISCONNECT', function () {
    it('stops deliveries of that subscription only; an unknown id is refused', async function () {
      const client = await bench.connect('alice');
      await client.sendWithReceipt('SUBSCRIBE', { id: 'a', destination: '/topic/t' });
      await client.sendWithReceipt('SUBSCRIBE', { id: 'b', destination: '/topic/t' });
      await client.sendWithReceipt('UNSUBSCRIBE', { id: 'a' });
      const pub = await bench.connect('bob');
      await pub.sendWithReceipt('SEND', { destination: '/topic/t' }, 'x');
      await client.waitForFrame('MESSAGE');
      await sleep(50);
      expect(client.all('MESSAGE').map((m) => header(m, 'subscription'))).to.deep.equal(['b']);
      client.send('UNSUBSCRIBE', { id: 'a' });
      expect(await refused(client)).to.equal("no subscription with id 'a'");
    });

    it('DISCONNECT: the RECEIPT asked for is the last frame, then the session closes and frees its slot', async function () {
      const client = await bench.connect('alice');
      await client.sendWithReceipt('SUBSCRIBE', { id: 'a', destination: '/topic/t' });
      client.send('DISCONNECT', { receipt: 'bye' });
      await client.waitForClose();
      const last = client.frames.at(-1)!;
      expect(last.command).to.equal('RECEIPT');
      expect(header(last, 'receipt-id')).to.equal('bye');
      expect(bench.ctx.registry.countForUser('alice')).to.equal(0);
      expect(await bench.presence.list('alice')).to.deep.equal([]);
    });
  });
});
