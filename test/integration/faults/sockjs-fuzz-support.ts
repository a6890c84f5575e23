/**
 * The SockJS fuzzer's parts: a seeded generator of SockJS message bodies, each with the answer it
 * must get, and a worker that throws them at an instance over one way in (the websocket transport,
 * xhr_send, jsonp_send) and checks every answer.
 *
 * What each message must get:
 * - `refused`: not a JSON array of strings (non-strings, objects, nested arrays, huge `length`
 *   fields, invalid JSON): an ERROR naming the SockJS message, then the close; a send answers 400;
 * - `stomp-error`: a valid SockJS message whose STOMP is refused (a huge string with no frame end):
 *   an ERROR, then the close;
 * - `accepted`: valid frames however they are cut into strings (one character each included),
 *   heart-beats between them, in one message or in a burst of many small ones: the sentinel's
 *   RECEIPT, the session open;
 * - `too-large`: over the message limit: the WebSocket closes (1009) unread, a send answers 413 and
 *   the session carries on.
 */
import { header } from '../../../app/stomp/frame';
import { openSockJs, type SockJsRawClient, type SockJsRawTransport } from '../../support/sockjs-raw';
import { waitFor } from '../../support/wait';
import { Rng } from './fuzz-support';

export type Expected = 'refused' | 'stomp-error' | 'accepted' | 'too-large';

export interface Shape {
  kind: string;
  /** The SockJS messages to send, in order (several for a burst of small ones). */
  bodies: string[];
  expected: Expected;
}

export interface SockJsTally {
  messages: number;
  sessions: number;
  byKind: Record<string, number>;
  failures: string[];
}

/** The SockJS session a worker attacks, and how its messages travel. */
export type Route = 'websocket' | 'xhr_send' | 'jsonp_send';
const CARRIER: Record<Route, SockJsRawTransport> = {
  websocket: 'websocket',
  xhr_send: 'xhr-streaming',
  jsonp_send: 'jsonp-polling',
};

function sentinel(receipt: string): string {
  return `SEND\ndestination:/app/echo\nreceipt:${receipt}\n\nend\0`;
}

/** `text` cut at random places into 1..maxPiece-character strings. */
function pieces(rng: Rng, text: string, maxPiece: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length;) {
    const n = Math.min(text.length - at, rng.int(1, maxPiece));
    out.push(text.slice(at, at + n));
    at += n;
  }
  return out;
}

/**
 * One message body for `route`, sized to fit `maxBytes` (the instance's SockJS message limit) as
 * it travels (jsonp_send percent-encodes its form, so structure costs three times as much there).
 */
export function shape(rng: Rng, route: Route, maxBytes: number, receipt: string): Shape {
  const room = route === 'jsonp_send' ? Math.floor(maxBytes / 3) - 64 : maxBytes - 64;
  const one = (kind: string, body: string, expected: Expected): Shape => ({ kind, bodies: [body], expected });
  const roll = rng.next();
  if (roll < 0.05) {
    return one('too large', JSON.stringify(['a'.repeat(maxBytes + rng.int(1, 1000))]), 'too-large');
  }
  if (roll < 0.1) {
    return one('huge string', JSON.stringify(['S'.repeat(rng.int(room / 2, room))]), 'stomp-error');
  }
  const frame = sentinel(receipt);
  if (roll < 0.2) {
    // Many small messages: the frame a few characters per message, heart-beats among them.
    const strings = pieces(rng, frame, 3);
    const beats = Array<string>(rng.int(0, route === 'websocket' ? 400 : 20)).fill('\n');
    const bodies = [...beats, ...strings].map((p) =>
      route === 'websocket' && rng.chance(0.3) ? JSON.stringify(p) : JSON.stringify([p]),
    );
    return { kind: 'many small messages', bodies, expected: 'accepted' };
  }
  if (roll < 0.35) {
    const tiny = rng.chance(0.3);
    const strings = pieces(rng, frame, tiny ? 1 : rng.int(1, 40));
    if (rng.chance(0.3)) strings.unshift(...Array<string>(rng.int(1, tiny ? 20_000 : 50)).fill('\n'));
    const bare = route === 'websocket' && !tiny && rng.chance(0.2);
    return bare
      ? one('bare string', JSON.stringify(frame), 'accepted')
      : one(tiny ? 'many small strings' : 'frames in pieces', JSON.stringify(strings), 'accepted');
  }
  const depth = rng.int(2, Math.floor(room / 2));
  const n = rng.pick([1, 100_000_000, 4_294_967_295, 1e15, 2 ** 53]);
  const hostile: [string, () => string][] = [
    ['number', () => `[${rng.pick(['1', '-0.5', '1e308', '0'])}]`],
    ['null', () => '[null]'],
    ['boolean', () => `[${rng.pick(['true', 'false'])}]`],
    ['string then number', () => `["CONNECT\\n\\n\\u0000",${rng.int(0, 9)}]`],
    ['object', () => rng.pick(['{}', '{"a":"b"}', '[{}]', '["x",{"k":["y"]}]'])],
    ['nested array', () => rng.pick(['[[]]', '[["SEND"]]', '["a",["b"]]'])],
    ['deep nesting', () => `${'['.repeat(depth)}${']'.repeat(depth)}`],
    ['huge length', () => rng.pick([`{"length":${n}}`, `[{"length":${n}}]`, `{"0":"x","length":${n}}`])],
    [
      '__proto__',
      () => rng.pick([`{"__proto__":[],"length":${n}}`, '{"__proto__":null}', '{"__proto__":["x"]}']),
    ],
    [
      'invalid JSON',
      () => rng.pick(['[', '["a",]', "['a']", '["\\x"]', '["unterminated', '[1,2', 'nul', '}{']),
    ],
    ['not an array', () => rng.pick(['7', 'null', 'true', route === 'websocket' ? '{"d":1}' : '"bare"'])],
    // A control character outside a string: never JSON, whatever follows.
    ['random bytes', () => `[\u0001${rng.bytes(rng.int(1, 64)).toString('latin1')}`],
  ];
  const [kind, make] = rng.pick(hostile);
  return one(kind, make(), 'refused');
}

