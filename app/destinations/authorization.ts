/**
 * Who may SUBSCRIBE or SEND where, from config/authorization.json (or AUTHORIZATION_FILE).
 * Rules match the canonical destination string (destination.ts refuses every other spelling first):
 * `*` matches one name word (no `.` or `/`), `**` matches anything, `{user}` matches exactly the
 * session's user. The first rule whose pattern matches decides; no match means refused.
 */
import { readJsonSettingFile } from '../config';
import { ServiceError } from '../errors';

export interface AuthorizationRule {
  destination: string;
  /** '*' for any authenticated user, or the user names allowed. */
  users: '*' | string[];
  /** false turns a matching destination down for these users (a deny rule placed before allows). */
  allow?: boolean;
}

export interface AuthorizationRules {
  subscribe: AuthorizationRule[];
  send: AuthorizationRule[];
}

interface CompiledRule {
  pattern: CompiledPattern;
  users: '*' | Set<string>;
  allow: boolean;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function patternSource(pattern: string, user: string): string {
  return pattern
    .split(/(\*\*|\*|\{user\})/)
    .map((part) => {
      if (part === '**') return '.*';
      if (part === '*') return '[^./]+';
      if (part === '{user}') return escapeRegExp(user);
      return escapeRegExp(part);
    })
    .join('');
}

/** Rules are checked on every SEND and SUBSCRIBE: regexes are built once (per user for `{user}`). */
const USER_CACHE_LIMIT = 10_000;

class CompiledPattern {
  private readonly fixed?: RegExp;
  private readonly perUser = new Map<string, RegExp>();

  constructor(private readonly pattern: string) {
    if (!pattern.includes('{user}')) this.fixed = new RegExp(`^${patternSource(pattern, '')}$`);
  }

  test(destination: string, user: string): boolean {
    if (this.fixed) return this.fixed.test(destination);
    let re = this.perUser.get(user);
    if (!re) {
      if (this.perUser.size >= USER_CACHE_LIMIT) this.perUser.clear();
      re = new RegExp(`^${patternSource(this.pattern, user)}$`);
      this.perUser.set(user, re);
    }
    return re.test(destination);
  }
}

function compile(rules: unknown, section: string, file: string): CompiledRule[] {
  if (!Array.isArray(rules))
    throw new ServiceError('bad_request', `${file}: '${section}' must be a list of rules`);
  return rules.map((rule: unknown, i) => {
    const r = rule as Partial<AuthorizationRule> | null;
    if (!r || typeof r.destination !== 'string' || !r.destination.startsWith('/')) {
      throw new ServiceError(
        'bad_request',
        `${file}: ${section}[${i}].destination must be a pattern like /topic/**`,
      );
    }
    if (r.users !== '*' && !(Array.isArray(r.users) && r.users.every((u) => typeof u === 'string'))) {
      throw new ServiceError(
        'bad_request',
        `${file}: ${section}[${i}].users must be "*" or a list of user names`,
      );
    }
    return {
      pattern: new CompiledPattern(r.destination),
      users: r.users === '*' ? '*' : new Set(r.users),
      allow: r.allow !== false,
    };
  });
}

export class Authorizer {
  private readonly subscribeRules: CompiledRule[];
  private readonly sendRules: CompiledRule[];

  constructor(rules: AuthorizationRules, source = 'authorization rules') {
    this.subscribeRules = compile(rules.subscribe, 'subscribe', source);
    this.sendRules = compile(rules.send, 'send', source);
  }

  static fromFile(file: string): Authorizer {
    const parsed = readJsonSettingFile('AUTHORIZATION_FILE', file);
    return new Authorizer(parsed as unknown as AuthorizationRules, file);
  }

  canSubscribe(user: string, destination: string): boolean {
    return Authorizer.decide(this.subscribeRules, user, destination);
  }

  canSend(user: string, destination: string): boolean {
    return Authorizer.decide(this.sendRules, user, destination);
  }

  private static decide(rules: CompiledRule[], user: string, destination: string): boolean {
    for (const rule of rules) {
      if (!rule.pattern.test(destination, user)) continue;
      if (rule.users !== '*' && !rule.users.has(user)) continue;
      return rule.allow;
    }
    return false;
  }
}
