/**
 * A STOMP frame as the codec sees it: a command, headers in wire order and a body of raw bytes.
 *
 * Headers are kept as an ordered list because STOMP 1.2 says that when a header repeats the first
 * occurrence wins (https://stomp.github.io/stomp-specification-1.2.html#Repeated_Header_Entries),
 * and a map built naively would keep the last. `header()` implements the first-wins rule.
 */
export type ClientCommand =
  | 'CONNECT'
  | 'STOMP'
  | 'SEND'
  | 'SUBSCRIBE'
  | 'UNSUBSCRIBE'
  | 'ACK'
  | 'NACK'
  | 'BEGIN'
  | 'COMMIT'
  | 'ABORT'
  | 'DISCONNECT';

export type ServerCommand = 'CONNECTED' | 'MESSAGE' | 'RECEIPT' | 'ERROR';

export const CLIENT_COMMANDS: readonly ClientCommand[] = [
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
];

export type StompVersion = '1.0' | '1.1' | '1.2';

/**
 * Frames whose headers are never escaped (spec 1.2 §Value Encoding): CONNECT and CONNECTED, so a
 * 1.0 peer can read them before a version is agreed, and STOMP, which is CONNECT under its 1.1+
 * name and read at the same moment. The parser and the serializer share this one rule.
 */
export const UNESCAPED_COMMANDS: ReadonlySet<string> = new Set(['CONNECT', 'STOMP', 'CONNECTED']);

export type HeaderList = [name: string, value: string][];

export interface Frame {
  command: string;
  headers: HeaderList;
  body: Buffer;
}

/** First occurrence wins (STOMP 1.2 "Repeated Header Entries"). */
export function header(frame: Frame, name: string): string | undefined {
  for (const [k, v] of frame.headers) if (k === name) return v;
  return undefined;
}

export function frame(
  command: string,
  headers: Record<string, string | undefined> = {},
  body?: Buffer | string,
): Frame {
  const list: HeaderList = [];
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) list.push([k, v]);
  return {
    command,
    headers: list,
    body: body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body),
  };
}
