/**
 * Wrong input, as a new user would give it, and what they get back: one line
 * that names the problem and what to do, a non-zero exit, and nothing
 * half-written. The command line first (spawned as a user runs it), then the
 * library entry points a notebook calls first.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { setup } from './helpers';
import { initBackend } from '../src/backend';
import { loadDataset } from '../src/data/registry';
import { readSafetensors } from '../src/io/safetensors';
import { loadPretrainedViT } from '../src/model/pretrained';
import { pretrainPreset } from '../src/train/presets';
import { buildModel } from '../src/train/config';
import { loadRun, saveCheckpoint } from '../src/train/checkpoint';

const repo = path.resolve(__dirname, '..', '..');
const bin = path.join(repo, 'bin', 'ibotlab.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-errors-'));
const at = (...p: string[]): string => path.join(tmp, ...p);

function ibotlab(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: repo, encoding: 'utf8', timeout: 120_000, env: { ...process.env, IBOTLAB_BACKEND: 'wasm' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The error line the CLI prints (it starts with 'ibotlab: '), without the line(s) the backend announces. */
const errorLine = (stderr: string): string => stderr.split('\n').find((l) => l.startsWith('ibotlab: ')) ?? '';

before(async () => {
  await setup();
  // A truncated weights file, an image folder with no images, one with images of mixed sizes,
  // and a run whose tensors come from another architecture than its config says.
  fs.writeFileSync(at('truncated.safetensors'), fs.readFileSync(path.join(repo, 'test', 'fixtures', 'reference', 'vit.safetensors')).subarray(0, 5000));
  for (const split of ['train', 'test']) fs.mkdirSync(at('no-images', split, 'shirts'), { recursive: true });
  for (const split of ['train', 'test']) {
    for (const [c, sizes] of [['dots', [[20, 30], [64, 48]]], ['bars', [[28, 28], [100, 17]]]] as const) {
      fs.mkdirSync(at('mixed', split, c), { recursive: true });
      for (const [i, [w, h]] of sizes.entries()) {
        await sharp({ create: { width: w, height: h, channels: 3, background: { r: 40 * i, g: c === 'dots' ? 200 : 20, b: 90 } } }).png().toFile(at('mixed', split, c, `${i}.png`));
      }
    }
  }
  const tiny = pretrainPreset('tiny');
  const model = buildModel(tiny);
  await saveCheckpoint(at('other-arch'), model, { config: pretrainPreset('fashion-mnist'), step: 1, totalSteps: 2, itersPerEpoch: 1, rng: [1, 2, 3, 4], elapsedSec: 0 });
  model.dispose();
  fs.mkdirSync(at('empty-run'));
});

