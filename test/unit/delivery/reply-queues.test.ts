/** Temp queues' registry (issue 16.4) without a backbone: what the embedded broker and each relay instance keep. */
import { expect } from 'chai';
import type { Delivery } from '../../../app/broker/broker';
import { LocalReplies, replyRoutingKey, TOKEN } from '../../../app/delivery/reply-queues';
import { Authorizer } from '../../../app/destinations/authorization';
import { userRoutingKey } from '../../../app/broker/rabbitmq/topology';

const message = (body: string): { id: string; headers: Record<string, string>; body: Buffer } => ({
  id: body,
  headers: { 'x-n': body },
  body: Buffer.from(body),
});

describe('temp queues (reply registry)', () => {
  it('a reply reaches the one temp queue of its token; after close it is dropped and counted', async () => {
    let dropped = 0;
    const replies = new LocalReplies(() => dropped++);
    const got: Delivery[] = [];
    const other: Delivery[] = [];
    const queue = await replies.open((d) => got.push(d));
    await replies.open((d) => other.push(d));
    expect(queue.token).to.match(TOKEN);
    expect(replyRoutingKey(queue.token)).to.equal(`r.${queue.token}`);
    expect(await replies.reply(queue.token, message('one'))).to.deep.equal({ delivered: true });
    expect(got.map((d) => d.body.toString())).to.deep.equal(['one']);
    expect(got[0].headers).to.deep.equal({ 'x-n': 'one' });
    expect(other).to.have.length(0);
    queue.close();
    queue.close();
    expect(await replies.reply(queue.token, message('late'))).to.deep.equal({ delivered: false });
    expect(dropped).to.equal(1);
    expect(replies.size).to.equal(1);
  });

  it('tokens are distinct and never a user key (which has no raw dot)', async () => {
    const replies = new LocalReplies(() => undefined);
    const tokens = new Set<string>();
    for (let i = 0; i < 100; i++) tokens.add((await replies.open(() => undefined)).token);
    expect(tokens.size).to.equal(100);
    for (const token of tokens) expect(token).to.match(TOKEN);
    // A user named like a reply key still gets an escaped key: `.` is never raw in one.
    expect(userRoutingKey(`r.${[...tokens][0]}`)).not.to.match(/^r\./);
  });

  it('/temp-queue/ and /reply-queue/ are decided only by rules spelled with those prefixes', () => {
    const open = new Authorizer({
      subscribe: [{ destination: '/**', users: '*' }],
      send: [{ destination: '/**', users: '*' }],
    });
    expect(open.canSubscribe('alice', '/temp-queue/x')).to.equal(false);
    expect(open.canSend('alice', '/reply-queue/abc')).to.equal(false);
    const rules = new Authorizer({
      subscribe: [{ destination: '/temp-queue/**', users: '*' }],
      send: [{ destination: '/reply-queue/**', users: ['svc'] }],
    });
    expect(rules.canSubscribe('alice', '/temp-queue/x')).to.equal(true);
    expect(rules.canSend('alice', '/reply-queue/abc')).to.equal(false);
    expect(rules.canSend('svc', '/reply-queue/abc')).to.equal(true);
  });
});
