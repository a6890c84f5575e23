import { expect } from 'chai';
import { bearerToken } from '../../../app/auth/bearer';

describe('bearer credential parser', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

  it('takes the token of Bearer <token>, in any case of the scheme, with blanks around it', () => {
    for (const value of [
      `Bearer ${jwt}`,
      `bearer ${jwt}`,
      `BEARER ${jwt}`,
      `Bearer  ${jwt}`,
      `Bearer\t${jwt} `,
    ]) {
      expect(bearerToken(value), JSON.stringify(value)).to.equal(jwt);
    }
    // RFC 6750 b64token: base64 (not only base64url) with padding is a token too.
    expect(bearerToken('Bearer abc+/~.-_==')).to.equal('abc+/~.-_==');
  });

  it('refuses anything that is not exactly one bearer credential', () => {
    for (const value of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      jwt,
      `Basic ${jwt}`,
      `Bearer ${jwt} junk`,
      `Bearer ${jwt},Bearer ${jwt}`,
      `Bearer ${jwt}\n`,
      ` Bearer ${jwt}`,
      `xBearer ${jwt}`,
      `Bearer ${jwt}=x`,
      `Bearer "${jwt}"`,
    ]) {
      expect(bearerToken(value), JSON.stringify(value)).to.equal(undefined);
    }
  });
});
