/**
 * What a client sends inside SockJS framing, read before anything else touches it. A SockJS message
 * is JSON: an array of strings, each a piece of the STOMP byte stream as text (over a WebSocket the
 * message may also be one bare string). Only strings are STOMP data; anything else is refused with
 * a reason the client can read, and the session it came on is closed.
 *
 * The shape is checked in one pass over the characters before JSON.parse runs: outside strings a
 * flat array of strings holds nothing but brackets, commas and whitespace, so anything else (a
 * number, `true`, `null`, an object, an array inside the array) is refused there, unparsed. JSON.parse
 * builds every value it reads, and some cost it far more per byte than strings do (deep nesting
 * most of all: a message at the size limit made of `[[[[...` would hold the event loop, and
 * everyone's deliveries, for a long while); what reaches it holds strings only.
 */

/** Why a message was refused; the `reason` label of stomp_sockjs_messages_refused_total. */
export type RefusalReason = 'not_json' | 'not_an_array' | 'not_a_string';

export type SockJsMessage =
  { ok: true; strings: string[] } | { ok: false; reason: RefusalReason; detail: string };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const COMMA = 0x2c;

const EXPECTED = 'a SockJS message must be a JSON array of strings (STOMP frames as text)';

function refused(reason: RefusalReason, detail: string): SockJsMessage {
  return { ok: false, reason, detail };
}

/** Names a parsed JSON value's kind the way a person reads it. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** What a JSON value starting with character `c` is, the way a person reads it. */
function kindStartingWith(c: number): string {
  if (c === OPEN_BRACE) return 'an object';
  if (c === OPEN_BRACKET) return 'an array';
  if (c === 0x74 || c === 0x66) return 'a boolean'; // t, f
  if (c === 0x6e) return 'null'; // n
  return 'a number';
}

/**
 * The refusal for anything in `text`, outside its strings, that a flat array of strings (or one
 * string) cannot hold; undefined when there is none (JSON.parse still judges the rest).
 */
function shapeProblem(text: string): SockJsMessage | undefined {
  let depth = 0;
  let element = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string: to its closing quote, stepping over escapes.
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === BACKSLASH) i++;
        else if (s === QUOTE) break;
      }
    } else if (c === OPEN_BRACKET && depth === 0) {
      depth = 1;
    } else if (c === CLOSE_BRACKET) {
      depth--;
    } else if (c === COMMA) {
      element++;
    } else if (!isSpace(c)) {
      const isJson =
        c === OPEN_BRACE ||
        c === OPEN_BRACKET ||
        c === 0x2d ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x74 ||
        c === 0x66 ||
        c === 0x6e;
      if (!isJson) return refused('not_json', `${EXPECTED}; this one is not JSON`);
      const kind = kindStartingWith(c);
      return depth === 0
        ? refused('not_an_array', `${EXPECTED}, not ${kind}`)
        : refused('not_a_string', `${EXPECTED}: element ${element} is ${kind}, not a string`);
    }
  }
  return undefined;
}

/**
 * Reads one SockJS message. `bareString`: a lone JSON string is a message too (the websocket
 * transport allows it; xhr_send does not).
 */
export function readSockJsMessage(text: string, bareString: boolean): SockJsMessage {
  const shape = shapeProblem(text);
  if (shape) return shape;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refused('not_json', `${EXPECTED}; this one is not JSON`);
  }
  if (typeof value === 'string') {
    return bareString ? { ok: true, strings: [value] } : refused('not_an_array', `${EXPECTED}, not a string`);
  }
  if (!Array.isArray(value)) return refused('not_an_array', `${EXPECTED}, not ${kindOf(value)}`);
  const strings: string[] = [];
  for (const item of value as unknown[]) {
    if (typeof item !== 'string') {
      return refused(
        'not_a_string',
        `${EXPECTED}: element ${strings.length} is ${kindOf(item)}, not a string`,
      );
    }
    strings.push(item);
  }
  return { ok: true, strings };
}
