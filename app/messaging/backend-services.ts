/**
 * Which backend services a user may reach through `/app/<service>/...`, from config/backends.json
 * (or BACKENDS_FILE). A service not listed is unreachable for everyone: adding a backend is a
 * deliberate act, so a client cannot probe routing keys nobody meant to expose. The first entry
 * whose `name` matches decides; `"name": "*"` matches any service (put it last).
 *
 *   { "services": [ { "name": "orders", "users": "*" }, { "name": "billing", "users": ["alice"] } ] }
 */
import { ConfigError, readJsonSettingFile } from '../config';

export interface BackendServiceRule {
  /** The first route segment, as the client writes it (`orders` for `/app/orders/create`), or `*`. */
  name: string;
  /** '*' for any authenticated user, or the user names allowed. */
  users: '*' | string[];
}

interface CompiledRule {
  name: string;
  users: '*' | Set<string>;
}

/** A route segment (destination.ts) or `*`. */
const SERVICE_NAME = /^(\*|[A-Za-z0-9_\-.:@]{1,100})$/;
const SETTING = 'BACKENDS_FILE';

export class BackendServices {
  private readonly rules: CompiledRule[];

  constructor(services: unknown, source = 'backend services') {
    if (!Array.isArray(services)) throw new ConfigError(SETTING, `${source}: 'services' must be a list`);
    this.rules = services.map((entry: unknown, i) => {
      const r = entry as Partial<BackendServiceRule> | null;
      if (!r || typeof r.name !== 'string' || !SERVICE_NAME.test(r.name)) {
        throw new ConfigError(
          SETTING,
          `${source}: services[${i}].name must be a route segment like "orders" (or "*")`,
        );
      }
      if (r.users !== '*' && !(Array.isArray(r.users) && r.users.every((u) => typeof u === 'string'))) {
        throw new ConfigError(SETTING, `${source}: services[${i}].users must be "*" or a list of user names`);
      }
      return { name: r.name, users: r.users === '*' ? '*' : new Set(r.users) };
    });
  }

  static fromFile(file: string): BackendServices {
    const parsed = readJsonSettingFile(SETTING, file);
    return new BackendServices(parsed.services, file);
  }

  canReach(user: string, service: string): boolean {
    for (const rule of this.rules) {
      if (rule.name !== '*' && rule.name !== service) continue;
      return rule.users === '*' || rule.users.has(user);
    }
    return false;
  }
}
