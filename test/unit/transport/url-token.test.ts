import { expect } from 'chai';
import { queryToken, redactTokens } from '../../../app/transport/url-token';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

describe('unit: tokens in URLs', () => {
  it('access_token is read from the query', () => {
    expect(queryToken(`/ws/0/a/xhr?x=1&access_token=${JWT}`)).to.equal(JWT);
    expect(queryToken('/ws/0/a/xhr')).to.equal(undefined);
  });

  it('a credential parameter and any JWT are redacted, whatever surrounds them', () => {
    expect(redactTokens(`GET /ws/0/a/xhr_streaming?access_token=${JWT}&t=1 2ms 200`)).to.equal(
      'GET /ws/0/a/xhr_streaming?access_token=[redacted]&t=1 2ms 200',
    );
    expect(redactTokens(`Exception on "POST http://h/ws/0/a/xhr_send?Access_Token=opaque-42":`)).to.equal(
      'Exception on "POST http://h/ws/0/a/xhr_send?Access_Token=[redacted]":',
    );
    expect(redactTokens(`/stomp?passcode=secret;token=t2`)).to.equal(
      '/stomp?passcode=[redacted];token=[redacted]',
    );
    expect(redactTokens(`header value Bearer ${JWT}.`)).to.equal('header value Bearer [redacted].');
    expect(redactTokens('GET /ws/info?t=123 1ms 200')).to.equal('GET /ws/info?t=123 1ms 200');
  });
});
