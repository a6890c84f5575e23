/**
 * `npm start` on a scratch copy of the repository (its sources, package files and a link to
 * node_modules): a fresh checkout builds dist/ once, a current build is started without compiling,
 * a changed source or a failed build is rebuilt, and a bad setting still ends with its one line.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../support/cluster';

const BUILDING = 'stomp-relay: building dist/';

describe('npm start', function () {
  this.timeout(180_000);
  let root = '';

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'stomp-relay-start-'));
    for (const path of ['app', 'config', 'public', 'tsconfig.json', 'package.json', 'package-lock.json'])
      cpSync(join(PROJECT_ROOT, path), join(root, path), { recursive: true });
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'));
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** `npm start` with a bad PORT: everything up to the setting's one line, then exit 1. */
  function startWithBadPort(): { status: number | null; stderr: string } {
    const result = spawnSync('npm', ['start', '--silent'], {
      cwd: root,
      env: { ...process.env, PORT: 'not-a-port' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { status: result.status, stderr: result.stderr };
  }

  const mainJs = (): string => join(root, 'dist/app/main.js');

  it('builds dist/ on a fresh checkout, then starts it (a bad setting gets its one line)', () => {
    expect(existsSync(mainJs())).to.equal(false);
    const { status, stderr } = startWithBadPort();
    expect(stderr).to.include(BUILDING);
    expect(stderr).to.include("stomp-relay: invalid setting PORT: 'not-a-port' is not an integer");
    expect(status).to.equal(1);
    expect(existsSync(mainJs())).to.equal(true);
  });

  it('starts a current build without compiling it again', () => {
    const builtAt = statSync(mainJs()).mtimeMs;
    const { status, stderr } = startWithBadPort();
    expect(stderr).to.not.include(BUILDING);
    expect(stderr.trim()).to.equal("stomp-relay: invalid setting PORT: 'not-a-port' is not an integer");
    expect(status).to.equal(1);
    expect(statSync(mainJs()).mtimeMs).to.equal(builtAt);
  });

  it('rebuilds after a source changes, and keeps trying after a failed build', () => {
    const paths = join(root, 'app/paths.ts');
    const original = readFileSync(paths, 'utf8');
    writeFileSync(paths, `${original}\nexport const brokenOnPurpose: number = 'not a number';\n`);
    const failed = startWithBadPort();
    expect(failed.stderr).to.include(BUILDING);
    expect(failed.status, 'a failed build stops npm start').to.not.equal(0);
    expect(failed.stderr).to.not.include('invalid setting PORT');

    writeFileSync(paths, `${original}\nexport const addedLater = 1;\n`);
    const rebuilt = startWithBadPort();
    expect(rebuilt.stderr).to.include(BUILDING);
    expect(rebuilt.stderr).to.include('invalid setting PORT');
    expect(readFileSync(join(root, 'dist/app/paths.js'), 'utf8')).to.include('addedLater');
    expect(startWithBadPort().stderr).to.not.include(BUILDING);
  });
});
