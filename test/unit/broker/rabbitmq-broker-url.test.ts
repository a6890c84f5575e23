import { expect } from 'chai';

import { parseBrokerUrl } from '../../../app/broker/rabbitmq/broker-url';
import { isServiceError } from '../../../app/errors';

function reason(value: string): string {
  try {
    parseBrokerUrl(value);
  } catch (err: unknown) {
    expect(isServiceError(err), 'a ServiceError').to.equal(true);
    return (err as Error).message;
  }
  throw new Error(`'${value}' was accepted`);
}

describe('rabbitmq parseBrokerUrl', function () {
  it('reads credentials, host, port and the percent-encoded vhost', function () {
    expect(parseBrokerUrl('stomp://guest:guest@127.0.0.1:61613/%2F')).to.deep.equal([
      {
        host: '127.0.0.1',
        port: 61613,
        login: 'guest',
        passcode: 'guest',
        vhost: '/',
        label: 'stomp://127.0.0.1:61613/%2F',
      },
    ]);
    const [address] = parseBrokerUrl('stomp://us%40er:p%3Ass@rabbit.local:1234/my%2Fvhost');
    expect(address).to.include({
      login: 'us@er',
      passcode: 'p:ss',
      host: 'rabbit.local',
      port: 1234,
      vhost: 'my/vhost',
    });
    expect(address.label).to.equal('stomp://rabbit.local:1234/my%2Fvhost');
  });

  it('defaults the port to 61613 and the vhost to /', function () {
    for (const url of ['stomp://u:p@h', 'stomp://u:p@h/']) {
      expect(parseBrokerUrl(url)[0]).to.include({ port: 61613, vhost: '/' });
    }
  });

  it('reads a comma-separated failover list in order', function () {
    const list = parseBrokerUrl('stomp://u:p@a:1/v, stomp://u:p@b:2/%2F,stomp://u:p@[::1]:3');
    expect(list.map((a) => [a.host, a.port, a.vhost])).to.deep.equal([
      ['a', 1, 'v'],
      ['b', 2, '/'],
      ['::1', 3, '/'],
    ]);
  });

  it('never puts the password in a label or an error', function () {
    const [address] = parseBrokerUrl('stomp://u:topsecret@h:1/v');
    expect(address.label).not.to.include('topsecret');
    expect(reason('stomp://u:topsecret@h:99999/v')).not.to.include('topsecret');
  });

  it('refuses bad values with a readable reason', function () {
    expect(reason('')).to.match(/BROKER_URL is empty/);
    expect(reason('amqp://u:p@h:5672')).to.match(/scheme must be stomp/);
    expect(reason('not a url')).to.match(/not a URL/);
    expect(reason('stomp://u:p@h:0')).to.match(/port/);
    expect(reason('stomp://u:p@h:1/a/b')).to.match(/one path segment/);
    expect(reason('stomp://u:p@h:1/%zz')).to.match(/vhost is not valid percent-encoding/);
    expect(reason('stomp://u:p@h:1/v?x=1')).to.match(/query/);
    expect(reason('stomp://u:p@h:1,')).to.match(/empty/);
  });
});
