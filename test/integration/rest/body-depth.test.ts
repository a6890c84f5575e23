/**
 * A JSON `body` nested deeper than JSON.stringify's stack allows: over real HTTP, the push answers
 * 400 with a reason, nothing is logged at error level, and the instance keeps serving. Up to the
 * bound, a nested body is delivered as sent.
 */
import { expect } from 'chai';
import pino from 'pino';
import { startService } from '../../../app/server';
import { MAX_JSON_DEPTH } from '../../../app/rest/json-depth';
import { testSettings, tokenFor, type RunningService } from '../../support/service';
import { waitFor } from '../../support/wait';
import { record } from './harness';

const nested = (depth: number): string => `${'['.repeat(depth)}"x"${']'.repeat(depth)}`;

describe('REST push: deeply nested JSON bodies', () => {
  let service: RunningService;
  const lines: { level: number; msg: string }[] = [];

  before(async () => {
    const settings = testSettings({ logLevel: 'debug' });
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    service = await startService({ settings, logger });
  });
  after(async () => {
    await service.stop();
  });

  async function push(
    path: string,
    body: string,
    destination = '/topic/deep',
  ): Promise<{ status: number; json: unknown }> {
    const answer = await fetch(`${service.url}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tokenFor(service, 'backend', 'push')}`,
        'content-type': 'application/json',
      },
      body: `{"destination":"${destination}","body":${body}}`,
    });
    return { status: answer.status, json: await answer.json() };
  }

  it('answers 400 with a reason for a body nested thousands deep, and logs no error', async () => {
    const logged = lines.length;
    for (const depth of [5_000, 30_000]) {
      const answer = await push('/api/messages', nested(depth));
      expect(answer.status, `depth ${depth}`).to.equal(400);
      expect(answer.json).to.deep.equal({
        error: 'bad_request',
        detail: `body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`,
      });
    }
    const user = await push('/api/users/alice/messages', nested(5_000), '/queue/greetings');
    expect(user.status).to.equal(400);
    expect(user.json)
      .to.have.property('detail')
      .that.matches(/deeper than/);
    const errors = lines.slice(logged).filter((l) => l.level >= 50);
    expect(errors, 'error-level log lines').to.deep.equal([]);
  });

  it('delivers a body nested up to the bound as sent, and refuses one level more', async () => {
    const { deliveries } = await record(service.broker, 'alice', { kind: 'topic', name: 'deep' });
    const deepest = nested(MAX_JSON_DEPTH);
    expect((await push('/api/messages', deepest)).status).to.equal(202);
    await waitFor(() => deliveries.length === 1, 2000, 'the nested body');
    expect(deliveries[0].body.toString()).to.equal(deepest);
    const objects = `${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${'}'.repeat(MAX_JSON_DEPTH + 1)}`;
    expect((await push('/api/messages', objects)).status).to.equal(400);
  });
});
