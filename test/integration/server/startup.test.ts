/**
 * A start that fails at any step leaves nothing open: no socket listening, no connection to
 * RabbitMQ (AMQP or STOMP), as `ss` shows for this process. Each case fails at a different part of
 * the start-up list (app/server.ts), with a real RabbitMQ relay behind it where there is one.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Settings } from '../../../config/settings';
import type { Broker } from '../../../app/broker/broker';
import { createBroker } from '../../../app/broker/create-broker';
import { EmbeddedBroker } from '../../../app/broker/embedded';
import { silentLogger } from '../../../app/observability/logger';
import { Metrics } from '../../../app/observability/metrics';
import { startService, type RunningService, type ServiceOptions } from '../../../app/server';
import { ownConnectionsTo, STOMP_URL } from '../../support/rabbitmq';
import { testSettings } from '../../support/service';
import { waitFor } from '../../support/wait';

/** TCP ports this process listens on, from `ss`. */
function ownListeningPorts(): number[] {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return (
    out
      .split('\n')
      .filter((line) => line.includes(`pid=${process.pid},`))
      // State, Recv-Q, Send-Q, then the local address:port.
      .map((line) => Number(line.trim().split(/\s+/)[3].split(':').pop()))
      .sort((a, b) => a - b)
  );
}

function rabbitConnections(): number {
  return ownConnectionsTo(5672) + ownConnectionsTo(61613);
}

async function listenOnFreePort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : 0 };
}

/** The start's failure; fails the test if the start succeeded. */
async function failedStart(options: ServiceOptions): Promise<Error> {
  let running: RunningService;
  try {
    running = await startService(options);
  } catch (err: unknown) {
    if (err instanceof Error) return err;
    throw err;
  }
  await running.stop();
  return expect.fail('the service started');
}

/** The broker the settings select, started for real, whose start then fails (a half start). */
function failingAfterStart(settings: Settings): Broker {
  const broker = createBroker(settings, silentLogger, new Metrics({ defaultMetrics: false }));
  return new Proxy(broker, {
    get(target, property) {
      if (property === 'start') {
        return async () => {
          await target.start();
          throw new Error('broker start failed after connecting');
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('service start-up failures release what started', () => {
  let dir: string;
  let listening: number[];
  let blocker: { server: Server; port: number } | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stomp-relay-startup-'));
    await waitFor(() => rabbitConnections() === 0, 5000, 'no RabbitMQ connections before the test');
    listening = ownListeningPorts();
  });
  afterEach(() => {
    blocker?.server.close();
    blocker = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectNothingLeftOpen(): Promise<void> {
    await waitFor(() => rabbitConnections() === 0, 5000, 'the RabbitMQ connections to close');
    const expected = [...listening, ...(blocker ? [blocker.port] : [])].sort((a, b) => a - b);
    expect(ownListeningPorts(), 'ports listening after the failed start').to.deep.equal(expected);
  }

  it('a bad AUTHORIZATION_FILE: one error naming it, no broker connection opened', async () => {
    const file = join(dir, 'authorization.json');
    writeFileSync(file, '{"subscribe": [ nope');
    const err = await failedStart({
      settings: testSettings({ brokerUrl: STOMP_URL, authorizationFile: file, stompTcpPort: 0 }),
    });
    expect(err.message).to.include('AUTHORIZATION_FILE');
    await expectNothingLeftOpen();
  });

  it('a bad BACKENDS_FILE: one error naming it, nothing left open', async () => {
    const file = join(dir, 'backends.json');
    writeFileSync(file, '{"services": "everyone"}');
    const err = await failedStart({
      settings: testSettings({ brokerUrl: STOMP_URL, backendsFile: file, stompTcpPort: 0 }),
    });
    expect(err.message).to.include('BACKENDS_FILE');
    await expectNothingLeftOpen();
  });

  it('the HTTP port in use: the relay (and its backend bridge) is stopped again', async () => {
    blocker = await listenOnFreePort();
    const err = await failedStart({
      settings: testSettings({ brokerUrl: STOMP_URL, port: blocker.port, stompTcpPort: 0 }),
    });
    expect(err.message).to.include('EADDRINUSE');
    await expectNothingLeftOpen();
  });

  it('the STOMP TCP port in use: the HTTP listener is closed too', async () => {
    blocker = await listenOnFreePort();
    const err = await failedStart({
      settings: testSettings({ brokerUrl: STOMP_URL, stompTcpPort: blocker.port }),
    });
    expect(err.message).to.include('EADDRINUSE');
    await expectNothingLeftOpen();
  });

  it('a broker that fails part-way through its start is stopped, its connections closed', async () => {
    const settings = testSettings({ brokerUrl: STOMP_URL, stompTcpPort: 0 });
    const err = await failedStart({ settings, broker: failingAfterStart(settings) });
    expect(err.message).to.equal('broker start failed after connecting');
    await expectNothingLeftOpen();
  });

  it('an embedded broker is stopped when the port is in use', async () => {
    blocker = await listenOnFreePort();
    const broker = new EmbeddedBroker({ instanceId: 'startup-test' });
    const err = await failedStart({ settings: testSettings({ port: blocker.port }), broker });
    expect(err.message).to.include('EADDRINUSE');
    expect(broker.readiness().ready, 'broker stopped after the failed start').to.equal(false);
    await expectNothingLeftOpen();
  });
});