async function open(baseUrl: string, route: Route, token: string): Promise<SockJsRawClient> {
  const client = await openSockJs(baseUrl, CARRIER[route]);
  await client.connect(token);
  // CONNECTED arrives over the receiving transport and can overtake the CONNECT send's own answer:
  // wait for it, or the first shape sent on this session reads that 200 as its own.
  if (route !== 'websocket')
    await waitFor(() => client.sendAnswers.length > 0, 5000, "the CONNECT send's answer");
  return client;
}

/**
 * Throws shapes over `route` until `deadline` or `target` messages, opening a new session whenever
 * one ends; checks each answer against its shape's expectation.
 */
export async function sockJsWorker(
  baseUrl: string,
  route: Route,
  token: string,
  rng: Rng,
  tally: SockJsTally,
  limits: { maxMessageBytes: number; deadline: number; target: number },
): Promise<void> {
  const fail = (message: string): void => {
    if (tally.failures.length < 20) tally.failures.push(`[${route} seed ${rng.seed}] ${message}`);
  };
  let client: SockJsRawClient | undefined;
  while (Date.now() < limits.deadline && tally.messages < limits.target && tally.failures.length === 0) {
    if (!client || client.closed) {
      client?.close();
      client = await open(baseUrl, route, token);
      tally.sessions++;
    }
    const receipt = `r${tally.messages}`;
    const s = shape(rng, route, limits.maxMessageBytes, receipt);
    const answers = client.sendAnswers.length;
    const errors = client.all('ERROR').length;
    for (const body of s.bodies) client.sendMessage(body);
    tally.messages += s.bodies.length;
    tally.byKind[s.kind] = (tally.byKind[s.kind] ?? 0) + s.bodies.length;
    const c = client;
    const what = `${s.kind} (${s.bodies[0]!.slice(0, 30)}...)`;
    const http = route !== 'websocket';
    try {
      if (s.expected === 'accepted') {
        await c.waitForFrame('RECEIPT', (f) => header(f, 'receipt-id') === receipt, 5000);
        if (c.all('ERROR').length > errors || c.closed) fail(`${what}: session ended`);
        // Likewise a RECEIPT can overtake the answers to the sends that carried the shape.
        if (http)
          await waitFor(() => c.sendAnswers.length >= answers + s.bodies.length, 5000, "the sends' answers");
      } else if (s.expected === 'too-large' && http) {
        await waitFor(() => c.sendAnswers.length > answers, 5000, 'the 413');
        if (c.sendAnswers[answers]?.status !== 413)
          fail(`${what}: answered ${c.sendAnswers[answers]?.status}`);
      } else if (s.expected === 'too-large') {
        await c.waitForClose(5000);
        if (c.all('ERROR').length > errors) fail(`${what}: an ERROR, not a 1009 close`);
      } else {
        const error = await c.waitForFrame('ERROR', 5000);
        await c.waitForClose(5000);
        if (s.expected === 'refused' && !/SockJS message/.test(header(error, 'message') ?? ''))
          fail(`${what}: ERROR ${header(error, 'message')}`);
        if (http) {
          await waitFor(() => c.sendAnswers.length > answers, 5000, 'the answer to the send');
          const status = c.sendAnswers[answers]?.status;
          const taken = route === 'xhr_send' ? 204 : 200;
          if (status !== (s.expected === 'refused' ? 400 : taken)) fail(`${what}: answered ${status}`);
        }
      }
    } catch (err: unknown) {
      fail(`${what}, expected ${s.expected}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  client?.close();
}
