/**
 * Fault point 1, below STOMP on SockJS: only strings are STOMP data. sockjs-node hands on whatever a
 * client's JSON holds, and its own send handlers trust the JSON's shape (`{"__proto__":[],
 * "length":1e15}` passes its array check and loops 10^15 times). A SockJS message that is not a JSON
 * array of strings (a number, null, an object, a nested array, a huge `length`, invalid JSON), over
 * the websocket transport, xhr_send or jsonp_send, closes that session with an ERROR saying why
 * (the HTTP send gets 400 with a JSON reason), is counted in /metrics, takes no time or memory to
 * refuse, and nobody else notices.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { metricSum } from '../../support/metrics';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { openSockJs, type SockJsRawClient, type SockJsRawTransport } from '../../support/sockjs-raw';
import { waitFor } from '../../support/wait';
import { Bystander, heapUsedMb } from './harness';

/** SockJS message bodies that are not a JSON array of strings. */
const HOSTILE = [
  '[1]',
  '[null]',
  '[true]',
  '[{}]',
  '[["SEND"]]',
  '["SEND\\ndestination:/topic/t\\n\\n\\u0000", 5]',
  '[{"length":100000000}]',
  '{"length":100000000}',
  '{"__proto__":[],"length":1000000000000000}',
  '{"__proto__":null}',
  '7',
  'null',
  '["unterminated',
  'not json at all',
  `${'['.repeat(90_000)}${']'.repeat(90_000)}`,
];

/** Which SockJS transport carries the session, and how the hostile message travels. */
const ROUTES: { send: string; via: SockJsRawTransport }[] = [
  { send: 'websocket message', via: 'websocket' },
  { send: 'xhr_send body', via: 'xhr-streaming' },
  { send: 'xhr_send body', via: 'xhr-polling' },
  { send: 'jsonp_send form', via: 'jsonp-polling' },
];

describe('faults: SockJS messages that are not strings', function () {
  this.timeout(60_000);
  let service: RunningService;
  const bystanders: Bystander[] = [];
  const open: SockJsRawClient[] = [];

  before(async () => {
    service = await startTestService({ stompTcpPort: 0, maxSessionsPerUser: 1000 });
    bystanders.push(await Bystander.start(service, 'tcp'), await Bystander.start(service, 'websocket'));
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  after(async () => {
    for (const b of bystanders) b.stop();
    await service.stop();
  });

  for (const { send, via } of ROUTES) {
    it(`${via} (${send}): each hostile shape ends that session with an ERROR, quickly, counted`, async () => {
      const refusedBefore = await metricSum(service.url, 'stomp_sockjs_messages_refused_total');
      const heapBefore = heapUsedMb();
      for (const body of HOSTILE) {
        const client = await openSockJs(service.url, via);
        open.push(client);
        await client.connect(tokenFor(service, 'mallory'));
        const answered = client.sendAnswers.length;
        const started = Date.now();
        client.sendMessage(body);
        const error = await client.waitForFrame('ERROR', 5000).catch((err: unknown) => {
          throw new Error(`${via}: ${body.slice(0, 40)}: ${String(err)}`);
        });
        await client.waitForClose(5000);
        // A liveness bound, far above what a refusal costs: before, [{"length":1e8}] took 7 s.
        expect(Date.now() - started, `ms to refuse ${body.slice(0, 40)}`).to.be.below(2000);
        expect(header(error, 'message'), body.slice(0, 40)).to.match(/SockJS message/);
        if (via !== 'websocket') {
          await waitFor(() => client.sendAnswers.length > answered, 3000, 'the answer to the send');
          const answer = client.sendAnswers[answered]!;
          expect(answer.status, body.slice(0, 40)).to.equal(400);
          expect(JSON.parse(answer.body)).to.have.keys('error', 'detail');
        }
      }
      expect(heapUsedMb() - heapBefore, 'heap growth MiB').to.be.below(20);
      expect(await metricSum(service.url, 'stomp_sockjs_messages_refused_total')).to.equal(
        refusedBefore + HOSTILE.length,
      );
    });
  }

  it('a SockJS message that is a bare string, or an array of strings, is STOMP data on the websocket transport', async () => {
    const client = await openSockJs(service.url, 'websocket');
    open.push(client);
    const token = tokenFor(service, 'alice');
    client.sendMessage(JSON.stringify(`CONNECT\naccept-version:1.2\nhost:h\npasscode:${token}\n\n\0`));
    await client.waitForFrame('CONNECTED');
    // One frame split over two strings of one message, and two frames in one string.
    client.sendMessage(JSON.stringify(['SUBSCRIBE\nid:a\ndestina', 'tion:/topic/t\nreceipt:r1\n\n\0']));
    client.sendMessage(
      JSON.stringify(['SUBSCRIBE\nid:b\ndestination:/topic/u\n\n\0UNSUBSCRIBE\nid:b\nreceipt:r2\n\n\0']),
    );
    await client.waitForFrame('RECEIPT', (f) => header(f, 'receipt-id') === 'r2');
    expect(client.all('ERROR')).to.deep.equal([]);
  });

  it('xhr_send for a session that does not exist: 404, and nothing else happens', async () => {
    const res = await fetch(`${service.url}/ws/000/nosuchsession/xhr_send`, {
      method: 'POST',
      body: '["x"]',
    });
    expect(res.status).to.equal(404);
  });

  it('the bystanders received every push, in order, through all of the above', async () => {
    for (const b of bystanders.splice(0)) await b.stopAndCheck(5);
  });
});
