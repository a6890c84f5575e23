/**
 * One Authorization header, one verdict: REST (passport-jwt) and STOMP CONNECT read a bearer
 * header with the same parser, so each spelling below is accepted by both or refused by both.
 */
import { expect } from 'chai';
import { header } from '../../../app/stomp/frame';
import { openWebSocket, RawClients } from '../../support/raw-stomp';
import { startTestService, tokenFor, type RunningService } from '../../support/service';

describe('Authorization: Bearer, on REST and STOMP alike', () => {
  let service: RunningService;
  const raw = new RawClients();
  before(async () => {
    service = await startTestService();
  });
  afterEach(() => raw.closeAll());
  after(async () => {
    await service.stop();
  });

  async function rest(authorization: string): Promise<string> {
    const answer = await fetch(`${service.url}/api/messages`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json' },
      body: JSON.stringify({ destination: '/topic/bearer', body: 'x' }),
    });
    const body = (await answer.json()) as { detail?: string };
    return answer.status === 202 ? 'accepted' : `${answer.status} ${body.detail ?? ''}`;
  }

  async function stomp(authorization: string): Promise<string> {
    const client = raw.add(await openWebSocket(service));
    client.send('CONNECT', { 'accept-version': '1.2', host: 'h', Authorization: authorization });
    const answer = await client.waitForFrame((f) => f.command === 'CONNECTED' || f.command === 'ERROR');
    return answer.command === 'CONNECTED' ? 'accepted' : `ERROR ${header(answer, 'message') ?? ''}`;
  }

  const spellings = (jwt: string): { value: string; accepted: boolean }[] => [
    { value: `Bearer ${jwt}`, accepted: true },
    { value: `bearer ${jwt}`, accepted: true },
    { value: `Bearer  ${jwt}`, accepted: true },
    { value: `Bearer ${jwt} junk`, accepted: false },
    { value: `Bearer ${jwt} ${jwt}`, accepted: false },
    { value: `Bearer ${jwt},Bearer ${jwt}`, accepted: false },
    { value: `JWT ${jwt}`, accepted: false },
    { value: jwt, accepted: false },
  ];

  for (const [i, { accepted }] of spellings('<jwt>').entries()) {
    const shown = spellings('<jwt>')[i].value;
    it(`${accepted ? 'accepts' : 'refuses'} "${shown}" on both`, async () => {
      const { value } = spellings(tokenFor(service, 'backend', 'push'))[i];
      const [overRest, overStomp] = [await rest(value), await stomp(value)];
      if (accepted) {
        expect({ overRest, overStomp }).to.deep.equal({ overRest: 'accepted', overStomp: 'accepted' });
      } else {
        expect(overRest).to.match(/^401 the Authorization header is not a bearer token/);
        expect(overStomp).to.match(/^ERROR the Authorization header is not a bearer token/);
      }
    });
  }
});
