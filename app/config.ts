/**
 * Loads the typed Settings: defaults from config/settings.ts, then an optional JSON file named by
 * CONFIG_FILE (keys as in Settings), then the environment. Every value is validated here, once; a bad
 * one throws ConfigError naming the setting, which main.ts prints as one line before exiting.
 */
import { readFileSync } from 'node:fs';
import { SETTINGS, type Kind, type Settings } from '../config/settings';
import { amqpConnectionTarget } from './broker/rabbitmq/amqp-url';

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    reason: string,
  ) {
    super(`invalid setting ${setting}: ${reason}`);
    this.name = 'ConfigError';
  }
}

type Key = keyof typeof SETTINGS;

function parseValue(name: string, kind: Kind, raw: unknown): unknown {
  switch (kind.type) {
    case 'int': {
      const n =
        typeof raw === 'number'
          ? raw
          : typeof raw === 'string' && /^-?\d+$/.test(raw.trim())
            ? Number(raw)
            : NaN;
      if (!Number.isInteger(n)) throw new ConfigError(name, `'${String(raw)}' is not an integer`);
      if (n < kind.min || n > kind.max)
        throw new ConfigError(name, `${n} is outside ${kind.min}..${kind.max}`);
      return n;
    }
    case 'string': {
      if (typeof raw !== 'string') throw new ConfigError(name, 'must be a string');
      if (raw !== '' && kind.pattern && !kind.pattern.test(raw)) {
        throw new ConfigError(name, `'${raw}' is not valid (${kind.hint ?? kind.pattern.source})`);
      }
      return raw;
    }
    case 'enum': {
      if (typeof raw !== 'string' || !kind.values.includes(raw)) {
        throw new ConfigError(name, `'${String(raw)}' is not one of ${kind.values.join(', ')}`);
      }
      return raw;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new ConfigError(name, `'${String(raw)}' is not true or false`);
    }
    case 'list': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : null;
      if (!items || items.some((i) => typeof i !== 'string'))
        throw new ConfigError(name, 'must be a comma-separated list');
      return (items as string[]).map((i) => i.trim()).filter((i) => i.length > 0);
    }
  }
}

/**
 * A JSON object from a file a setting names (CONFIG_FILE, AUTHORIZATION_FILE, BACKENDS_FILE); any
 * problem is a ConfigError naming that setting, so the process stops with one readable line.
 */
export function readJsonSettingFile(setting: string, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err: unknown) {
    throw new ConfigError(
      setting,
      `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err: unknown) {
    throw new ConfigError(setting, `${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Cross-setting rules that a single value cannot express. */
function checkTogether(s: Settings): void {
  if (s.instanceId === 'queue') {
    throw new ConfigError(
      'INSTANCE_ID',
      "'queue' is reserved (broker queues of /queue destinations are stomp-relay.queue.<name>)",
    );
  }
  if (s.nodeEnv === 'production' && !s.jwtSecret && !s.jwtPublicKey) {
    throw new ConfigError(
      'JWT_SECRET',
      'production needs JWT_SECRET or JWT_PUBLIC_KEY (instances of a cluster share it)',
    );
  }
  if (s.jwtSecret && s.jwtSecret.length < 32 && s.nodeEnv === 'production') {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 characters in production');
  }
  if (s.jwtPublicKey && !s.jwtPublicKey.includes('-----BEGIN')) {
    throw new ConfigError('JWT_PUBLIC_KEY', 'must be a PEM public key (-----BEGIN PUBLIC KEY-----)');
  }
  for (const origin of s.allowedOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError('ALLOWED_ORIGINS', `'${origin}' is not an origin like https://app.example.com`);
    }
  }
  if (s.brokerUrl && !s.brokerUrl.split(',').every((u) => /^stomp:\/\//.test(u.trim()))) {
    throw new ConfigError('BROKER_URL', 'each address must start with stomp://');
  }
  if (s.amqpUrl) {
    try {
      amqpConnectionTarget(s.amqpUrl);
    } catch (err: unknown) {
      throw new ConfigError('AMQP_URL', err instanceof Error ? err.message : String(err));
    }
  }
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * NODE_ENV and HOST when unset, which depend on other settings (their docs in config/settings.ts
 * say why). After this, nodeEnv is `development` or `production` and host is an address.
 */
function resolveMode(s: Settings): void {
  if (s.nodeEnv === '') {
    // Unset means development only where nothing says "deployment": no JWT key, no wide HOST.
    let deployment = '';
    if (s.jwtSecret || s.jwtPublicKey) deployment = 'a JWT key is set';
    else if (s.host !== '' && !isLoopback(s.host)) deployment = `HOST=${s.host}`;
    if (deployment !== '') {
      throw new ConfigError(
        'NODE_ENV',
        `unset while ${deployment}: NODE_ENV=production for a deployment (no dev token endpoint), or NODE_ENV=development to serve dev tokens anyway`,
      );
    }
    s.nodeEnv = 'development';
  }
  if (s.host === '') s.host = s.nodeEnv === 'development' ? '127.0.0.1' : '0.0.0.0';
}

/** What start-up should warn about in these settings: one log line each. */
export function settingWarnings(s: Settings): string[] {
  const warnings: string[] = [];
  if (s.nodeEnv !== 'production') {
    warnings.push(
      isLoopback(s.host)
        ? `development mode: POST /api/dev/token issues tokens to any caller, from this machine only (HOST=${s.host}); NODE_ENV=production turns it off`
        : `development mode on HOST=${s.host}: POST /api/dev/token issues tokens to anyone who can reach this port (NODE_ENV=production turns it off)`,
    );
    if (s.jwtSecret && s.jwtSecret.length < 32) {
      warnings.push(
        'JWT_SECRET is shorter than 32 characters: accepted in development, refused in production',
      );
    }
  }
  return warnings;
}

/**
 * AMQP_URL when set, else each BROKER_URL address's host and credentials on port 5672, in the same
 * order: a cluster's BROKER_URL lists its nodes, and the AMQP connections must fail over with them.
 */
export function effectiveAmqpUrl(s: Settings): string {
  if (s.amqpUrl) return s.amqpUrl;
  return s.brokerUrl
    .split(',')
    .filter((entry) => entry.trim() !== '')
    .map((entry) => {
      const url = new URL(entry.trim());
      const auth = url.username ? `${url.username}:${url.password}@` : '';
      return `amqp://${auth}${url.hostname}:5672${url.pathname && url.pathname !== '/' ? url.pathname : ''}`;
    })
    .join(',');
}

export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Settings> = {},
): Settings {
  const fromFile = env.CONFIG_FILE ? readJsonSettingFile('CONFIG_FILE', env.CONFIG_FILE) : {};
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(SETTINGS) as Key[]) {
    const spec = SETTINGS[key];
    const envValue = env[spec.env];
    let raw: unknown = spec.default;
    if (key in fromFile) raw = fromFile[key];
    if (envValue !== undefined && envValue !== '') raw = envValue;
    if (key in overrides) raw = overrides[key];
    out[key] = parseValue(spec.env, spec.kind, raw);
  }
  for (const key of Object.keys(fromFile)) {
    if (!(key in SETTINGS)) throw new ConfigError('CONFIG_FILE', `unknown setting '${key}'`);
  }
  const settings = out as Settings;
  checkTogether(settings);
  resolveMode(settings);
  return settings;
}
