import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REFERENCE_DIR, SHARED_REFERENCE_DIR } from './helpers';

// Compiled tests live in dist/test; the CLI in dist/src/cli.
const repo = path.resolve(__dirname, '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');
const refDir = REFERENCE_DIR;

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
}

describe('ibotlab verify-reference', () => {
  for (const dir of [refDir, ...(fs.existsSync(SHARED_REFERENCE_DIR) ? [SHARED_REFERENCE_DIR] : [])]) {
    it(`passes every fixture of ${path.relative(repo, dir)} (independent PyTorch / scikit-learn numbers)`, async () => {
      const r = run(['verify-reference', dir]);
      const n = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).length;
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`reference: ${n}/${n} passed`));
      assert.doesNotMatch(r.stdout, /FAIL/);
    });
  }

  it('fails, naming the case, when a fixture number is off', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-ref-'));
    const loss = JSON.parse(fs.readFileSync(path.join(refDir, 'ibot_loss.json'), 'utf8'));
    loss.cases[1].expected.patch *= 1.001;
    fs.writeFileSync(path.join(dir, 'ibot_loss.json'), JSON.stringify(loss));
    fs.copyFileSync(path.join(refDir, 'schedules.json'), path.join(dir, 'schedules.json'));
    const r = run(['verify-reference', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /FAIL ibot_loss\.json \[ibot_loss\] case 1/);
    assert.match(r.stdout, /reference: 1\/2 passed/);
  });
});
