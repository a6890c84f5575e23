/**
 * The one interface every client transport (plain WebSocket, SockJS, raw TCP) adapts to. The STOMP
 * session reads bytes from it and writes frames to it and never asks which transport it has; the
 * transport knows nothing of destinations, users or brokers.
 */
export type TransportName = 'websocket' | 'sockjs' | 'tcp';

export interface ConnectionInfo {
  transport: TransportName;
  /** SockJS sub-transport (websocket, xhr-streaming, ...) or the transport name again. */
  protocol: string;
  remoteAddress: string;
  /** Token found during the handshake (`access_token` query parameter or WebSocket subprotocol). */
  handshakeToken?: string;
  /** STOMP versions the handshake limited the session to (from the negotiated subprotocol). */
  versions?: string[];
}

export interface ClientSocket {
  readonly info: ConnectionInfo;
  /** Sends one serialized frame. Text transports (SockJS) get frames as UTF-8 strings. */
  send(data: Buffer): void;
  /**
   * Bytes written to this client and not yet handed to the kernel, wherever they wait (this
   * adapter, the library under it, the socket's write buffer): slow-consumer detection.
   */
  bufferedAmount(): number;
  /** Closes after flushing what was sent; `close` fires once. Reading resumes, so the close completes. */
  close(): void;
  onData(listener: (chunk: Buffer) => void): void;
  /**
   * Stops reading from the client (flow control: the session has more of its frames waiting than
   * it lets wait), each transport its own way, so the client itself is held back: a socket stops
   * being read and TCP's window closes on the client's writes; a SockJS send is answered only once
   * reading resumes (sockjs-client sends its next batch after that answer). What the transport
   * had already taken in may still arrive after this. Idempotent, like `resume`.
   */
  pause(): void;
  resume(): void;
  /**
   * The client sent something the transport cannot turn into STOMP bytes (a SockJS message that is
   * not a JSON array of strings): the session answers with an ERROR giving `reason`, and closes.
   * Transports that carry bytes as they come have nothing to refuse and leave it out.
   */
  onRefused?(listener: (reason: string) => void): void;
  onClose(listener: () => void): void;
}

/**
 * The largest message any transport hands over in one piece (a SockJS message: a JSON array of
 * frames as text), from the frame limits: room for one full frame however it is escaped (a control
 * character takes six), or a batch of several ordinary ones.
 */
export function largestMessageBytes(limits: { maxFrameBytes: number; maxHeaderBytes: number }): number {
  return 8 * (limits.maxFrameBytes + limits.maxHeaderBytes);
}
