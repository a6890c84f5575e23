/**
 * Builds dist/ with tsc (config/tsconfig.build.json). `npm run build` always builds; `npm start`
 * runs it with `--if-stale` first, which builds only when dist/ is missing or older than what it is
 * built from, so a start with a current build compiles nothing (and a fresh clone builds once).
 *
 * The reference is a stamp written after a successful build, dated when that build began: a failed
 * build leaves no stamp (the next start tries again), and a file saved during a build is newer.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const { closeSync, existsSync, openSync, readdirSync, statSync, utimesSync } = require('node:fs');
const { join, resolve } = require('node:path');

const ROOT = resolve(__dirname, '..');
const STAMP = join(ROOT, 'dist/.build-stamp');
/** What tsc reads: the sources, their settings, and the installed dependencies' versions. */
const INPUTS = ['app', 'config', 'tsconfig.json', 'package.json', 'package-lock.json'];

/** Newest modification time under `path` (a file or a directory tree, directories included). */
function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function isStale() {
  if (!existsSync(STAMP) || !existsSync(join(ROOT, 'dist/app/main.js'))) return true;
  const built = statSync(STAMP).mtimeMs;
  return INPUTS.some((input) => newestMtime(join(ROOT, input)) > built);
}

function build() {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  } catch {
    console.error(
      'stomp-relay: dist/ is missing or out of date and TypeScript is not installed ' +
        '(run `npm install` without --omit=dev, or build where it is)',
    );
    return 1;
  }
  const began = new Date();
  const result = spawnSync(process.execPath, [tsc, '-p', 'config/tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (result.status !== 0) return result.status ?? 1;
  closeSync(openSync(STAMP, 'w'));
  utimesSync(STAMP, began, began);
  return 0;
}

const ifStale = process.argv.includes('--if-stale');
if (ifStale && !isStale()) process.exit(0);
if (ifStale) console.error('stomp-relay: building dist/ (missing or older than app/ and config/)');
process.exit(build());