describe('the command line: bad input gives one line naming the problem and the fix, a non-zero exit, nothing half-written', () => {
  const rows: Array<{ what: string; args: string[]; message: RegExp; exit?: number; absent?: string }> = [
    { what: 'unknown preset', args: ['pretrain', '--preset', 'nope', '--out', at('r1')], message: /unknown preset 'nope'; choose one of fashion-mnist, /, absent: at('r1') },
    { what: 'unknown dataset', args: ['pretrain', '--dataset', 'no-such-set', '--out', at('r2')], message: /Dataset 'no-such-set' \(split 'train'\) not found/, absent: at('r2') },
    { what: 'unknown protocol', args: ['eval', '--features', 'pixels', '--protocol', 'knn,foo'], message: /unknown protocol 'foo'; choose from knn, linear, logistic, semi, cluster/ },
    { what: 'a checkpoint folder from another architecture', args: ['eval', '--checkpoint', at('other-arch'), '--protocol', 'knn'], message: /has shape \[.*\] but this model expects \[.*\]; the checkpoint was made for another configuration/ },
    { what: 'a truncated .safetensors', args: ['eval', '--weights', at('truncated.safetensors'), '--protocol', 'knn'], message: /truncated\.safetensors: not a valid \.safetensors file .*the file is truncated.*download it again/ },
    { what: 'a folder with no images', args: ['pretrain', '--preset', 'cifar10', '--dataset', 'no-images', '--data-path', at('no-images'), '--out', at('r3')], message: /contains no images with extensions \.png, \.jpg, \.jpeg\. Add images or remove the folder/, absent: at('r3') },
    { what: 'a number flag given a word', args: ['pretrain', '--epochs', 'many'], message: /--epochs expects a number, got 'many'/ },
    { what: 'a whole-number flag given a fraction', args: ['pretrain', '--batch-size', '2.5'], message: /--batch-size expects a whole number, got '2\.5'/ },
    { what: 'an option the command does not take', args: ['pretrain', '--protocol', 'knn'], message: /Unknown option '--protocol'.*ibotlab pretrain --help/ },
    { what: '--resume with no checkpoint', args: ['pretrain', '--resume', '--out', at('empty-run')], message: /--resume: there is no checkpoint in '.*empty-run' to continue.*start the run without --resume/ },
    { what: 'an unwritable --out', args: ['pretrain', '--preset', 'tiny', '--epochs', '1', '--out', '/proc/ibotlab-run'], message: /cannot write the run folder '\/proc\/ibotlab-run' \(\w+\); pass --out with a folder you can write to/ },
    { what: 'an unknown backend', args: ['info', '--backend', 'gpu'], message: /Unknown TensorFlow\.js backend 'gpu' in the backend option: use one of auto, tensorflow, webgpu, wasm, cpu/ },
    { what: 'unknown weights', args: ['weights', 'fetch', 'vit_huge'], message: /vit_huge.*vit_small_patch16_224\.dino/ },
    { what: 'a missing checkpoint folder', args: ['eval', '--checkpoint', at('nowhere')], message: /checkpoint folder '.*nowhere' does not exist\. Train one with 'ibotlab pretrain --out/ },
  ];
  for (const row of rows) {
    it(row.what, async () => {
      const r = ibotlab(row.args);
      assert.equal(r.status, row.exit ?? 1, `exit ${r.status}; stderr:\n${r.stderr}`);
      assert.match(errorLine(r.stderr), row.message);
      if (row.absent) assert.equal(fs.existsSync(row.absent), false, `${row.absent} was left behind`);
    });
  }

  it('an unknown command exits 2 with the usage', async () => {
    const r = ibotlab(['pretrian']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'pretrian'/);
    assert.match(r.stderr, /usage: ibotlab <command>/);
  });

  it('images of mixed sizes are not an error: each is resized to the model input', async () => {
    const r = ibotlab(['eval', '--features', 'pixels', '--preset', 'cifar10', '--dataset', 'mixed', '--data-path', at('mixed'), '--protocol', 'knn', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { results: Array<{ numTrain: number }> };
    assert.equal(j.results[0].numTrain, 4);
  });
});

describe('library entry points: errors that say what to do', () => {
  it('initBackend, loadDataset, readSafetensors, loadPretrainedViT, pretrainPreset, loadRun', async () => {
    await assert.rejects(initBackend({ backend: 'gpu' as never }), /Unknown TensorFlow\.js backend 'gpu'/);
    await assert.rejects(initBackend({ threads: 0 }), /threads must be a positive integer/);
    await assert.rejects(loadDataset('no-such-set', { split: 'train' }), /Dataset 'no-such-set'.*not found[\s\S]*To fix/);
    await assert.rejects(loadDataset('mixed', { split: 'train', path: at('mixed') }), /image folder.*pass imageSize/);
    assert.throws(() => readSafetensors(at('truncated.safetensors')), /file is truncated/);
    assert.throws(() => readSafetensors(at('nothing.safetensors')), /no such file/);
    await assert.rejects(loadPretrainedViT(at('truncated.safetensors')), /truncated/);
    assert.throws(() => pretrainPreset('imagenet-1k'), /unknown preset 'imagenet-1k'; choose one of/);
    assert.throws(() => loadRun(at('empty-run')), /no checkpoint in .*empty-run.*train first with 'ibotlab pretrain --out/);
  });
});
