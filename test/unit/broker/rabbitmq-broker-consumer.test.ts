/**
 * BrokerConsumer.settle() on a pool slot whose connection dies while an ACK waits for its receipt:
 * RabbitMQ requeues the message, so the settle resolves (its tag voided) instead of failing the
 * client's session; on a connection that is still up, a refused ACK still fails.
 */
import { expect } from 'chai';

import { BrokerConsumer } from '../../../app/broker/rabbitmq/broker-consumer';
import type { PoolSlot } from '../../../app/broker/rabbitmq/connection-pool';
import { ServiceError } from '../../../app/errors';
import { frame } from '../../../app/stomp/frame';

/** The part of a PoolSlot a consumer uses; `send` decides what becomes of each frame. */
function fakeSlot(send: (slot: { generation: number; state: string }) => Promise<void>): PoolSlot {
  const slot = { generation: 1, state: 'up', send: (): Promise<void> => send(slot) };
  return slot as unknown as PoolSlot;
}

function consumerOn(slot: PoolSlot): BrokerConsumer {
  const consumer = new BrokerConsumer(slot, {
    destination: '/queue/stomp-relay.queue.jobs',
    headers: {},
    prefetch: 10,
    ownsQueue: false,
    parking: { destination: '/exchange/amq.direct/p', queueName: 'p' },
    onMessage: () => undefined,
  });
  consumer.onMessage(
    frame('MESSAGE', {
      subscription: consumer.id,
      'message-id': 'm1',
      ack: 'tag-1',
      destination: '/queue/x',
    }),
  );
  return consumer;
}

describe('rabbitmq BrokerConsumer settle', function () {
  it('resolves an ACK whose connection died before its receipt, and voids the tag', async () => {
    const slot = fakeSlot((s) => {
      // What the pool does when the socket goes: the slot is down before the receipt is rejected.
      s.state = 'down';
      return Promise.reject(new ServiceError('broker_unavailable', 'broker x: read ECONNRESET'));
    });
    const consumer = consumerOn(slot);
    expect(consumer.tagState('tag-1')).to.equal('outstanding');
    await consumer.settle(['tag-1'], 'ACK');
    expect(consumer.tagState('tag-1')).to.equal('voided');
  });

  it('still fails an ACK the broker refuses on a connection that stays up', async () => {
    const consumer = consumerOn(fakeSlot(() => Promise.reject(new ServiceError('bad_request', 'refused'))));
    let failed: unknown;
    await consumer.settle(['tag-1'], 'ACK').catch((err: unknown) => (failed = err));
    expect(failed).to.be.instanceOf(ServiceError);
    expect((failed as ServiceError).message).to.equal('refused');
  });
});
