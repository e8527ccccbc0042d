/**
 * Binder (repo2docker) files: what can be checked without Binder's network.
 * postBuild runs in a fresh copy of the repository with `npm` replaced by a
 * recorder (npm ci / npm run build need the registry) and the real kernel
 * registration writing into a temporary Jupyter data directory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../src/data/registry';

const ROOT = packageRoot();
const BINDER = path.join(ROOT, 'binder');

describe('binder', () => {
  it('has the repo2docker files, with Node 22 pinned', async () => {
    for (const f of ['environment.yml', 'apt.txt', 'postBuild', 'start']) assert.ok(fs.existsSync(path.join(BINDER, f)), `binder/${f} is missing`);
    const env = fs.readFileSync(path.join(BINDER, 'environment.yml'), 'utf8');
    assert.match(env, /^\s*-\s*nodejs\s*=\s*22\b/m);
    assert.match(env, /conda-forge/);
    // repo2docker validates apt.txt lines as package names (text after '#' is ignored).
    for (const line of fs.readFileSync(path.join(BINDER, 'apt.txt'), 'utf8').split('\n')) {
      const pkg = line.split('#')[0].trim();
      if (pkg) assert.match(pkg, /^[a-z0-9.+-]+$/);
    }
    for (const f of ['postBuild', 'start']) {
      const mode = fs.statSync(path.join(BINDER, f)).mode;
      assert.ok(mode & 0o100, `binder/${f} must be executable (repo2docker runs it directly)`);
      const syntax = spawnSync('bash', ['-n', path.join(BINDER, f)], { encoding: 'utf8' });
      assert.equal(syntax.status, 0, syntax.stderr);
    }
  });

  it('start runs the session on wasm, the backend CI tests, unless told otherwise', async () => {
    const show = ['-c', 'echo "$IBOTLAB_BACKEND"'];
    const env = { ...process.env };
    delete env.IBOTLAB_BACKEND;
    assert.equal(spawnSync(path.join(BINDER, 'start'), ['bash', ...show], { encoding: 'utf8', env }).stdout.trim(), 'wasm');
    assert.equal(spawnSync(path.join(BINDER, 'start'), ['bash', ...show], { encoding: 'utf8', env: { ...env, IBOTLAB_BACKEND: 'cpu' } }).stdout.trim(), 'cpu');
  });

  it('postBuild runs cleanly in a fresh copy: npm ci without install scripts, one build, the kernel under the environment prefix', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-binder-'));
    try {
      const repo = path.join(tmp, 'repo');
      fs.mkdirSync(repo);
      for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(repo, f));
      fs.cpSync(BINDER, path.join(repo, 'binder'), { recursive: true });
      fs.cpSync(path.join(ROOT, 'scripts'), path.join(repo, 'scripts'), { recursive: true });
      // What `npm ci` would have installed: the real node_modules (tslab with its prebuilt zeromq).
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(repo, 'node_modules'), 'dir');
      const bin = path.join(tmp, 'bin');
      fs.mkdirSync(bin);
      const calls = path.join(tmp, 'npm-calls.txt');
      fs.writeFileSync(path.join(bin, 'npm'), `#!/usr/bin/env bash\necho "$*" >> ${JSON.stringify(calls)}\n`, { mode: 0o755 });
      const prefix = path.join(tmp, 'conda');
      const data = path.join(prefix, 'share', 'jupyter');
      const r = spawnSync(path.join(repo, 'binder', 'postBuild'), [], {
        cwd: repo,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}`, IBOTLAB_JUPYTER_PREFIX: prefix },
      });
      assert.equal(r.status, 0, `postBuild failed:\n${r.stdout}\n${r.stderr}`);
      // No install scripts (no libtensorflow download, no `prepare` build), then exactly one build.
      assert.deepEqual(fs.readFileSync(calls, 'utf8').trim().split('\n'), ['ci --ignore-scripts --no-audit --no-fund', 'run build']);
      const specFile = path.join(data, 'kernels', 'tslab', 'kernel.json');
      const spec = JSON.parse(fs.readFileSync(specFile, 'utf8')) as { argv: string[]; language: string };
      assert.equal(spec.language, 'typescript');
      assert.equal(spec.argv[1], path.join(repo, 'node_modules', 'tslab', 'bin', 'tslab'));
      assert.ok(fs.existsSync(spec.argv[1]));
      assert.deepEqual(spec.argv.slice(2), ['kernel', '--config-path', '{connection_file}']);

      // When Jupyter is installed here, it must find the kernel where postBuild put it.
      const py = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import jupyter_client'], { encoding: 'utf8' }).status === 0);
      if (py) {
        const found = spawnSync(py, ['-c', 'from jupyter_client.kernelspec import KernelSpecManager as K; import json; print(json.dumps(K().find_kernel_specs()))'], {
          encoding: 'utf8',
          // Jupyter searches <sys.prefix>/share/jupyter itself; JUPYTER_PATH stands in for that prefix here.
          env: { ...process.env, JUPYTER_DATA_DIR: path.join(tmp, 'empty-home'), JUPYTER_PATH: data },
        });
        assert.equal(found.status, 0, found.stderr);
        const specs = JSON.parse(found.stdout) as Record<string, string>;
        assert.equal(specs.tslab, path.dirname(specFile));
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
