/**
 * Raw broker destinations (issue 16.7): how they are spelled, what no spelling reaches, and that only
 * a rule written with the raw prefix allows one (per user, per scope, or both).
 */
import { expect } from 'chai';
import { Authorizer } from '../../../app/destinations/authorization';
import { parseRawDestination } from '../../../app/destinations/raw-destination';
import { ServiceError } from '../../../app/errors';

describe('raw broker destinations', () => {
  it('reads /amq/queue/<queue> and /exchange/<exchange>[/<key>]', () => {
    expect(parseRawDestination('/amq/queue/orders.in', true)).to.deep.equal({
      kind: 'amq-queue',
      queue: 'orders.in',
    });
    expect(parseRawDestination('/exchange/events', false)).to.deep.equal({
      kind: 'exchange',
      exchange: 'events',
      key: '',
    });
    expect(parseRawDestination('/exchange/events/eu.*.created.#', true)).to.deep.include({
      key: 'eu.*.created.#',
    });
  });

  const refused: [string, boolean, RegExp][] = [
    ['/amq/queue/stomp-relay.i1.users', true, /service's own/],
    ['/amq/queue/STOMP-RELAY.queue.x', true, /service's own/],
    ['/exchange/stomp-relay.user/bob', true, /service's own/],
    ['/exchange/stomp-relay', false, /service's own/],
    ['/amq/queue/amq.gen-123', true, /RabbitMQ's own/],
    ['/amq/queue/', true, /names use/],
    ['/amq/queue/a/b', true, /names use/],
    ['/amq/queue/a..b', true, /names use/],
    ['/exchange/', false, /names use/],
    ['/exchange/events/', false, /empty/],
    ['/exchange/events/a.#', false, /no wildcards/],
    ['/exchange/events/a#', true, /binding patterns/],
    ['/exchange/events/a/b', true, /binding patterns/],
    ['/exchange/ev%2Fents/x', false, /names use/],
  ];
  for (const [destination, subscribe, why] of refused) {
    it(`refuses ${destination} (${subscribe ? 'SUBSCRIBE' : 'SEND'}) naming it`, () => {
      try {
        parseRawDestination(destination, subscribe);
        expect.fail('accepted');
      } catch (err: unknown) {
        expect(err).to.be.instanceOf(ServiceError);
        expect((err as ServiceError).message)
          .to.include(`'${destination}'`)
          .and.match(why);
      }
    });
  }

  it('is allowed only by a rule spelled with its prefix: /** and the defaults never open one', () => {
    const open = new Authorizer({
      subscribe: [{ destination: '/**', users: '*' }],
      send: [{ destination: '/**', users: '*' }],
    });
    expect(open.canSubscribe('alice', '/topic/x')).to.equal(true);
    expect(open.canSubscribe('alice', '/amq/queue/orders')).to.equal(false);
    expect(open.canSend('alice', '/exchange/events/x')).to.equal(false);
  });

  it('per user, per scope, or both', () => {
    const rules = new Authorizer({
      subscribe: [
        { destination: '/amq/queue/audit.**', users: ['auditor'] },
        { destination: '/amq/queue/orders.*', scopes: ['orders'] },
        { destination: '/exchange/events/**', users: ['svc'], scopes: ['events'] },
      ],
      send: [],
    });
    expect(rules.canSubscribe('auditor', '/amq/queue/audit.log')).to.equal(true);
    expect(rules.canSubscribe('alice', '/amq/queue/audit.log')).to.equal(false);
    expect(rules.canSubscribe({ user: 'alice', scopes: ['orders'] }, '/amq/queue/orders.in')).to.equal(true);
    expect(rules.canSubscribe({ user: 'alice', scopes: ['push'] }, '/amq/queue/orders.in')).to.equal(false);
    expect(rules.canSubscribe({ user: 'svc', scopes: ['events'] }, '/exchange/events/a')).to.equal(true);
    expect(rules.canSubscribe({ user: 'svc', scopes: [] }, '/exchange/events/a')).to.equal(false);
    expect(rules.canSubscribe({ user: 'bob', scopes: ['events'] }, '/exchange/events/a')).to.equal(false);
  });

  it('refuses a rule with neither users nor scopes, or an empty scope list, naming it', () => {
    const bad =
      (rule: object): (() => Authorizer) =>
      () =>
        new Authorizer({ subscribe: [rule as never], send: [] }, 'auth.json');
    expect(bad({ destination: '/amq/queue/x' })).to.throw(/auth.json: subscribe\[0\].users/);
    expect(bad({ destination: '/amq/queue/x', scopes: [] })).to.throw(/subscribe\[0\].scopes/);
  });
});
