import { expect } from 'chai';
import fc from 'fast-check';
import {
  EXCHANGES,
  EXCHANGE_DECLARATIONS,
  directoryQueueName,
  instanceQueueName,
  QUEUE_ROLES,
  userRoutingKey,
} from '../../../app/broker/rabbitmq/topology';

/** Keys are plain `[A-Za-z0-9_-]` and `%XX`, or `h.` + 64 hex digits: nothing else, ever. */
const KEY_SHAPE = /^(?:(?:[A-Za-z0-9_-]|%[0-9A-F]{2})*|h\.[0-9a-f]{64})$/;

describe('rabbitmq topology', () => {
  describe('userRoutingKey', () => {
    it('keeps letters, digits, _ and - as they are', () => {
      expect(userRoutingKey('alice')).to.equal('alice');
      expect(userRoutingKey('Bob_2-x')).to.equal('Bob_2-x');
    });

    it('percent-encodes everything else, byte by byte, upper-case hex', () => {
      expect(userRoutingKey('a.b')).to.equal('a%2Eb');
      expect(userRoutingKey('a%2Eb')).to.equal('a%252Eb');
      expect(userRoutingKey('*')).to.equal('%2A');
      expect(userRoutingKey('#')).to.equal('%23');
      expect(userRoutingKey('a b/c')).to.equal('a%20b%2Fc');
      expect(userRoutingKey('é')).to.equal('%C3%A9');
      expect(userRoutingKey('😀')).to.equal('%F0%9F%98%80');
      expect(userRoutingKey('')).to.equal('');
    });

    it('leaves no raw character a topic exchange or a queue name could read as structure', () => {
      for (const user of ['*', '#', 'a.*', '#.b', 'x.y.z', 'a..b', '%', '.', 'user@example.com']) {
        const key = userRoutingKey(user);
        expect(key, user).to.match(KEY_SHAPE);
        expect(key, user).not.to.match(/[.*#]/);
      }
    });

    it('gives different keys to tricky pairs', () => {
      const pairs: [string, string][] = [
        ['a.b', 'a%2Eb'],
        ['a.b', 'a_b'],
        ['a.b', 'a-b'],
        ['*', '%2A'],
        ['#', '%23'],
        ['a*', 'a#'],
        ['é', 'e\u0301'], // precomposed vs combining accent: different strings, different users
        ['\uD800', '\uDC00'], // lone surrogates must not both become U+FFFD
        ['\uD800', '\uFFFD'],
        ['ALICE', 'alice'],
        ['', '%'],
        ['x'.repeat(201), 'x'.repeat(202)],
      ];
      for (const [a, b] of pairs) expect(userRoutingKey(a), `${a} vs ${b}`).not.to.equal(userRoutingKey(b));
    });

    it('is injective on arbitrary strings, including lone surrogates', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
          fc.pre(a !== b);
          return userRoutingKey(a) !== userRoutingKey(b);
        }),
        { numRuns: 2000 },
      );
      // Pairs that share a long prefix are where a truncating or lossy scheme would fail.
      fc.assert(
        fc.property(fc.string({ unit: 'grapheme', maxLength: 8 }), fc.string({ unit: 'binary' }), (a, b) => {
          fc.pre(a !== b);
          const prefix = 'p'.repeat(195);
          return userRoutingKey(prefix + a) !== userRoutingKey(prefix + b);
        }),
      );
    });

    it('always has the documented shape and at most 200 bytes', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (user) => {
          const key = userRoutingKey(user);
          return KEY_SHAPE.test(key) && Buffer.byteLength(key) <= 200;
        }),
      );
    });

    it('hashes keys over 200 bytes into h.<sha256 hex>', () => {
      expect(userRoutingKey('a'.repeat(200))).to.equal('a'.repeat(200));
      const long = userRoutingKey('a'.repeat(201));
      expect(long).to.match(/^h\.[0-9a-f]{64}$/);
      expect(userRoutingKey('a'.repeat(201))).to.equal(long); // deterministic
      // 67 three-byte characters escape to 603 bytes: hashed, although the name is short in characters.
      expect(userRoutingKey('€'.repeat(67))).to.match(/^h\.[0-9a-f]{64}$/);
      expect(userRoutingKey('.'.repeat(66))).to.equal('%2E'.repeat(66)); // 198 bytes: still readable
    });
  });

  describe('queue and exchange names', () => {
    it('names the three instance queues stomp-relay.<instance>.<role>, whatever the users and topics', () => {
      expect(instanceQueueName('i-1', QUEUE_ROLES.users)).to.equal('stomp-relay.i-1.users');
      expect(instanceQueueName('i-1', QUEUE_ROLES.topics)).to.equal('stomp-relay.i-1.topics');
      expect(directoryQueueName('i-1')).to.equal('stomp-relay.i-1.directory');
      expect(Object.values(QUEUE_ROLES)).to.deep.equal(['directory', 'users', 'topics']);
    });

    it('keeps the longest instance queue name within 255 bytes', () => {
      const instance = 'i'.repeat(64); // the longest INSTANCE_ID allowed
      for (const role of Object.values(QUEUE_ROLES)) {
        expect(Buffer.byteLength(instanceQueueName(instance, role))).to.be.at.most(255);
      }
    });

    it('declares the three exchanges with the types their routing needs', () => {
      expect(EXCHANGES).to.deep.equal({
        user: 'stomp-relay.user',
        directory: 'stomp-relay.directory',
        app: 'stomp-relay.app',
      });
      expect(EXCHANGE_DECLARATIONS.user.type).to.equal('direct');
      expect(EXCHANGE_DECLARATIONS.directory.type).to.equal('fanout');
      expect(EXCHANGE_DECLARATIONS.app.type).to.equal('topic');
    });
  });
});
