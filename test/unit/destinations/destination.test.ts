import { expect } from 'chai';
import { parseDestination, parseUserPushDestination } from '../../../app/destinations/destination';
import { Authorizer } from '../../../app/destinations/authorization';
import { ServiceError } from '../../../app/errors';

describe('destinations', () => {
  it('understands the spec table', () => {
    expect(parseDestination('/topic/prices', 'alice')).to.deep.equal({ kind: 'topic', name: 'prices' });
    expect(parseDestination('/queue/jobs', 'alice')).to.deep.equal({ kind: 'queue', name: 'jobs' });
    expect(parseDestination('/user/queue/greetings', 'alice')).to.deep.equal({
      kind: 'user',
      user: 'alice',
      type: 'queue',
      name: 'greetings',
    });
    expect(parseDestination('/app/chat/room1', 'alice')).to.deep.equal({ kind: 'app', route: 'chat/room1' });
  });

  const refused = [
    '/exchange/amq.topic/x',
    '/amq/queue/stomp-relay.x',
    '/temp-queue/x',
    '/reply-queue/x',
    '/user/bob/queue/greetings',
    '/user/queue/../bob',
    '/topic/*',
    '/topic/a.#',
    '/topic/a..b',
    '/topic/.a',
    '/queue/%2e%2e',
    '/topic/a/b',
    '/topic/',
    'topic/x',
    '/foo/bar',
    '/topic/caf\u00e9',
    '/topic/a\nb',
    '',
  ];
  for (const d of refused) {
    it(`refuses ${JSON.stringify(d)} naming the destination`, () => {
      try {
        parseDestination(d, 'alice');
        expect.fail('accepted');
      } catch (err: unknown) {
        expect(err).to.be.instanceOf(ServiceError);
        expect((err as ServiceError).code).to.equal('bad_destination');
        expect((err as ServiceError).message).to.include('destination');
      }
    });
  }

  it('makes every user push target the named user, whatever the spelling', () => {
    expect(parseUserPushDestination('/queue/greetings', 'bob')).to.deep.equal({
      kind: 'user',
      user: 'bob',
      type: 'queue',
      name: 'greetings',
    });
    expect(parseUserPushDestination('/user/queue/greetings', 'bob')).to.deep.include({ user: 'bob' });
    expect(() => parseUserPushDestination('/app/x', 'bob')).to.throw(ServiceError);
  });

  it('names a refused user push destination as the caller wrote it', () => {
    for (const [destination, why] of [
      ['greetings', '/queue/<name> or /topic/<name>'],
      ['/queue/a*', 'no wildcards'],
      ['/user/bob/queue/x', '/queue/<name> or /topic/<name>'],
      ['', '/queue/<name> or /topic/<name>'],
    ] as const) {
      expect(() => parseUserPushDestination(destination, 'bob'), destination)
        .to.throw(ServiceError, `destination '${destination}' is not allowed`)
        .with.property('message')
        .that.includes(why);
    }
  });
});

describe('authorization rules', () => {
  const authz = new Authorizer({
    subscribe: [
      { destination: '/topic/admin.**', users: ['root'] },
      { destination: '/topic/admin.**', users: '*', allow: false },
      { destination: '/topic/**', users: '*' },
      { destination: '/queue/jobs.{user}', users: '*' },
      { destination: '/user/**', users: '*' },
    ],
    send: [
      { destination: '/app/**', users: '*' },
      { destination: '/topic/news.*', users: ['editor'] },
    ],
  });

  it('lets the first matching rule decide, refusing when none matches', () => {
    expect(authz.canSubscribe('alice', '/topic/prices')).to.equal(true);
    expect(authz.canSubscribe('alice', '/topic/admin.logs')).to.equal(false);
    expect(authz.canSubscribe('root', '/topic/admin.logs')).to.equal(true);
    expect(authz.canSubscribe('alice', '/queue/other')).to.equal(false);
    expect(authz.canSend('alice', '/topic/prices')).to.equal(false);
  });

  it('matches {user} to the session user only, and * to one word', () => {
    expect(authz.canSubscribe('alice', '/queue/jobs.alice')).to.equal(true);
    expect(authz.canSubscribe('alice', '/queue/jobs.bob')).to.equal(false);
    expect(authz.canSubscribe('a.b', '/queue/jobs.a.b')).to.equal(true);
    expect(authz.canSubscribe('a', '/queue/jobs.a.b')).to.equal(false);
    expect(authz.canSend('editor', '/topic/news.sport')).to.equal(true);
    expect(authz.canSend('editor', '/topic/news.sport.live')).to.equal(false);
  });

  it('refuses malformed rule files with the rule named', () => {
    expect(() => new Authorizer({ subscribe: [{ destination: 'topic', users: '*' }], send: [] })).to.throw(
      /subscribe\[0\]\.destination/,
    );
  });
});
