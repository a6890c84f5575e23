/**
 * Tokens that already passed verification, so a backend that sends the same bearer token with every
 * push pays for the signature check and passport's per-request machinery (a fresh set of closures
 * per request) once, not per request.
 *
 * Safe because nothing a verification depends on changes while the process runs: the key, the
 * pinned algorithms, issuer and audience are fixed at start, and a passed `nbf` stays passed. The
 * one thing that does change is the clock, so every hit checks `exp` again; an entry also lives at
 * most `maxAgeMs`, and the map holds at most `maxEntries` (the oldest goes first), so a caller
 * minting a new token per request costs memory that is bounded and short-lived.
 */
import type { VerifiedToken } from './token-verifier';

export interface VerifiedTokenCacheOptions {
  maxEntries: number;
  maxAgeMs: number;
  now?: () => number;
}

interface Entry {
  token: VerifiedToken;
  /** Epoch ms after which the entry is no longer used: exp, or insertion + maxAgeMs if sooner. */
  usableUntil: number;
}

export class VerifiedTokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: VerifiedTokenCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The verified identity for `jwt`, if it was verified before and has not expired since. */
  get(jwt: string): VerifiedToken | undefined {
    const entry = this.entries.get(jwt);
    if (entry === undefined) return undefined;
    if (this.now() >= entry.usableUntil) {
      this.entries.delete(jwt);
      return undefined;
    }
    return entry.token;
  }

  /** Remembers a token that just passed verification. */
  add(jwt: string, token: VerifiedToken): void {
    if (this.options.maxEntries <= 0) return;
    const limit = this.now() + this.options.maxAgeMs;
    const usableUntil = token.expiresAt === undefined ? limit : Math.min(token.expiresAt, limit);
    this.entries.delete(jwt);
    while (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(jwt, { token, usableUntil });
  }
}
