/**
 * No import cycle among the service's modules, type-only imports included: a cycle means two
 * modules are one concern split in two (or one reaching up a layer), and with value imports it
 * makes load order decide what is still undefined. Imports are read with TypeScript's own scanner
 * (`preProcessFile`), which sees `import type`, `export ... from` and `import('...')` types alike.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The project file a relative specifier names (`./x` as x.ts or x/index.ts); packages are skipped. */
function resolveImport(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  for (const candidate of [`${base}.ts`, join(base, 'index.ts'), base]) {
    if (candidate.endsWith('.ts') && existsSync(candidate)) return candidate;
  }
  throw new Error(`${relative(ROOT, from)}: cannot resolve '${specifier}'`);
}

function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.flatMap((ref) => resolveImport(file, ref.fileName) ?? []);
}

/** Every import cycle reachable from `roots`, each as the files in import order (first repeated last). */
export function importCycles(roots: readonly string[]): string[][] {
  const graph = new Map<string, string[]>();
  const pending = [...roots];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (graph.has(file)) continue;
    const deps = importsOf(file);
    graph.set(file, deps);
    pending.push(...deps);
  }
  // Depth-first with an explicit path: a back edge to a file on the path closes a cycle.
  const cycles: string[][] = [];
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (file: string): void => {
    const at = onPath.indexOf(file);
    if (at >= 0) {
      cycles.push([...onPath.slice(at), file]);
      return;
    }
    if (done.has(file)) return;
    onPath.push(file);
    for (const dep of graph.get(file) ?? []) visit(dep);
    onPath.pop();
    done.add(file);
  };
  for (const file of [...graph.keys()].sort()) visit(file);
  return cycles;
}

describe('module structure', function () {
  it('has no import cycle in app/, counting type-only imports', function () {
    const cycles = importCycles(sourceFiles(join(ROOT, 'app')));
    const shown = cycles.map((cycle) => cycle.map((f) => relative(ROOT, f)).join(' -> '));
    expect(shown, shown.join('\n')).to.deep.equal([]);
  });

  it('finds a cycle when there is one (the check itself works)', function () {
    const dir = join(ROOT, 'test/unit/fixtures/import-cycle');
    const cycles = importCycles([join(dir, 'a.ts')]).map((c) => c.map((f) => relative(dir, f)));
    expect(cycles).to.deep.equal([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });
});
