/**
 * The start-up and stop lines an operator reads: the listening line names the address actually
 * bound and the instance once; a stop the operator asked for does not log the broker going down as
 * a warning, while a broker lost on its own still does.
 */
import { expect } from 'chai';
import pino from 'pino';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { startService } from '../../../app/server';
import { startInstances } from '../../support/instances';
import { testSettings } from '../../support/service';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A logger shaped like createLogger()'s (the instance in `base`), writing into an array. */
function capturingLogger(instanceId: string): { logger: pino.Logger; raw: string[]; lines(): LogLine[] } {
  const raw: string[] = [];
  const logger = pino(
    { level: 'info', base: { instance: instanceId } },
    { write: (s: string) => raw.push(s) },
  );
  return { logger, raw, lines: () => raw.map((line) => JSON.parse(line) as LogLine) };
}

const INFO = 30;
const WARN = 40;

describe('start-up and stop log lines', () => {
  for (const host of ['127.0.0.1', '0.0.0.0']) {
    it(`the listening line names the bound address (${host}) and the instance once`, async () => {
      const settings = testSettings({ host });
      const log = capturingLogger(settings.instanceId);
      const service = await startService({ settings, logger: log.logger });
      try {
        const index = log.lines().findIndex((l) => l.msg.startsWith('listening on'));
        expect(index).to.be.at.least(0);
        expect(log.lines()[index].msg).to.equal(`listening on http://${host}:${service.port}`);
        expect(log.raw[index].match(/"instance":/g)).to.have.length(1);
      } finally {
        await service.stop();
      }
    });
  }

  it('a requested stop logs "broker connection down" at info; a broker lost on its own at warn', async () => {
    const settings = testSettings();
    const stopped = capturingLogger(settings.instanceId);
    const service = await startService({ settings, logger: stopped.logger });
    await service.stop();
    const down = stopped.lines().filter((l) => l.msg === 'broker connection down');
    expect(down.map((l) => l.level)).to.deep.equal([INFO]);
    expect(stopped.lines().filter((l) => l.level >= WARN && l.msg.startsWith('broker'))).to.deep.equal([]);

    const lostSettings = testSettings();
    const lost = capturingLogger(lostSettings.instanceId);
    const broker = new EmbeddedBroker({ instanceId: lostSettings.instanceId });
    const other = await startService({ settings: lostSettings, logger: lost.logger, broker });
    try {
      await broker.stop(); // not asked for by the service
      expect(
        lost
          .lines()
          .filter((l) => l.msg === 'broker connection down')
          .map((l) => l.level),
      ).to.deep.equal([WARN]);
    } finally {
      await other.stop();
    }
  });

  it('an instance on RabbitMQ stopped with SIGTERM: listening line as bound, broker down at info, exit 0', async function () {
    this.timeout(60_000);
    const [instance] = await startInstances(1);
    const status = await instance.stop();
    expect(status).to.deep.equal({ code: 0, signal: null });
    const lines = instance
      .logs()
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
    const listening = lines.find((l) => l.msg.startsWith('listening on'));
    expect(listening?.msg).to.equal(`listening on http://127.0.0.1:${instance.port}`);
    const raw = instance.logs().find((line) => line.includes('listening on'));
    expect(raw?.match(/"instance":/g)).to.have.length(1);
    const down = lines.filter((l) => l.msg === 'broker connection down');
    expect(down.map((l) => l.level)).to.deep.equal([INFO]);
  });
});
