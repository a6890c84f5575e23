/**
 * Just enough STOMP 1.2 for load clients: encode a frame, and walk the frames of one WebSocket
 * message. Both the service and RabbitMQ Web-STOMP send whole frames per WebSocket message (plus
 * bare EOLs as heart-beats), so no frame spans two messages. MESSAGE headers are skipped: the
 * clients only need the body, and parsing every header of a million frames would measure us.
 */
export type Headers = Record<string, string>;

export function encodeFrame(command: string, headers: Headers, body = ''): string {
  let out = command + '\n';
  for (const name in headers) out += `${name}:${headers[name]}\n`;
  return out + '\n' + body + '\0';
}

export interface FrameView {
  command: string;
  /** Parsed for every frame except MESSAGE. */
  headers: Headers;
  bodyStart: number;
  bodyEnd: number;
}

const LF = 0x0a;
const CR = 0x0d;

/** Calls `onFrame` for each frame in `buf`; stops quietly at anything incomplete. */
export function forEachFrame(buf: Buffer, onFrame: (frame: FrameView, buf: Buffer) => void): void {
  let at = 0;
  while (at < buf.length) {
    while (at < buf.length && (buf[at] === LF || buf[at] === CR)) at++; // heart-beats
    if (at >= buf.length) return;
    const headEnd = buf.indexOf('\n\n', at);
    if (headEnd < 0) return;
    const lineEnd = buf.indexOf(LF, at);
    const command = buf.toString('latin1', at, buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd);
    const headers: Headers = {};
    if (command !== 'MESSAGE') {
      for (const line of buf.toString('utf8', lineEnd + 1, headEnd).split('\n')) {
        const colon = line.indexOf(':');
        if (colon > 0 && !(line.slice(0, colon) in headers))
          headers[line.slice(0, colon)] = line.slice(colon + 1);
      }
    }
    const bodyStart = headEnd + 2;
    const bodyEnd = buf.indexOf(0, bodyStart);
    if (bodyEnd < 0) return;
    onFrame({ command, headers, bodyStart, bodyEnd }, buf);
    at = bodyEnd + 1;
  }
}
