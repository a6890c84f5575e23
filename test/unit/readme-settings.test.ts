/**
 * README.md documents what the code reads: every setting of config/settings.ts is a row of the
 * Settings tables with its default, no row names a setting that does not exist, and the push body's
 * every field is described in the REST section. A setting or field added to the code alone fails here.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ServiceError } from '../../app/errors';
import { pushRequest } from '../../app/rest/validation';
import { SETTINGS } from '../../config/settings';

const ROOT = join(__dirname, '../..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The text of `## <title>` up to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start, `README has a "## ${title}" section`).to.be.at.least(0);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** Table rows of the Settings section: each variable in the first cell, and its default cell. */
function settingsRows(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of section('Settings').split('\n')) {
    if (!line.startsWith('| `')) continue;
    const [names, defaultCell] = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    for (const [, name] of (names ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)) rows.set(name!, defaultCell ?? '');
  }
  return rows;
}

/** A default worked out at start (the host name in INSTANCE_ID) cannot be written down as is. */
function computedAtStart(value: unknown): boolean {
  return typeof value === 'string' && value.includes(hostname());
}

describe('README.md', () => {
  const rows = settingsRows();

  it('has a row for every setting in config/settings.ts, with its default', () => {
    for (const spec of Object.values(SETTINGS)) {
      const cell = rows.get(spec.env);
      expect(cell, `README Settings table has no row for ${spec.env}`).to.be.a('string');
      const value: unknown = spec.default;
      const literal = typeof value === 'number' || (typeof value === 'string' && value !== '');
      if (literal && !computedAtStart(value)) {
        expect(cell, `${spec.env}'s default in README`).to.include(`\`${String(value)}\``);
      } else if (Array.isArray(value) && value.length > 0) {
        for (const item of value)
          expect(cell, `${spec.env}'s default in README`).to.include(`\`${String(item)}\``);
      } else {
        // Unset or worked out at start: the cell says what happens then.
        expect(cell!.length, `${spec.env}: say what its default is`).to.be.greaterThan(0);
      }
    }
  });

  it('names no setting the code does not read', () => {
    const known = new Set<string>(Object.values(SETTINGS).map((spec) => spec.env));
    const loader = readFileSync(join(ROOT, 'app/config.ts'), 'utf8');
    for (const name of rows.keys()) {
      const read = known.has(name) || loader.includes(`env.${name}`);
      expect(read, `README documents ${name}, which nothing reads`).to.equal(true);
    }
  });

  it('describes every field of a push body in the REST section', () => {
    // The fields the validator accepts, as its own error lists them.
    let allowed: string[] = [];
    try {
      pushRequest({ destination: '/queue/x', body: 'x', 'not-a-field': 1 });
    } catch (err: unknown) {
      expect(err).to.be.instanceOf(ServiceError);
      const list = /\(allowed: ([^)]*)\)/.exec((err as ServiceError).message);
      expect(list, (err as ServiceError).message).to.not.equal(null);
      allowed = list![1]!.split(',').map((field) => field.trim());
    }
    expect(allowed).to.include.members(['destination', 'body', 'headers']);
    const rest = section('REST');
    for (const field of allowed)
      expect(rest, `README REST: the "${field}" field`).to.include(`\`"${field}"\``);
  });
});
