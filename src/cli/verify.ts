/** `ibotlab verify-reference [DIR]`: every fixture in DIR through the library, one line each. */
import * as path from 'node:path';
import { checkFixtureFile, fixtureFiles, FixtureResult } from '../reference/fixtures';
import { CommandSpec } from './args';

export const VERIFY_COMMAND: CommandSpec = {
  name: 'verify-reference',
  positionals: '[DIR]',
  summary: 'check the library against reference fixtures (default ../shared/reference) on the chosen backend',
  options: [],
};

export function formatResult(r: FixtureResult): string {
  const status = r.passed ? 'ok  ' : 'FAIL';
  const errs = `max abs ${r.maxAbsErr.toExponential(2)}  max rel ${r.maxRelErr.toExponential(2)}`;
  const extra = r.passed ? '' : `  (${r.detail ?? r.worst ?? ''})`;
  return `${status} ${path.basename(r.file)} [${r.kind}] ${r.name}: ${errs}${extra}`;
}

/** Runs every fixture; returns the process exit code (0 when all pass). */
export async function verifyReference(dir: string, log: (s: string) => void = console.log): Promise<number> {
  const files = fixtureFiles(dir);
  let passed = 0;
  let total = 0;
  for (const file of files) {
    const results = await checkFixtureFile(file);
    // A file passes when every case in it passes; lines are per case so a failure points at its case.
    for (const r of results) log(formatResult(r));
    total++;
    if (results.length && results.every((r) => r.passed)) passed++;
  }
  log(`reference: ${passed}/${total} passed`);
  return passed === total && total > 0 ? 0 : 1;
}
