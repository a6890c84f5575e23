/**
 * The reason a session ends is logged once, on its `session closed` line, and names the cause: a
 * client that sends DISCONNECT (with a receipt, as stompjs and stomp.py do) is a
 * `client_disconnect` whichever transport carried it, even where the transport reports its own
 * close while the session is still answering the DISCONNECT (SockJS does, synchronously).
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { LogCapture, startLoggedService } from '../../support/logs';
import { openRaw, type RawStompClient } from '../../support/raw-stomp';
import type { RunningService } from '../../support/service';
import { tokenFor } from '../../support/service';
import { openSockJs, SOCKJS_RAW_TRANSPORTS } from '../../support/sockjs-raw';
import { connectStomp } from '../../support/stomp-clients';
import { waitFor } from '../../support/wait';

const SOCKJS = SOCKJS_RAW_TRANSPORTS;

describe('session: close reasons', () => {
  const capture = new LogCapture();
  let service: RunningService;

  before(async () => {
    service = await startLoggedService(capture, { stompTcpPort: 0 });
  });
  after(async () => {
    await service.stop();
  });

  /** The `reason` on the `session closed` line of the session with this id, once it is there. */
  async function closeReason(sessionId: string): Promise<unknown> {
    let reason: unknown;
    await waitFor(
      () => {
        const entry = capture.entries().find((e) => e.msg === 'session closed' && e.session === sessionId);
        reason = entry?.reason;
        return entry !== undefined;
      },
      3000,
      `the close of session ${sessionId} to be logged`,
    );
    return reason;
  }

  async function disconnectWithReceipt(client: RawStompClient): Promise<string> {
    const connected = await client.connect(tokenFor(service, 'alice'));
    client.send('DISCONNECT', { receipt: 'bye' });
    await client.waitForFrame('RECEIPT', (f) => header(f, 'receipt-id') === 'bye');
    await client.waitForClose();
    client.close();
    return header(connected, 'session') ?? '';
  }

  for (const transport of ['tcp', 'websocket'] as const) {
    it(`DISCONNECT with a receipt over ${transport === 'tcp' ? 'raw TCP' : '/stomp'}: client_disconnect`, async () => {
      const session = await disconnectWithReceipt(await openRaw(service, transport));
      expect(await closeReason(session)).to.equal('client_disconnect');
    });
  }

  for (const transport of SOCKJS) {
    it(`DISCONNECT with a receipt over SockJS ${transport}: client_disconnect, and the connection closes`, async () => {
      const session = await disconnectWithReceipt(await openSockJs(service.url, transport));
      expect(await closeReason(session)).to.equal('client_disconnect');
    });
  }

  for (const transport of ['websocket', 'xhr-streaming'] as const) {
    it(`stompjs over sockjs-client (${transport}) deactivating: client_disconnect`, async () => {
      const client = await connectStomp(service, 'bob', {
        transport: 'sockjs',
        sockjsTransports: [transport],
      });
      const session = client.connected.headers.session ?? '';
      await client.close();
      expect(await closeReason(session)).to.equal('client_disconnect');
    });
  }
});
