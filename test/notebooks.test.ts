/**
 * The notebooks, executed for real: `scripts/notebooks.js` runs every
 * notebooks/*.ipynb in quick mode (IBOTLAB_QUICK=1) with Jupyter (nbclient)
 * and the tslab kernel, exports each to HTML and checks in headless Chromium
 * that every figure rendered (screenshots in .cache/notebooks/screenshots/).
 *
 * Needs Jupyter (nbconvert, nbclient) and Chromium. Without them the test is
 * skipped locally and fails under CI (CI set) with what to install.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../src/data/registry';

const ROOT = packageRoot();

interface JupyterTools {
  JUPYTER_APT: string;
  CHROMIUM_APT: string;
  findPython(): string | undefined;
  findChromium(): string | undefined;
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const tools = require(path.join(ROOT, 'scripts', 'jupyter.js')) as JupyterTools;

interface NotebookJson {
  cells: Array<{ cell_type: string; outputs?: unknown[]; execution_count?: number | null; source: string | string[] }>;
  metadata: { kernelspec?: { name?: string; language?: string }; ibotlab?: { min_figures?: number } };
}

const notebooks = fs
  .readdirSync(path.join(ROOT, 'notebooks'))
  .filter((f) => f.endsWith('.ipynb'))
  .sort();

describe('notebooks (static)', () => {
  it('the seven notebooks are there, in order', async () => {
    assert.deepEqual(
      notebooks.map((f) => f.slice(0, 2)),
      ['00', '01', '02', '03', '04', '05', '06'],
    );
  });

  for (const f of notebooks) {
    it(`${f}: tslab kernel, committed without outputs, explains itself, declares its figures`, async () => {
      const nb = JSON.parse(fs.readFileSync(path.join(ROOT, 'notebooks', f), 'utf8')) as NotebookJson;
      assert.equal(nb.metadata.kernelspec?.name, 'tslab');
      assert.equal(nb.metadata.kernelspec?.language, 'typescript');
      const code = nb.cells.filter((c) => c.cell_type === 'code');
      assert.ok(code.every((c) => (c.outputs ?? []).length === 0 && !c.execution_count), 'clear the outputs before committing');
      assert.ok(nb.cells[0].cell_type === 'markdown', 'a notebook starts by saying what it shows');
      assert.ok(nb.cells.filter((c) => c.cell_type === 'markdown').length >= 3);
      assert.ok((nb.metadata.ibotlab?.min_figures ?? 0) >= 1, 'metadata.ibotlab.min_figures is what the browser check expects');
      const src = code.map((c) => (Array.isArray(c.source) ? c.source.join('') : c.source)).join('\n');
      assert.ok(src.includes("from '..'"), 'notebooks use the library');
      assert.ok(!/Math\.random/.test(src), 'seeded randomness only');
    });
  }
});

describe('notebooks (executed with Jupyter, checked in Chromium)', () => {
  const python = tools.findPython();
  const chrome = tools.findChromium();
  const missing = [
    ...(python ? [] : [`Jupyter (nbconvert + nbclient): ${tools.JUPYTER_APT}`]),
    ...(chrome ? [] : [`Chromium: ${tools.CHROMIUM_APT}`]),
  ];
  const built = fs.existsSync(path.join(ROOT, 'dist', 'src', 'index.js'));

  it('every notebook runs in quick mode and every figure renders', { timeout: 25 * 60_000, skip: !process.env.CI && missing.length ? `needs ${missing.join('; ')}` : false }, async () => {
    if (missing.length) assert.fail(`the notebook test needs tools that are not installed — install them:\n  ${missing.join('\n  ')}`);
    assert.ok(built, "dist/ is missing: run 'npm run build' (npm test does) before this test");
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'notebooks.js')], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, IBOTLAB_QUICK: '1' },
      maxBuffer: 64 * 1024 * 1024,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `notebook run failed:\n${out.slice(-6000)}`);
    const summary = JSON.parse(fs.readFileSync(path.join(ROOT, '.cache', 'notebooks', 'summary.json'), 'utf8')) as {
      results: Array<{ name: string; ok: boolean; figures: number; rendered: number }>;
    };
    assert.equal(summary.results.length, notebooks.length);
    for (const res of summary.results) {
      assert.ok(res.ok, `${res.name} failed`);
      assert.ok(res.figures > 0 && res.rendered === res.figures, `${res.name}: ${res.rendered}/${res.figures} figures rendered`);
      assert.ok(fs.statSync(path.join(ROOT, '.cache', 'notebooks', 'screenshots', `${res.name}.png`)).size > 10_000);
    }
    // Quick mode builds 06's untrained model with a head (7 figures); the loaded-weights path is next.
    assert.equal(summary.results.find((x) => x.name === '06-pretrained-vit')?.figures, 7);
  });

  it('06-pretrained-vit on a weights file (the reference ViT: 1 channel, 4 heads, no head weights)', { timeout: 5 * 60_000, skip: !process.env.CI && missing.length ? `needs ${missing.join('; ')}` : false }, async () => {
    if (missing.length) assert.fail(`the notebook test needs tools that are not installed — install them:\n  ${missing.join('\n  ')}`);
    const weights = path.join(ROOT, 'test', 'fixtures', 'reference', 'vit.safetensors');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'notebooks.js'), '06'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, IBOTLAB_QUICK: '1', IBOTLAB_WEIGHTS: weights, IBOTLAB_HEADS: '4' },
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(r.status, 0, `notebook run failed:\n${`${r.stdout}\n${r.stderr}`.slice(-6000)}`);
    const summary = JSON.parse(fs.readFileSync(path.join(ROOT, '.cache', 'notebooks', 'summary.json'), 'utf8')) as { results: Array<{ name: string; figures: number; rendered: number }> };
    // Photos, attention, thresholded attention, patch PCA, neighbours; no prototype figures without head weights.
    assert.deepEqual(summary.results.map((x) => [x.name, x.figures, x.rendered]), [['06-pretrained-vit', 5, 5]]);
    const executed = fs.readFileSync(path.join(ROOT, '.cache', 'notebooks', 'executed', '06-pretrained-vit.ipynb'), 'utf8');
    assert.match(executed, /2 blocks × width 32, 4 heads, 28 px input in 7×7 patches of 4 px/);
    assert.match(executed, /no iBOT head/);
  });
});
