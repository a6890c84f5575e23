/**
 * Who may SUBSCRIBE or SEND where, from config/authorization.json (or AUTHORIZATION_FILE).
 * Rules match the canonical destination string (destination.ts refuses every other spelling first):
 * `*` matches one name word (no `.` or `/`), `**` matches anything, `{user}` matches exactly the
 * session's user. The first rule whose pattern matches decides; no match means refused.
 *
 * A rule is for `users` (a list, or "*"), for tokens holding one of `scopes` (the JWT `scope`
 * claim), or, with both, for those users with such a token. Raw broker destinations
 * (raw-destination.ts: `/amq/queue/`, `/exchange/`) are decided only by rules spelled with that
 * prefix: an allowance has to name them, so `/**` or a rule written before they existed never
 * opens the broker's own queues and exchanges to clients. Without such a rule they are refused.
 */
import { readJsonSettingFile } from '../config';
import { ServiceError } from '../errors';
import { RAW_PREFIXES } from './raw-destination';

/**
 * Prefixes only a rule spelled with them decides: raw broker destinations, and the temp queues of
 * request/reply (`reply-to: /temp-queue/<name>` is checked as a SUBSCRIBE of it, a reply as a SEND
 * to `/reply-queue/<token>`; session/temp-queues.ts).
 */
const GATED_PREFIXES = [...RAW_PREFIXES, '/temp-queue/', '/reply-queue/'];

function gatedPrefix(destination: string): string | undefined {
  return GATED_PREFIXES.find((prefix) => destination.startsWith(prefix));
}

export interface AuthorizationRule {
  destination: string;
  /** '*' for any authenticated user, or the user names allowed. Optional when `scopes` is set. */
  users?: '*' | string[];
  /** The rule is for a token whose `scope` holds one of these (with `users`: and is one of them). */
  scopes?: string[];
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
  scopes?: Set<string>;
  allow: boolean;
  /** The gated prefix it is spelled with: it decides destinations of that prefix, and only those. */
  gated: string | undefined;
}

/** Who asks: the session's user and its token's scopes. */
export interface Requester {
  user: string;
  scopes: readonly string[];
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
    const users = r.users ?? (r.scopes !== undefined ? '*' : undefined);
    if (users !== '*' && !(Array.isArray(users) && users.every((u) => typeof u === 'string'))) {
      throw new ServiceError(
        'bad_request',
        `${file}: ${section}[${i}].users must be "*" or a list of user names (or give scopes)`,
      );
    }
    if (
      r.scopes !== undefined &&
      !(Array.isArray(r.scopes) && r.scopes.length > 0 && r.scopes.every((s) => typeof s === 'string'))
    ) {
      throw new ServiceError('bad_request', `${file}: ${section}[${i}].scopes must be a list of scope names`);
    }
    return {
      pattern: new CompiledPattern(r.destination),
      users: users === '*' ? '*' : new Set(users),
      scopes: r.scopes === undefined ? undefined : new Set(r.scopes),
      allow: r.allow !== false,
      gated: gatedPrefix(r.destination),
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

  /** `who` as a user name alone: a requester whose token has no scopes. */
  canSubscribe(who: string | Requester, destination: string): boolean {
    return Authorizer.decide(this.subscribeRules, requester(who), destination);
  }

  canSend(who: string | Requester, destination: string): boolean {
    return Authorizer.decide(this.sendRules, requester(who), destination);
  }

  private static decide(rules: CompiledRule[], who: Requester, destination: string): boolean {
    const gated = gatedPrefix(destination);
    for (const rule of rules) {
      if (rule.gated !== gated) continue;
      if (!rule.pattern.test(destination, who.user)) continue;
      if (rule.users !== '*' && !rule.users.has(who.user)) continue;
      if (rule.scopes && !who.scopes.some((scope) => rule.scopes?.has(scope))) continue;
      return rule.allow;
    }
    return false;
  }
}

function requester(who: string | Requester): Requester {
  return typeof who === 'string' ? { user: who, scopes: [] } : who;
}
