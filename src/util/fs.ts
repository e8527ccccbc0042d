/** File-system helpers the library's writers share. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * `mkdir -p`, one level at a time. Node's own `mkdirSync(dir, { recursive: true })`
 * never returns for a path under a pseudo file system that refuses new entries
 * (`/proc/x` loops forever, Node 20–24): a user who mistypes an output folder
 * must get an error, not a hung process.
 */
export function makeDirs(dir: string): void {
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let d = abs;
  while (!fs.existsSync(d)) {
    missing.push(d);
    const parent = path.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  if (fs.existsSync(d) && !fs.statSync(d).isDirectory()) {
    throw Object.assign(new Error(`cannot create ${abs}: ${d} is a file, not a folder`), { code: 'ENOTDIR' });
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
