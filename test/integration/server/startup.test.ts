import { expect } from 'chai';
import { createServer } from 'node:net';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { startService } from '../../../app/server';
import { testSettings } from '../../support/service';

describe('service start-up', () => {
  it('fails on a port in use and leaves no broker running behind it', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const broker = new EmbeddedBroker({ instanceId: 'startup-test' });
    try {
      let failure: unknown;
      await startService({ settings: testSettings({ port }), broker }).catch((err: unknown) => {
        failure = err;
      });
      expect(String(failure)).to.include('EADDRINUSE');
      expect(broker.readiness().ready, 'broker stopped after the failed start').to.equal(false);
    } finally {
      blocker.close();
    }
  });
});
