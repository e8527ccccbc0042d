import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { readSafetensors } from '../src/io/safetensors';

const repo = path.resolve(__dirname, '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `ibotlab-cli-${tag}-`));
const args = (out: string) => ['pretrain', '--preset', 'tiny', '--subset', '96', '--epochs', '6', '--checkpoint-every', '2', '--no-eval', '--out', out];

function runSync(a: string[]) {
  return spawnSync(process.execPath, [cli, ...a], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
}

describe('ibotlab pretrain (CLI)', () => {
  it('a run killed with SIGKILL resumes with --resume and ends with the same weights as an uninterrupted run', async () => {
    const a = tmp('a');
    const ra = runSync(args(a));
    assert.equal(ra.status, 0, ra.stderr);
    assert.match(ra.stderr, /finished at step 36\/36/);

    const b = tmp('b');
    const child = spawn(process.execPath, [cli, ...args(b)], { cwd: repo, stdio: 'ignore' });
    const state = path.join(b, 'checkpoint.json');
    // Kill as soon as a checkpoint from step ≥ 4 is on disk: mid-run, between any two writes.
    const killedAt = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        try {
          const step = JSON.parse(fs.readFileSync(state, 'utf8')).step as number;
          if (step >= 4) {
            child.kill('SIGKILL');
            clearInterval(timer);
            resolve(step);
          }
        } catch {
          /* not written yet */
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(timer);
        reject(new Error('the run ended before it could be killed'));
      });
    });
    await new Promise((r) => child.on('exit', r));
    const st = JSON.parse(fs.readFileSync(state, 'utf8'));
    assert.ok(st.step >= killedAt && st.step < 36, `killed at step ${st.step}`);

    // `--out DIR --resume` needs no recipe flags: the preset (tiny) and length (6 epochs) come from the checkpoint.
    const rb = runSync(['pretrain', '--subset', '96', '--checkpoint-every', '2', '--no-eval', '--out', b, '--resume']);
    assert.equal(rb.status, 0, rb.stderr);
    assert.match(rb.stderr, /resuming at step \d+; pretraining tiny/);
    const ta = readSafetensors(path.join(a, 'checkpoint.safetensors')).tensors;
    const tb = readSafetensors(path.join(b, 'checkpoint.safetensors')).tensors;
    for (const k of Object.keys(ta)) assert.deepEqual(tb[k].data, ta[k].data, `${k} differs`);
    assert.ok(fs.existsSync(path.join(b, 'teacher_backbone.safetensors')));
  });

  it('--resume with other data or recipe flags: the flags are named as ignored, other data is refused', () => {
    const out = tmp('resume');
    assert.equal(runSync(['pretrain', '--preset', 'tiny', '--subset', '64', '--epochs', '1', '--no-eval', '--out', out]).status, 0);
    const r = runSync(['pretrain', '--preset', 'fashion-mnist', '--epochs', '9', '--subset', '96', '--no-eval', '--out', out, '--resume']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /ignoring --preset, --epochs/);
    assert.match(r.stderr, /cannot resume .*: the run took 4 steps per epoch, but .* \(96 images, batch 16\) gives 6; resume with the run's own data/);
  });

  it('the closing k-NN shows the run next to the untrained network and raw pixels, and saves all three', () => {
    const out = tmp('eval');
    const r = runSync(['pretrain', '--preset', 'tiny', '--subset', '200', '--epochs', '1', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const m = /this run's teacher \(step (\d+)\)\s+([\d.]+)%\n\s+the same ViT untrained\s+([\d.]+)%\n\s+raw pixels\s+([\d.]+)%/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'knn.json'), 'utf8'));
    assert.equal(saved.step, Number(m[1]));
    assert.equal(saved.top1.toFixed(2), m[2]);
    assert.equal(saved.untrainedTop1.toFixed(2), m[3]);
    assert.equal(saved.pixelsTop1.toFixed(2), m[4]);
    assert.equal(saved.numTrain, 200);
    // 200 training images of 10 balanced classes: every entry is far above chance (10%) and at most 100.
    for (const v of [saved.top1, saved.untrainedTop1, saved.pixelsTop1]) assert.ok(v > 30 && v <= 100, String(v));
    assert.match(r.stdout, new RegExp(`npx ibotlab eval --checkpoint ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('a missing dataset fails with the places looked and how to get it', async () => {
    const r = runSync(['pretrain', '--dataset', 'cifar10', '--data-path', path.join(tmp('none'), 'nothing-here'), '--out', tmp('x')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cifar10/);
    assert.match(r.stderr, /fetch\.sh|download|data-path|path/i);
  });

  it('an unknown preset or a bad number is a clear error', async () => {
    const r1 = runSync(['pretrain', '--preset', 'nope', '--out', tmp('y')]);
    assert.equal(r1.status, 1);
    assert.match(r1.stderr, /unknown preset 'nope'.*fashion-mnist/);
    const r2 = runSync(['pretrain', '--epochs', 'many']);
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /--epochs expects a number/);
  });
});
