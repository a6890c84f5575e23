/**
 * Tokens are never logged, whatever the transport. sockjs-node logs every request URL (and, for an
 * exception, the URL with its query at error level), and `access_token` rides in that query on
 * every SockJS request, so the service redacts what sockjs hands its log callback. Everything is
 * logged at `debug` here, with none of the logger's own redaction, so whatever reaches a log line
 * would show.
 */
import { expect } from 'chai';
import { LogCapture, startLoggedService } from '../../support/logs';
import { openWebSocket } from '../../support/raw-stomp';
import type { RunningService } from '../../support/service';
import { tokenFor } from '../../support/service';
import { openSockJs, SOCKJS_RAW_TRANSPORTS } from '../../support/sockjs-raw';
import { connectStomp } from '../../support/stomp-clients';
import { sockjsLog } from '../../../app/transport/sockjs';

const SOCKJS = SOCKJS_RAW_TRANSPORTS;

describe('session: tokens never reach the log', () => {
  const capture = new LogCapture();
  let service: RunningService;

  before(async () => {
    service = await startLoggedService(capture);
  });
  after(async () => {
    await service.stop();
  });

  /** No line holds the token, nor its signature (the part that makes it usable). */
  function expectNotLogged(token: string): void {
    const signature = token.split('.')[2]!;
    const leaks = capture.lines.filter((line) => line.includes(token) || line.includes(signature));
    expect(leaks, 'log lines holding the token').to.deep.equal([]);
  }

  it('access_token in the URL of every SockJS transport, /stomp and sockjs-client: logged as [redacted]', async () => {
    const tokens: string[] = [];
    for (const transport of SOCKJS) {
      const token = tokenFor(service, `user-${transport}`);
      tokens.push(token);
      const client = await openSockJs(service.url, transport, { query: `?access_token=${token}` });
      await client.connect(undefined);
      await client.sendWithReceipt('SUBSCRIBE', { id: 's', destination: '/topic/t' });
      client.send('DISCONNECT', { receipt: 'bye' });
      await client.waitForClose(8000);
      client.close();
    }
    const stompToken = tokenFor(service, 'stomp-user');
    tokens.push(stompToken);
    const stomp = await openWebSocket(service, { path: `/stomp?access_token=${stompToken}` });
    await stomp.connect(undefined);
    stomp.close();
    for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling'] as const) {
      const token = tokenFor(service, `lib-${transport}`);
      tokens.push(token);
      const client = await connectStomp(service, 'x', {
        transport: 'sockjs',
        sockjsTransports: [transport],
        query: `?access_token=${token}`,
        connectHeaders: {},
      });
      await client.close();
    }
    // A refused token and requests sockjs answers with an error, URLs and all.
    const bad = `${tokenFor(service, 'bad')}x`;
    tokens.push(bad);
    const refused = await openSockJs(service.url, 'xhr-streaming', { query: `?access_token=${bad}` });
    await refused.connect(undefined).catch(() => undefined);
    refused.close();
    for (const path of ['/ws/000/abc/jsonp', '/ws/000/abc/htmlfile', '/ws/000/abc/websocket', '/ws/info']) {
      await fetch(`${service.url}${path}?access_token=${bad}`);
    }

    for (const token of tokens) expectNotLogged(token);
    // Not vacuous: sockjs did log those URLs, redacted.
    expect(capture.lines.filter((l) => l.includes('access_token=[redacted]')).length).to.be.at.least(10);
  });

  it("sockjs's error lines (an exception in a request, logged with the request's URL) are redacted too", () => {
    const token = tokenFor(service, 'err');
    const log = sockjsLog(capture.logger);
    log(
      'error',
      `Exception on "POST http://h/ws/000/abc/xhr_send?x=1&access_token=${token}" in filter "xhr_send":\nTypeError: boom`,
    );
    log('info', `POST /ws/000/abc/xhr_send?access_token=${token}&t=1 1ms 204`);
    log('debug', `token=${token} passcode=${token}`);
    expectNotLogged(token);
    const last = capture.entries().slice(-3);
    expect(last.map((e) => e.level)).to.deep.equal([50, 20, 20]);
    expect(String(last[0]!.msg)).to.include('access_token=[redacted]" in filter');
  });
});
