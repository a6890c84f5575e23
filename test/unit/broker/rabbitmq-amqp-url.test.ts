import { expect } from 'chai';

import { amqpConnectionTarget, amqpLabel } from '../../../app/broker/rabbitmq/amqp-url';

function reason(value: string): string {
  try {
    amqpConnectionTarget(value);
  } catch (err: unknown) {
    return (err as Error).message;
  }
  throw new Error(`'${value}' was accepted`);
}

describe('rabbitmq AMQP_URL failover list', function () {
  it('passes one address through unchanged, with no host list', function () {
    expect(amqpConnectionTarget('amqp://u:p@rabbit:5673/%2F')).to.deep.equal({
      url: 'amqp://u:p@rabbit:5673/%2F',
    });
  });

  it('turns a list into the first URL (credentials, vhost) and every host:port in order', function () {
    expect(amqpConnectionTarget('amqp://u:p@r1:5701/v, amqp://u:p@r2:5702/v,amqp://u:p@r3/v')).to.deep.equal({
      url: 'amqp://u:p@r1:5701/v',
      hosts: ['r1:5701', 'r2:5702', 'r3:5672'],
    });
    expect(amqpConnectionTarget('amqps://u:p@r1,amqps://u:p@r2:6000').hosts).to.deep.equal([
      'r1:5671',
      'r2:6000',
    ]);
    // An empty path and '/' are both the default vhost.
    expect(amqpConnectionTarget('amqp://u:p@r1,amqp://u:p@r2/').hosts).to.have.length(2);
  });

  it('refuses a list whose entries differ in credentials, vhost or scheme, without showing passwords', function () {
    const why = reason('amqp://u:secret@r1/v,amqp://u:other@r2/v');
    expect(why).to.match(/differs from the first address in scheme, credentials or vhost/);
    expect(why).not.to.include('other');
    expect(reason('amqp://u:p@r1/a,amqp://u:p@r2/b')).to.match(/'amqp:\/\/\*\*\*@r2\/b' differs/);
    expect(reason('amqp://u:p@r1,amqps://u:p@r2')).to.match(/differs/);
  });

  it('refuses what is not an AMQP address, naming the entry', function () {
    expect(reason('')).to.match(/empty/);
    expect(reason('amqp://r1,stomp://r2:61613')).to.match(/'stomp:\/\/r2:61613' must start with amqp:\/\//);
    expect(reason('amqp://u:p@r1,not a url')).to.match(/'not a url' is not a URL/);
    expect(reason('amqp://u:p@r1,amqp://u:p@[::1]:5672')).to.match(/IPv6/);
  });

  it('labels every address without credentials', function () {
    expect(amqpLabel('amqp://u:p@r1:5701/v,amqp://u:p@r2:5702/v')).to.equal(
      'amqp://r1:5701/v,amqp://r2:5702/v',
    );
  });
});
