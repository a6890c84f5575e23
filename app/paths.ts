/**
 * The project root, found from this file whether it runs from app/ (tsx) or dist/app/ (npm start),
 * so config/, public/ and node_modules/ resolve the same way in both.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return start;
    dir = parent;
  }
  return dir;
}

export const PROJECT_ROOT = findRoot(__dirname);

export const projectPath = (...parts: string[]): string => join(PROJECT_ROOT, ...parts);
