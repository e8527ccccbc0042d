#!/usr/bin/env node
// @ts-check
/**
 * Jupyter plumbing shared by `npm run lab`, `npm run notebooks:test` and
 * Binder's postBuild: find a Python with Jupyter, register the tslab
 * (TypeScript) kernel, find a headless Chromium.
 *
 *   node scripts/jupyter.js           register the kernel project-locally (.cache/jupyter, used via JUPYTER_PATH)
 *   node scripts/jupyter.js --user    register it in the user's Jupyter data dir (to use it from any Jupyter)
 *   node scripts/jupyter.js --sys-prefix  register it under the Python environment's prefix (Binder: a hub
 *                                     that mounts a persistent home over ~/.local still finds it there)
 *   node scripts/jupyter.js --check   report which tools are present
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
/** Project-local Jupyter data folder: `kernels/tslab/kernel.json` lives below it. */
const LOCAL_JUPYTER = path.join(ROOT, '.cache', 'jupyter');
const KERNEL_NAME = 'tslab';

const JUPYTER_APT = 'apt-get install --no-install-recommends python3-nbclient jupyter-core jupyter-nbconvert';
const LAB_APT = 'apt-get install --no-install-recommends jupyter-notebook (or: pip install jupyterlab)';
const CHROMIUM_APT = 'apt-get install --no-install-recommends chromium';

/** tslab's command-line entry (not the .bin symlink: it is started with this same node). */
function tslabBin() {
  const bin = path.join(ROOT, 'node_modules', 'tslab', 'bin', 'tslab');
  if (!fs.existsSync(bin)) throw new Error(`tslab is not installed (${bin} missing): run 'npm ci' first`);
  return bin;
}

/** The kernel spec: tslab started by this node binary with the connection file Jupyter passes. */
function kernelSpec() {
  return {
    argv: [process.execPath, tslabBin(), 'kernel', '--config-path', '{connection_file}'],
    display_name: 'TypeScript (tslab)',
    language: 'typescript',
    metadata: { ibotlab: { root: ROOT } },
  };
}

/** Write kernels/tslab/kernel.json below `dataDir`; returns the file written. */
function installKernel(dataDir = LOCAL_JUPYTER) {
  const dir = path.join(dataDir, 'kernels', KERNEL_NAME);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'kernel.json');
  fs.writeFileSync(file, JSON.stringify(kernelSpec(), null, 1) + '\n');
  return file;
}

/** Runs python code; returns trimmed stdout or undefined on failure. */
function pyOut(python, code) {
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * The Python to run Jupyter with: $IBOTLAB_PYTHON, else Debian's /usr/bin/python3 (where apt puts
 * nbconvert; a python3 earlier on PATH may be another installation), else python3 on PATH.
 */
function findPython() {
  const candidates = [process.env.IBOTLAB_PYTHON, '/usr/bin/python3', 'python3'].filter((x) => !!x);
  for (const p of candidates) {
    if (pyOut(p, 'import nbclient, nbconvert, jupyter_client; print("ok")') === 'ok') return p;
  }
  return undefined;
}

/** The user's Jupyter data dir: $JUPYTER_DATA_DIR, else what jupyter_core says, else ~/.local/share/jupyter. */
function userDataDir(python) {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  for (const p of [python, 'python3', '/usr/bin/python3'].filter((x) => !!x)) {
    const d = pyOut(p, 'from jupyter_core.paths import jupyter_data_dir; print(jupyter_data_dir())');
    if (d) return d;
  }
  return path.join(os.homedir(), '.local', 'share', 'jupyter');
}

/**
 * `<prefix>/share/jupyter` of the Python environment Jupyter runs in (Jupyter always searches it):
 * $IBOTLAB_JUPYTER_PREFIX, else that Python's sys.prefix (the conda prefix on Binder).
 */
function sysPrefixDataDir(python) {
  if (process.env.IBOTLAB_JUPYTER_PREFIX) return path.join(process.env.IBOTLAB_JUPYTER_PREFIX, 'share', 'jupyter');
  for (const p of [python, 'python3', '/usr/bin/python3'].filter((x) => !!x)) {
    const prefix = pyOut(p, 'import sys; print(sys.prefix)');
    if (prefix) return path.join(prefix, 'share', 'jupyter');
  }
  throw new Error('no Python found to read sys.prefix from; set IBOTLAB_JUPYTER_PREFIX');
}

/** Environment for Jupyter processes that see the project-local kernel (prepended to any JUPYTER_PATH). */
function jupyterEnv(extra = {}) {
  const prev = process.env.JUPYTER_PATH;
  return { ...process.env, JUPYTER_PATH: prev ? `${LOCAL_JUPYTER}${path.delimiter}${prev}` : LOCAL_JUPYTER, ...extra };
}

/** A headless-capable Chromium/Chrome: $IBOTLAB_CHROMIUM, then the usual names. */
function findChromium() {
  const names = [process.env.IBOTLAB_CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter((x) => !!x);
  for (const n of names) {
    const r = spawnSync(n, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return n;
  }
  return undefined;
}

/** Which Jupyter front-end is importable: 'jupyterlab', 'notebook' or undefined. */
function findFrontEnd(python) {
  const cands = [python, '/usr/bin/python3', 'python3'].filter((x) => !!x);
  for (const p of cands) {
    if (pyOut(p, 'import jupyterlab; print("ok")') === 'ok') return { python: p, module: 'jupyterlab' };
  }
  for (const p of cands) {
    if (pyOut(p, 'import notebook; print("ok")') === 'ok') return { python: p, module: 'notebook' };
  }
  return undefined;
}

module.exports = {
  ROOT,
  LOCAL_JUPYTER,
  KERNEL_NAME,
  JUPYTER_APT,
  LAB_APT,
  CHROMIUM_APT,
  kernelSpec,
  installKernel,
  findPython,
  userDataDir,
  sysPrefixDataDir,
  jupyterEnv,
  findChromium,
  findFrontEnd,
};

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.includes('--check')) {
    const py = findPython();
    const chrome = findChromium();
    const fe = findFrontEnd(py);
    console.log(`jupyter (nbconvert/nbclient): ${py ?? `missing — ${JUPYTER_APT}`}`);
    console.log(`front-end:                    ${fe ? `${fe.module} (${fe.python})` : `missing — ${LAB_APT}`}`);
    console.log(`chromium:                     ${chrome ?? `missing — ${CHROMIUM_APT}`}`);
    process.exit(py && chrome ? 0 : 1);
  }
  const dataDir = args.includes('--sys-prefix') ? sysPrefixDataDir(findPython()) : args.includes('--user') ? userDataDir(findPython()) : LOCAL_JUPYTER;
  const file = installKernel(dataDir);
  console.log(`tslab kernel registered: ${file}`);
}
