#!/usr/bin/env node
// @ts-check
/**
 * Execute every notebook headlessly with real Jupyter (nbconvert + the tslab
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
 *   .cache/notebooks/logs/NAME.log         nbconvert's output
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

/** Error outputs left in an executed notebook (nbconvert stops at the first, but be explicit). */
function errorOutputs(nbFile) {
  const nb = JSON.parse(fs.readFileSync(nbFile, 'utf8'));
  const errs = [];
  for (const c of nb.cells) for (const o of c.outputs ?? []) if (o.output_type === 'error') errs.push(`${o.ename}: ${o.evalue}`);
  return errs;
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
  let failed = 0;
  const t0 = Date.now();
  for (const f of files) {
    const name = f.replace(/\.ipynb$/, '');
    const src = path.join(NOTEBOOKS, f);
    const res = { name, ok: false, seconds: 0, figures: 0, rendered: 0, problems: /** @type {string[]} */ ([]) };
    results.push(res);
    const t = Date.now();
    process.stdout.write(`▶ ${name} … `);
    const exec = spawnSync(
      python,
      [
        '-m',
        'nbconvert',
        '--execute',
        '--to',
        'notebook',
        `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`,
        `--ExecutePreprocessor.timeout=${cellTimeout}`,
        '--output-dir',
        dirs.executed,
        src,
      ],
      { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    res.seconds = (Date.now() - t) / 1000;
    fs.writeFileSync(path.join(dirs.logs, `${name}.log`), `${exec.stdout}\n${exec.stderr}`);
    const executed = path.join(dirs.executed, f);
    if (exec.status !== 0 || !fs.existsSync(executed)) {
      res.problems.push(`execution failed (exit ${exec.status}); see .cache/notebooks/logs/${name}.log`);
      // nbconvert prints the failing cell and the kernel's error; show its end.
      process.stdout.write(`FAILED after ${res.seconds.toFixed(0)} s\n${String(exec.stderr).split('\n').slice(-40).join('\n')}\n`);
      failed++;
      continue;
    }
    res.problems.push(...errorOutputs(executed).map((e) => `error output: ${e}`));
    const html = spawnSync(python, ['-m', 'nbconvert', '--to', 'html', '--output-dir', dirs.html, executed], { cwd: ROOT, env, encoding: 'utf8' });
    const htmlFile = path.join(dirs.html, `${name}.html`);
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
    if (!res.ok) failed++;
    process.stdout.write(
      `${res.ok ? 'ok' : 'FAILED'} in ${res.seconds.toFixed(0)} s` +
        (chrome ? `, ${res.rendered}/${res.figures} figures rendered` : '') +
        (res.ok ? '' : `\n    ${res.problems.join('\n    ')}`) +
        '\n',
    );
  }
  const total = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(OUT, 'summary.json'), JSON.stringify({ quick: !args.full, totalSeconds: total, results }, null, 1));
  console.log(`${files.length - failed}/${files.length} notebooks passed in ${total.toFixed(0)} s; outputs in ${path.relative(ROOT, OUT)}/`);
  return failed ? 1 : 0;
}

process.exitCode = main();
