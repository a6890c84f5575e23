/**
 * The SIGTERM path (`service.drain()`): every connected client, on every transport, gets an ERROR
 * whose message says the instance is draining, then the close, so it reconnects elsewhere; and
 * nothing new is accepted.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { connectRaw, openTcp, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';
import { StompClients } from '../../support/stomp-clients';
import { waitFor } from '../../support/wait';

describe('session: drain (SIGTERM)', () => {
  let service: RunningService;
  const raw = new RawClients();
  const stomp = new StompClients();

  beforeEach(async () => {
    service = await startTestService({ stompTcpPort: 0, shutdownTimeoutMs: 2000 });
  });
  afterEach(async () => {
    raw.closeAll();
    await stomp.closeAll();
    await service.stop();
  });

  it('every client gets an ERROR saying the instance is draining, then the close', async () => {
    const ws = raw.add(await connectRaw(service, 'alice'));
    const tcp = raw.add(await connectRaw(service, 'bob', { transport: 'tcp' }));
    const sockjs = await stomp.connect(service, 'carol', {
      transport: 'sockjs',
      sockjsTransports: ['xhr-streaming'],
    });
    const stompjs = await stomp.connect(service, 'dave');

    await service.drain();

    for (const client of [ws, tcp]) {
      const error = await client.expectErrorAndClose();
      expect(header(error, 'message')).to.match(/is draining/);
      expect(header(error, 'message')).to.include(service.settings.instanceId);
    }
    for (const client of [sockjs, stompjs]) {
      await waitFor(
        () => client.errors.length > 0 && client.isClosed(),
        3000,
        `${client.transport} ERROR and close`,
      );
      expect(client.errors[0].headers.message).to.match(/is draining/);
    }
    expect(service.registry.size).to.equal(0);
  });

  it('after drain, a new TCP connection is closed without a session, and a new CONNECT is never accepted', async () => {
    await service.drain();
    const late = raw.add(await openTcp(service));
    late.send('CONNECT', { 'accept-version': '1.2', host: 'h', passcode: tokenFor(service, 'alice') });
    await late.waitForClose();
    expect(late.all('CONNECTED')).to.have.length(0);
    expect(service.registry.size).to.equal(0);
  });

  it('a connection opened before the drain that CONNECTs after it gets ERROR draining', async () => {
    const early = raw.add(await openTcp(service));
    await service.drain();
    early.send('CONNECT', { 'accept-version': '1.2', host: 'h', passcode: tokenFor(service, 'alice') });
    const error = await early.expectErrorAndClose();
    expect(header(error, 'message')).to.match(/draining: connect to another instance/);
  });
});
