/**
 * Frames in, bytes out: the inverse of parser.ts, kept apart from it as in stomp-js/stompjs.
 *
 * The serializer owns `content-length`: whatever the frame carries, the bytes written announce the
 * body's real length in octets, so a frame relayed with a stale or string-length header can never
 * desynchronise a client's stream.
 *
 * Spec: https://stomp.github.io/stomp-specification-1.2.html#STOMP_Frames
 */
import { ServiceError } from '../errors';
import { UNESCAPED_COMMANDS, type Frame, type StompVersion } from './frame';

/** A heart-beat is a single EOL (spec 1.2 §Heart-beating). */
export const HEARTBEAT_FRAME: Buffer = Buffer.from('\n');

const NUL_BYTE = Buffer.from([0]);
const COMMAND_PATTERN = /^[A-Z]{1,20}$/;

type Escaper = (text: string) => string;

// Backslash first, so the backslashes the other replacements introduce are not doubled. Most
// values need no escaping at all: one test instead of three or four replace() calls each.
const NEEDS_ESCAPE_11 = /[\\\n:]/;
const NEEDS_ESCAPE_12 = /[\\\n:\r]/;
const escape11: Escaper = (text) =>
  NEEDS_ESCAPE_11.test(text) ? text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/:/g, '\\c') : text;
const escape12: Escaper = (text) =>
  NEEDS_ESCAPE_12.test(text) ? escape11(text).replace(/\r/g, '\\r') : text;

/** Spec 1.1 and 1.2 §Value Encoding; 1.0 defines no escaping. */
function escaperFor(command: string, version: StompVersion): Escaper | undefined {
  if (version === '1.0' || UNESCAPED_COMMANDS.has(command)) return undefined;
  return version === '1.1' ? escape11 : escape12;
}

export function serializeFrame(frame: Frame, version: StompVersion): Buffer {
  if (!COMMAND_PATTERN.test(frame.command)) {
    throw new ServiceError(
      'bad_frame',
      `cannot send invalid command ${JSON.stringify(frame.command.slice(0, 24))}`,
    );
  }
  const escape = escaperFor(frame.command, version);
  const lines = [frame.command];
  let lengthWritten = false;
  for (const [name, value] of frame.headers) {
    if (name === 'content-length') {
      // Keep the position of the first one (first wins on the reading side), drop the rest.
      if (!lengthWritten && frame.body.length > 0) lines.push(`content-length:${frame.body.length}`);
      lengthWritten = true;
      continue;
    }
    const why = unrepresentableHeader(frame.command, name, value, version);
    if (why !== undefined) {
      throw new ServiceError(
        'bad_frame',
        `cannot send header ${JSON.stringify(name.slice(0, 40))}: it has ${why}`,
      );
    }
    lines.push(escape ? `${escape(name)}:${escape(value)}` : `${name}:${value}`);
  }
  if (!lengthWritten && frame.body.length > 0) lines.push(`content-length:${frame.body.length}`);
  const head = Buffer.from(`${lines.join('\n')}\n\n`, 'utf8');
  return Buffer.concat([head, frame.body, NUL_BYTE], head.length + frame.body.length + 1);
}

/**
 * Why a header cannot be written in `command` for a `version` peer, or undefined when it can.
 * Without this check, a header holding a LF (for a 1.0 client, or in CONNECTED) or a NUL (no version
 * can escape it) would let whoever chose the value inject headers or whole frames into another
 * client's stream. STOMP 1.1 has no escape for CR, and a trailing raw CR would be read back as part
 * of the CR LF line end. The session asks this before building a MESSAGE, to leave off what a
 * subscriber's version cannot carry instead of losing the whole frame.
 */
export function unrepresentableHeader(
  command: string,
  name: string,
  value: string,
  version: StompVersion,
): string | undefined {
  const escape = escaperFor(command, version);
  const text = name + value;
  if (name.length === 0) return 'an empty name';
  if (text.includes('\0')) return 'a NUL byte';
  if (escape === undefined && (text.includes('\n') || name.includes(':'))) {
    return "a line break or a ':' in its name, and this frame is not escaped";
  }
  if (escape !== escape12 && text.includes('\r')) return 'a carriage return, which only STOMP 1.2 escapes';
  return undefined;
}
