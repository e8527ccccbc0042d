#!/usr/bin/env node
// @ts-check
/**
 * Execute every notebook headlessly with real Jupyter (nbclient + the tslab
 * kernel), export each to HTML, open it in headless Chromium and check that
 * every figure rendered; keep screenshots. Fails (exit 1) on any cell error
 * or missing figure.
 *
 *   node scripts/notebooks.js [NAME…] [--full] [--no-browser] [--keep-runs]
 *
 * Quick mode (IBOTLAB_QUICK=1) is the default; --full runs the real thing.
 * Runs go to .cache/notebooks/runs (IBOTLAB_RUNS), never to runs/, and are
 * cleared first unless --keep-runs. Outputs:
 *   .cache/notebooks/executed/NAME.ipynb   executed notebooks
 *   .cache/notebooks/html/NAME.html        HTML exports
 *   .cache/notebooks/screenshots/NAME.png  full-page screenshots
 *   .cache/notebooks/logs/NAME.log         the executor's output
 *   .cache/notebooks/summary.json
 * Needs `npm run build` first (notebooks import the built library).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { ROOT, JUPYTER_APT, CHROMIUM_APT, installKernel, findPython, findChromium, jupyterEnv, KERNEL_NAME } = require('./jupyter');
const { checkPage } = require('./browser-check');

const NOTEBOOKS = path.join(ROOT, 'notebooks');
const OUT = path.join(ROOT, '.cache', 'notebooks');

function parseArgs(argv) {
  const names = argv.filter((a) => !a.startsWith('--'));
  return {
    names,
    full: argv.includes('--full'),
    browser: !argv.includes('--no-browser'),
    keepRuns: argv.includes('--keep-runs'),
  };
}

/** Minimum figure count a notebook declares in its metadata (`ibotlab.min_figures`). */
function declaredFigures(nbFile) {
  const nb = JSON.parse(fs.readFileSync(nbFile, 'utf8'));
  const m = nb.metadata && nb.metadata.ibotlab && nb.metadata.ibotlab.min_figures;
  return typeof m === 'number' ? m : 0;
}

/**
 * Executes a notebook with nbclient, cell by cell, and always writes it out — also when a cell
 * fails, so the kernel's message is kept (tslab sends it as stderr text; its error reply is empty).
 * Prints {"failed": index | null} on stdout. Args: source, destination, timeout (s), kernel name.
 */
const EXECUTE_PY = `
import json, os, sys, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
src, dst, timeout, kernel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
nb = nbformat.read(src, as_version=4)
client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}})
failed = None
try:
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, i)
            except CellExecutionError:
                failed = i
                break
finally:
    nbformat.write(nb, dst)
print(json.dumps({"failed": failed}))
sys.exit(1 if failed is not None else 0)
`;

