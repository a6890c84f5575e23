/**
 * What a sender's headers look like to a real @stomp/stompjs subscriber: names that stompjs would
 * read as reserved ones (padded with whitespace, which stompjs trims) never reach it as those names,
 * on the embedded broker and through RabbitMQ; a CC header (which RabbitMQ routes by, and refuses as
 * a string by closing the connection) is stripped before it reaches the shared broker connection.
 */
import { expect } from 'chai';
import type { Settings } from '../../../config/settings';
import { openAuthorizationFile } from '../../support/authorization';
import { metricValue } from '../../support/metrics';
import { STOMP_URL } from '../../support/rabbitmq';
import { connectRaw, RawClients } from '../../support/raw-stomp';
import { startTestService, type RunningService } from '../../support/service';
import { StompClients } from '../../support/stomp-clients';

const brokers: [string, Partial<Settings>][] = [
  ['embedded broker', {}],
  ['RabbitMQ relay', { brokerUrl: STOMP_URL, brokerPoolSize: 1 }],
];

for (const [label, brokerSettings] of brokers) {
  describe(`session: reserved header names from a SEND (${label})`, () => {
    let service: RunningService;
    const raw = new RawClients();
    const stomp = new StompClients();

    before(async () => {
      service = await startTestService({ ...brokerSettings, authorizationFile: openAuthorizationFile() });
    });
    afterEach(async () => {
      raw.closeAll();
      await stomp.closeAll();
    });
    after(async () => {
      await service.stop();
    });

    it('padded names reach a stompjs subscriber neither as themselves nor trimmed', async () => {
      const subscriber = await stomp.connect(service, 'bob');
      const log = await subscriber.subscribe('/topic/forged.names');
      const sender = raw.add(await connectRaw(service, 'mallory'));
      sender.sendRaw(
        'SEND\ndestination:/topic/forged.names\nsender :admin\n user-name:admin\nredelivered\t:true\n' +
          '\u00a0message-id:forged\nsubscription\ufeff:forged\nx-trace:t-1\nreceipt:r-1\n\nhello\0',
      );
      await sender.waitForFrame('RECEIPT');
      await log.waitForCount(1);
      const { headers } = log.messages[0];
      expect(headers['sender'], 'sender').to.equal(undefined);
      expect(headers['user-name'], 'user-name').to.equal(undefined);
      expect(headers['redelivered'], 'redelivered').to.equal(undefined);
      expect(headers['message-id']).to.not.equal('forged');
      expect(headers['subscription']).to.not.equal('forged');
      expect(Object.keys(headers).filter((k) => k.trim() !== k)).to.deep.equal([]);
      expect(headers['x-trace']).to.equal('t-1');
      expect(log.messages[0].body).to.equal('hello');
    });

    it('a CC header is stripped: the message arrives, the broker connection stays, no copy elsewhere', async () => {
      const subscriber = await stomp.connect(service, 'bob');
      const target = await subscriber.subscribe('/topic/cc.target');
      const elsewhere = await subscriber.subscribe('/topic/cc.elsewhere');
      const reconnects = await metricValue(service.url, 'stomp_broker_reconnects_total');
      const sender = raw.add(await connectRaw(service, 'mallory'));
      for (const name of ['CC', 'bcc']) {
        await sender.sendWithReceipt(
          'SEND',
          { destination: '/topic/cc.target', [name]: 'cc.elsewhere' },
          name,
        );
      }
      await target.waitForCount(2);
      expect(target.bodies()).to.deep.equal(['CC', 'bcc']);
      expect(target.messages.map((m) => m.headers['CC'] ?? m.headers['bcc'])).to.deep.equal([
        undefined,
        undefined,
      ]);
      expect(sender.all('ERROR')).to.have.length(0);
      expect(service.broker.readiness().ready).to.equal(true);
      expect(await metricValue(service.url, 'stomp_broker_reconnects_total')).to.equal(reconnects);
      // The control: a message sent to the other topic does arrive there, after nothing else did.
      await sender.sendWithReceipt('SEND', { destination: '/topic/cc.elsewhere' }, 'direct');
      await elsewhere.waitForCount(1);
      expect(elsewhere.bodies()).to.deep.equal(['direct']);
    });
  });
}
