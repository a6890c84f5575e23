import { expect } from 'chai';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, effectiveAmqpUrl, loadConfig, settingWarnings } from '../../../app/config';

describe('config loader', () => {
  it('applies defaults when nothing is set', () => {
    const s = loadConfig({});
    expect(s.port).to.equal(8080);
    expect(s.brokerUrl).to.equal('');
    expect(s.maxFrameBytes).to.equal(65536);
    expect(s.allowedOrigins).to.deep.equal([]);
    expect(s.stompTcpPort).to.equal(-1);
  });

  it('reads the environment by the spec names', () => {
    const s = loadConfig({
      PORT: '9090',
      BROKER_URL: 'stomp://guest:guest@127.0.0.1:61613',
      ALLOWED_ORIGINS: 'http://a.example, https://b.example',
      STOMP_TCP_PORT: '61614',
      INSTANCE_ID: 'node-1',
    });
    expect(s.port).to.equal(9090);
    expect(s.brokerUrl).to.equal('stomp://guest:guest@127.0.0.1:61613');
    expect(s.allowedOrigins).to.deep.equal(['http://a.example', 'https://b.example']);
    expect(s.stompTcpPort).to.equal(61614);
    expect(s.instanceId).to.equal('node-1');
  });

  for (const [env, value, words] of [
    ['PORT', 'eighty', /PORT.*not an integer/],
    ['PORT', '70000', /PORT.*outside/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL.*not one of/],
    ['BROKER_URL', 'http://x', /BROKER_URL/],
    ['ALLOWED_ORIGINS', 'not an origin', /ALLOWED_ORIGINS/],
    ['INSTANCE_ID', 'a b', /INSTANCE_ID/],
    ['JWT_PUBLIC_KEY', 'abc', /JWT_PUBLIC_KEY.*PEM/],
    ['JWT_REQUIRE_EXP', 'no', /JWT_REQUIRE_EXP.*not true or false/],
  ] as const) {
    it(`refuses ${env}=${value} with one line naming the setting`, () => {
      expect(() => loadConfig({ [env]: value })).to.throw(ConfigError, words);
      try {
        loadConfig({ [env]: value });
      } catch (err: unknown) {
        expect((err as Error).message).to.not.include('\n');
      }
    });
  }

  it('requires exp on tokens unless JWT_REQUIRE_EXP=false', () => {
    expect(loadConfig({}).jwtRequireExp).to.equal(true);
    expect(loadConfig({ JWT_REQUIRE_EXP: 'false' }).jwtRequireExp).to.equal(false);
    expect(loadConfig({ JWT_REQUIRE_EXP: 'true' }).jwtRequireExp).to.equal(true);
  });

  it('refuses to start in production without a JWT key', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).to.throw(ConfigError, /JWT_SECRET/);
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).nodeEnv).to.equal('production');
  });

  describe('NODE_ENV and where development listens', () => {
    const key = 'k'.repeat(40);

    for (const value of ['prod', 'Production', 'PRODUCTION', 'production ', 'dev', 'test', 'staging']) {
      it(`refuses NODE_ENV=${JSON.stringify(value)} with one line naming NODE_ENV`, () => {
        let message = '';
        try {
          loadConfig({ NODE_ENV: value, JWT_SECRET: key });
        } catch (err: unknown) {
          expect(err).to.be.instanceOf(ConfigError);
          message = (err as Error).message;
        }
        expect(message).to.match(/^invalid setting NODE_ENV: .*development or production/);
        expect(message).to.not.include('\n');
      });
    }

    it('unset with no JWT key and no HOST: development on 127.0.0.1 (npm start on a laptop)', () => {
      const s = loadConfig({});
      expect({ nodeEnv: s.nodeEnv, host: s.host }).to.deep.equal({
        nodeEnv: 'development',
        host: '127.0.0.1',
      });
    });

    it('unset with a JWT key or a wide HOST: refused, naming NODE_ENV (a deployment that forgot it)', () => {
      for (const env of [
        { JWT_SECRET: key },
        { JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----x' },
        { HOST: '0.0.0.0' },
      ]) {
        expect(() => loadConfig(env), JSON.stringify(env)).to.throw(
          ConfigError,
          /^invalid setting NODE_ENV: unset while/,
        );
      }
      expect(loadConfig({ HOST: '127.0.0.2' }).nodeEnv).to.equal('development');
    });

    it('production listens on 0.0.0.0 unless HOST says otherwise; HOST always wins', () => {
      expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: key }).host).to.equal('0.0.0.0');
      expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: key, HOST: '10.0.0.5' }).host).to.equal(
        '10.0.0.5',
      );
      expect(loadConfig({ NODE_ENV: 'development', JWT_SECRET: key }).host).to.equal('127.0.0.1');
      expect(loadConfig({ NODE_ENV: 'development', HOST: '0.0.0.0' }).host).to.equal('0.0.0.0');
    });

    it('warns in development: the open endpoint and where it listens, and a JWT_SECRET under 32 characters', () => {
      expect(settingWarnings(loadConfig({}))).to.deep.equal([
        'development mode: POST /api/dev/token issues tokens to any caller, from this machine only (HOST=127.0.0.1); NODE_ENV=production turns it off',
      ]);
      const wide = settingWarnings(
        loadConfig({ NODE_ENV: 'development', HOST: '0.0.0.0', JWT_SECRET: 'short' }),
      );
      expect(wide).to.have.length(2);
      expect(wide[0]).to.match(/^development mode on HOST=0\.0\.0\.0: .*anyone who can reach this port/);
      expect(wide[1]).to.match(/^JWT_SECRET is shorter than 32 characters/);
      expect(settingWarnings(loadConfig({ NODE_ENV: 'production', JWT_SECRET: key }))).to.deep.equal([]);
      expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' })).to.throw(
        ConfigError,
        /32 characters/,
      );
    });
  });

  it('reads a CONFIG_FILE, with the environment winning over it, and refuses unknown keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 7000, maxFrameBytes: 2048 }));
    const s = loadConfig({ CONFIG_FILE: file, PORT: '7001' });
    expect(s.port).to.equal(7001);
    expect(s.maxFrameBytes).to.equal(2048);
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig({ CONFIG_FILE: file })).to.throw(ConfigError, /unknown setting 'prot'/);
  });

  it('derives AMQP_URL from every BROKER_URL address when unset, in order (a cluster fails over on both)', () => {
    const s = loadConfig({ BROKER_URL: 'stomp://u:p@rabbit:61613/%2F,stomp://u:p@rabbit2:61613/%2F' });
    expect(effectiveAmqpUrl(s)).to.equal('amqp://u:p@rabbit:5672/%2F,amqp://u:p@rabbit2:5672/%2F');
    expect(effectiveAmqpUrl(loadConfig({ BROKER_URL: 'stomp://u:p@rabbit:61613' }))).to.equal(
      'amqp://u:p@rabbit:5672',
    );
    expect(
      effectiveAmqpUrl(loadConfig({ BROKER_URL: 'stomp://h:61613', AMQP_URL: 'amqp://x:5673' })),
    ).to.equal('amqp://x:5673');
  });

  it('takes AMQP_URL as a failover list and refuses one that mixes credentials, naming the setting', () => {
    const list = 'amqp://u:p@r1:5701,amqp://u:p@r2:5702';
    expect(effectiveAmqpUrl(loadConfig({ BROKER_URL: 'stomp://h:61613', AMQP_URL: list }))).to.equal(list);
    expect(() =>
      loadConfig({ BROKER_URL: 'stomp://h:61613', AMQP_URL: 'amqp://u:p@r1,amqp://x:y@r2' }),
    ).to.throw(ConfigError, /invalid setting AMQP_URL: 'amqp:\/\/\*\*\*@r2' differs/);
    expect(() => loadConfig({ AMQP_URL: 'http://r1' })).to.throw(ConfigError, /AMQP_URL.*amqp:\/\//);
  });
});