/** What a failed cell printed: its first lines of source and the kernel's stderr. */
function failedCellReport(nbFile, index) {
  const nb = JSON.parse(fs.readFileSync(nbFile, 'utf8'));
  const c = nb.cells[index];
  const text = (v) => (Array.isArray(v) ? v.join('') : String(v ?? ''));
  const stderr = (c.outputs ?? [])
    .filter((o) => (o.output_type === 'stream' && o.name === 'stderr') || o.output_type === 'error')
    .map((o) => (o.output_type === 'error' ? `${o.ename}: ${o.evalue}` : text(o.text)))
    .join('')
    .trim()
    .split('\n')
    .filter((l) => !/^\s+at .*(node:vm|tslab\/dist)/.test(l))
    .slice(0, 15)
    .join('\n');
  return `cell ${index}:\n${text(c.source).split('\n').slice(0, 4).join('\n')}\n---\n${stderr || '(no message from the kernel)'}`;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const python = findPython();
  if (!python) {
    console.error(`Jupyter is not installed (need nbconvert, nbclient, jupyter_client). Install: ${JUPYTER_APT}`);
    return 2;
  }
  const chrome = args.browser ? findChromium() : undefined;
  if (args.browser && !chrome) {
    console.error(`Chromium is not installed (needed for the figure check). Install: ${CHROMIUM_APT} — or pass --no-browser`);
    return 2;
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'index.js'))) {
    console.error("the library is not built (dist/src/index.js missing): run 'npm run build' first");
    return 2;
  }
  installKernel();
  let files = fs.readdirSync(NOTEBOOKS).filter((f) => f.endsWith('.ipynb')).sort();
  if (args.names.length) {
    files = files.filter((f) => args.names.some((n) => f.startsWith(n)));
    if (!files.length) {
      console.error(`no notebook matches ${args.names.join(', ')}`);
      return 2;
    }
  }
  const dirs = Object.fromEntries(['executed', 'html', 'screenshots', 'logs', 'runs'].map((d) => [d, path.join(OUT, d)]));
  if (!args.keepRuns) fs.rmSync(dirs.runs, { recursive: true, force: true });
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const env = jupyterEnv({
    IBOTLAB_QUICK: args.full ? '0' : '1',
    IBOTLAB_RUNS: dirs.runs,
    // Keep Jupyter's own files out of $HOME and away from a user's configuration.
    JUPYTER_CONFIG_DIR: path.join(OUT, 'jupyter-config'),
    JUPYTER_RUNTIME_DIR: path.join(OUT, 'jupyter-runtime'),
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
  });
  const cellTimeout = args.full ? 3600 : 600;
  const results = [];
  let failedCount = 0;
  const t0 = Date.now();
  for (const f of files) {
    const name = f.replace(/\.ipynb$/, '');
    const src = path.join(NOTEBOOKS, f);
    const res = { name, ok: false, seconds: 0, figures: 0, rendered: 0, problems: /** @type {string[]} */ ([]) };
    results.push(res);
    const t = Date.now();
    process.stdout.write(`▶ ${name} … `);
    const executed = path.join(dirs.executed, f);
    const exec = spawnSync(python, ['-c', EXECUTE_PY, src, executed, String(cellTimeout), KERNEL_NAME], {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    res.seconds = (Date.now() - t) / 1000;
    fs.writeFileSync(path.join(dirs.logs, `${name}.log`), `${exec.stdout}\n${exec.stderr}`);
    let failed = null;
    try {
      failed = JSON.parse(String(exec.stdout).trim().split('\n').pop() || '{}').failed ?? null;
    } catch {
      failed = null;
    }
    if (exec.status !== 0 || !fs.existsSync(executed)) {
      const detail = failed !== null && fs.existsSync(executed) ? failedCellReport(executed, failed) : String(exec.stderr).split('\n').slice(-30).join('\n');
      res.problems.push(`execution failed; see .cache/notebooks/logs/${name}.log\n${detail}`);
      process.stdout.write(`FAILED after ${res.seconds.toFixed(0)} s\n${detail}\n`);
      failed = failed ?? -1;
    }
    if (failed !== null) {
      failedCount++;
      if (!fs.existsSync(executed)) continue;
    }
    const html = spawnSync(python, ['-m', 'nbconvert', '--to', 'html', '--output-dir', dirs.html, executed], { cwd: ROOT, env, encoding: 'utf8' });
    const htmlFile = path.join(dirs.html, `${name}.html`);
    if (failed !== null) continue;
    if (html.status !== 0 || !fs.existsSync(htmlFile)) {
      res.problems.push(`HTML export failed: ${String(html.stderr).slice(-1000)}`);
    } else if (chrome) {
      try {
        const report = checkPage(htmlFile, { chrome, screenshot: path.join(dirs.screenshots, `${name}.png`), minFigures: declaredFigures(src) });
        res.figures = report.figures;
        res.rendered = report.rendered;
        res.problems.push(...report.problems);
      } catch (e) {
        res.problems.push(`browser check failed: ${/** @type {Error} */ (e).message}`);
      }
    }
    res.ok = res.problems.length === 0;
    if (!res.ok) failedCount++;
    process.stdout.write(
      `${res.ok ? 'ok' : 'FAILED'} in ${res.seconds.toFixed(0)} s` +
        (chrome ? `, ${res.rendered}/${res.figures} figures rendered` : '') +
        (res.ok ? '' : `\n    ${res.problems.join('\n    ')}`) +
        '\n',
    );
  }
  const total = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(OUT, 'summary.json'), JSON.stringify({ quick: !args.full, totalSeconds: total, results }, null, 1));
  console.log(`${files.length - failedCount}/${files.length} notebooks passed in ${total.toFixed(0)} s; outputs in ${path.relative(ROOT, OUT)}/`);
  return failedCount ? 1 : 0;
}

process.exitCode = main();
