#!/usr/bin/env node
// @ts-check
/**
 * `npm run lab`: start Jupyter (JupyterLab if installed, else the classic
 * Notebook that Debian packages as jupyter-notebook) on notebooks/, with the
 * tslab TypeScript kernel registered project-locally through JUPYTER_PATH.
 * Extra arguments go to Jupyter, e.g. `npm run lab -- --no-browser --port 8890`.
 * IBOTLAB_QUICK=1 npm run lab  runs the notebooks in smoke mode.
 */
'use strict';
const path = require('node:path');
const { spawn } = require('node:child_process');
const { ROOT, LAB_APT, installKernel, findPython, findFrontEnd, jupyterEnv } = require('./jupyter');

const kernel = installKernel();
const fe = findFrontEnd(findPython());
if (!fe) {
  console.error(`No Jupyter front-end found. Install one: ${LAB_APT}`);
  process.exit(2);
}
const dir = path.join(ROOT, 'notebooks');
const args =
  fe.module === 'jupyterlab'
    ? ['-m', 'jupyterlab', `--ServerApp.root_dir=${dir}`]
    : ['-m', 'notebook', `--notebook-dir=${dir}`];
// Containers often run as root, which Jupyter refuses without this flag.
if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--allow-root');
console.log(`tslab kernel: ${kernel}\nstarting ${fe.module} (${fe.python}) in ${dir}`);
const child = spawn(fe.python, [...args, ...process.argv.slice(2)], { cwd: dir, env: jupyterEnv(), stdio: 'inherit' });
// Ctrl-C reaches Jupyter directly (same process group); Jupyter decides whether to stop. Forward SIGTERM.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
