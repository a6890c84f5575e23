/**
 * The subscription table: what a client's ACK/NACK may settle. A client quotes back a token this
 * session minted (1.2) or a message-id (1.0/1.1); what it resolves to decides which broker delivery
 * is acknowledged, so these are the rules a client relies on: its own deliveries only, `client`
 * mode cumulative within one subscription, `client-individual` one at a time, a transactional ACK
 * settled only at COMMIT, and nothing left pending for a subscription that is gone.
 */
import { expect } from 'chai';
import type { AckMode } from '../../../app/broker/broker';
import { SubscriptionTable, type ClientSubscription } from '../../../app/session/subscriptions';

function subscription(id: string, ackMode: AckMode): ClientSubscription {
  return { id, destination: `/queue/${id}`, target: { kind: 'queue', name: id }, ackMode, closed: false };
}

/** A table holding `subs`, and a delivery minter: `deliver(sub, n)` mints token for broker ack `sub#n`. */
function table(...subs: ClientSubscription[]) {
  const t = new SubscriptionTable();
  for (const s of subs) t.add(s);
  const deliver = (sub: ClientSubscription, n: number): string =>
    t.mintAck(sub, `${sub.id}#${n}`, `m-${sub.id}-${n}`);
  return { t, deliver };
}

describe('SubscriptionTable', function () {
  it('holds subscriptions by id, in the order they were added, and forgets removed ones', function () {
    const a = subscription('a', 'auto');
    const b = subscription('b', 'client');
    const { t } = table(a, b);
    expect(t.size).to.equal(2);
    expect(t.get('a')).to.equal(a);
    expect(t.all().map((s) => s.id)).to.deep.equal(['a', 'b']);

    expect(t.remove('a')).to.equal(a);
    expect(a.closed, 'a removed subscription is marked closed for deliveries still on their way').to.equal(
      true,
    );
    expect(t.get('a')).to.equal(undefined);
    expect(t.size).to.equal(1);
    expect(t.remove('a'), 'removing twice').to.equal(undefined);
    expect(t.remove('nope')).to.equal(undefined);
    expect(b.closed).to.equal(false);
  });

  it('mints a distinct token per delivery that resolves to that delivery and subscription', function () {
    const a = subscription('a', 'client-individual');
    const { t, deliver } = table(a);
    const tokens = [deliver(a, 1), deliver(a, 2), deliver(a, 3)];
    expect(new Set(tokens).size).to.equal(3);
    const target = t.resolveToken(tokens[1]!);
    expect(target?.subscription).to.equal(a);
    expect(target?.brokerAckId).to.equal('a#2');
    expect(target?.token).to.equal(tokens[1]);
  });

  it("resolves no token another session's table minted, nor one made up", function () {
    const mine = table(subscription('s', 'client-individual'));
    const theirs = table(subscription('s', 'client-individual'));
    const theirToken = theirs.deliver(theirs.t.get('s')!, 1);
    // Same subscription id, same broker ack id: still nothing of theirs is reachable from here.
    expect(mine.t.resolveToken(theirToken)).to.equal(undefined);
    expect(mine.t.resolveToken('s:1')).to.equal(undefined);
    expect(mine.t.resolveToken('')).to.equal(undefined);
    expect(theirs.t.resolveToken(theirToken)?.brokerAckId).to.equal('s#1');
  });

  it('client-individual: an ACK settles that delivery only, and only once', function () {
    const a = subscription('a', 'client-individual');
    const { t, deliver } = table(a);
    const [one, two, three] = [deliver(a, 1), deliver(a, 2), deliver(a, 3)];
    expect(t.resolveToken(two)?.brokerAckId).to.equal('a#2');
    expect(t.resolveToken(two), 'the same ACK again').to.equal(undefined);
    expect(t.resolveToken(one)?.brokerAckId).to.equal('a#1');
    expect(t.resolveToken(three)?.brokerAckId).to.equal('a#3');
  });

  it('client: an ACK settles every earlier delivery of its subscription, not later ones nor other subscriptions', function () {
    const a = subscription('a', 'client');
    const b = subscription('b', 'client');
    const { t, deliver } = table(a, b);
    const a1 = deliver(a, 1);
    const b1 = deliver(b, 1);
    const a2 = deliver(a, 2);
    const a3 = deliver(a, 3);
    const a4 = deliver(a, 4);

    expect(t.resolveToken(a3)?.brokerAckId, 'the broker is told the newest one: it acks the rest').to.equal(
      'a#3',
    );
    for (const covered of [a1, a2, a3]) expect(t.resolveToken(covered), covered).to.equal(undefined);
    expect(t.resolveToken(b1)?.brokerAckId, "another subscription's delivery stays pending").to.equal('b#1');
    expect(t.resolveToken(a4)?.brokerAckId, 'a later delivery stays pending').to.equal('a#4');
  });

  it('1.0/1.1: resolves by message-id, narrowed to the subscription when the ACK names one', function () {
    const a = subscription('a', 'client-individual');
    const b = subscription('b', 'client-individual');
    const t = new SubscriptionTable();
    t.add(a);
    t.add(b);
    // The same message reached two subscriptions of the session (a topic subscribed twice).
    t.mintAck(a, 'a#1', 'shared');
    t.mintAck(b, 'b#1', 'shared');

    expect(t.resolveMessageId('shared', 'c')).to.equal(undefined);
    expect(t.resolveMessageId('other', undefined)).to.equal(undefined);
    expect(t.resolveMessageId('shared', 'b')?.brokerAckId).to.equal('b#1');
    expect(t.resolveMessageId('shared', 'b'), 'already settled').to.equal(undefined);
    // 1.0 names no subscription: the oldest pending delivery with that message-id.
    expect(t.resolveMessageId('shared', undefined)?.brokerAckId).to.equal('a#1');
    expect(t.resolveMessageId('shared', undefined)).to.equal(undefined);
  });

  it('a transactional ACK (settle false) stays pending until settleToken, cumulatively in client mode', function () {
    const a = subscription('a', 'client');
    const { t, deliver } = table(a);
    const [one, two, three] = [deliver(a, 1), deliver(a, 2), deliver(a, 3)];

    expect(t.resolveToken(two, false)?.brokerAckId).to.equal('a#2');
    // Not settled yet: after an ABORT the client can still acknowledge both.
    expect(t.resolveToken(one, false)?.brokerAckId).to.equal('a#1');
    expect(t.resolveToken(two, false)?.brokerAckId).to.equal('a#2');

    t.settleToken(two); // COMMIT
    expect(t.resolveToken(one)).to.equal(undefined);
    expect(t.resolveToken(two)).to.equal(undefined);
    expect(t.resolveToken(three)?.brokerAckId).to.equal('a#3');
    t.settleToken(two); // settling again is harmless
    t.settleToken('unknown');
  });

  it('the same for 1.0/1.1 message-ids: not settled until settleToken with the token it returned', function () {
    const a = subscription('a', 'client-individual');
    const { t, deliver } = table(a);
    deliver(a, 1);
    const target = t.resolveMessageId('m-a-1', 'a', false);
    expect(target?.brokerAckId).to.equal('a#1');
    expect(t.resolveMessageId('m-a-1', 'a', false)?.token).to.equal(target?.token);
    t.settleToken(target!.token);
    expect(t.resolveMessageId('m-a-1', 'a')).to.equal(undefined);
  });

  it('removing a subscription drops its pending deliveries and keeps the others', function () {
    const a = subscription('a', 'client-individual');
    const b = subscription('b', 'client-individual');
    const { t, deliver } = table(a, b);
    const a1 = deliver(a, 1);
    const b1 = deliver(b, 1);
    t.remove('a');
    expect(t.resolveToken(a1)).to.equal(undefined);
    expect(t.resolveMessageId('m-a-1', undefined)).to.equal(undefined);
    // A new subscription reusing the id does not inherit the old one's deliveries.
    t.add(subscription('a', 'client-individual'));
    expect(t.resolveToken(a1)).to.equal(undefined);
    expect(t.resolveToken(b1)?.brokerAckId).to.equal('b#1');
  });
});
