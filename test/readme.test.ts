/**
 * The README's library example is code a user copies first: it must
 * type-check against the package's declarations (strict) and run. It is run
 * as printed except for two substitutions: a few steps instead of 5 epochs,
 * and a temporary run folder.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..');

function readmeExample(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const lib = readme.indexOf('## Library');
  assert.ok(lib >= 0, 'README has no "## Library" section');
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(lib));
  assert.ok(m, 'no ```ts block in the README\'s Library section');
  return m[1];
}

test('README library example type-checks and runs', { timeout: 300_000 }, () => {
  const code = readmeExample();
  assert.match(code, /from 'ibotlab'/);
  assert.match(code, /epochs: 5/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-readme-'));
  try {
    const runDir = path.join(dir, 'run');
    const body = code
      .replace(/from 'ibotlab'/g, `from ${JSON.stringify(path.join(ROOT, 'dist', 'src', 'index'))}`)
      .replace('epochs: 5', 'epochs: 0.04')
      .replace(`'runs/demo'`, JSON.stringify(runDir));
    // Top-level await as tslab allows it; CommonJS output needs a wrapper.
    const imports = body.split('\n').filter((l) => l.startsWith('import '));
    const rest = body.split('\n').filter((l) => !l.startsWith('import '));
    const src = `${imports.join('\n')}\n(async () => {\n${rest.join('\n')}\n})().catch((e) => { console.error(e); process.exit(1); });\n`;
    fs.writeFileSync(path.join(dir, 'example.ts'), src);
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = spawnSync(process.execPath, [tsc, '--strict', '--target', 'ES2022', '--module', 'commonjs', '--esModuleInterop', '--skipLibCheck', '--lib', 'ES2022,DOM', '--outDir', dir, path.join(dir, 'example.ts')], { encoding: 'utf8' });
    assert.equal(compiled.status, 0, `README example does not type-check:\n${compiled.stdout}${compiled.stderr}`);
    const run = spawnSync(process.execPath, [path.join(dir, 'example.js')], { encoding: 'utf8', env: { ...process.env, IBOTLAB_BACKEND: 'wasm' }, timeout: 280_000 });
    assert.equal(run.status, 0, `README example failed:\n${run.stdout}\n${run.stderr}`);
    // The table it prints holds the k-NN, linear probe and clustering rows with numbers.
    assert.match(run.stdout, /knn/);
    assert.match(run.stdout, /linear/);
    assert.match(run.stdout, /nmi/i);
    assert.ok(fs.existsSync(path.join(runDir, 'checkpoint.json')), 'the example wrote no checkpoint');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
