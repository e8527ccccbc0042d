import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { REFERENCE_DIR, setup } from './helpers';
import { evalReport, parseProtocols, runEval } from '../src/cli/eval';
import { pretrainPreset } from '../src/train/presets';
import { saveCheckpoint } from '../src/train/checkpoint';
import { buildModel } from '../src/train/config';
import { loadTable, tableRows } from '../src/eval/results';

before(async () => {
  await setup();
});

const quiet = { log: () => undefined, progress: false };

test('end to end on raw pixels of a small class-balanced subset: every protocol, JSON output, saved table, no leaks', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-eval-'));
  const out: string[] = [];
  const n0 = tf.memory().numTensors;
  const code = await runEval({
    features: 'pixels',
    dataset: 'fashion-mnist-embedded',
    protocol: 'all',
    preset: 'fashion-mnist',
    json: true,
    perClass: { train: 30, test: 10 },
    cacheDir: path.join(dir, 'cache'),
    out: path.join(dir, 'pixels.csv'),
    write: (t) => out.push(t),
    ...quiet,
  });
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak across a full evaluation');
  assert.equal(code, 0);
  assert.equal(out.length, 1, 'one JSON object');
  const j = JSON.parse(out[0]) as { features: string; metrics: Record<string, number>; results: Array<{ protocol: string }> };
  assert.equal(j.features, 'pixels');
  assert.deepEqual([...new Set(j.results.map((r) => r.protocol))], ['knn', 'linear', 'logistic', 'semi', 'cluster']);
  // 300 train images: DINO's k = 10, 20, 100, 200 all fit.
  for (const k of [10, 20, 100, 200]) assert.ok(j.metrics[`knn/k=${k}/top1`] > 10, `k=${k} beats chance`);
  assert.ok(j.metrics['linear/best-of-sweep/top1'] > 50);
  assert.ok(j.metrics['logistic/selected/top1'] > 50);
  assert.equal(j.metrics['semi/logistic/10%/labelled'], 30); // round(0.1·300/10) = 3 per class
  assert.equal(j.metrics['cluster/kmeans/clusters'], 10);
  // The saved table holds the same numbers.
  const rows = tableRows(loadTable(path.join(dir, 'pixels.csv')));
  assert.equal(rows.find((r) => r.protocol === 'knn' && r.setting === 'k=20' && r.metric === 'top1')?.value, j.metrics['knn/k=20/top1']);
  // Pixel features were cached.
  assert.ok(fs.readdirSync(path.join(dir, 'cache')).some((f) => f.endsWith('.f32')));
  fs.rmSync(dir, { recursive: true });
});

test('a checkpoint and its architecture at random init: features cached in the run folder, head-argmax clustering, table output', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-eval-ckpt-'));
  const run = path.join(dir, 'run');
  const cfg = pretrainPreset('fashion-mnist', { epochs: 1 });
  const model = buildModel(cfg, 5);
  await saveCheckpoint(run, model, { config: cfg, step: 0, totalSteps: 1, itersPerEpoch: 1, rng: [1, 2, 3, 4], elapsedSec: 0 });
  model.dispose();
  const n0 = tf.memory().numTensors;
  const base = { checkpoint: run, dataset: 'fashion-mnist-embedded', protocol: 'knn,cluster', preset: 'fashion-mnist', json: false, perClass: { train: 10, test: 5 }, cacheDir: path.join(dir, 'cache'), ...quiet };
  const ck = await evalReport(base);
  assert.equal(ck.features, run);
  assert.deepEqual(
    ck.results.map((r) => (r.protocol === 'cluster' ? r.method : r.protocol)),
    ['knn', 'head-argmax', 'kmeans'],
  );
  assert.ok(fs.readdirSync(path.join(run, 'features')).length >= 2, 'train and test features cached under <checkpoint>/features');
  const rnd = await evalReport({ ...base, features: 'random' });
  assert.equal(rnd.features, 'random');
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak');
  const out: string[] = [];
  await runEval({ ...base, protocol: 'knn', write: (t) => out.push(t) });
  assert.match(out.join('\n'), /knn\s+k=20\s+top1/);
  fs.rmSync(dir, { recursive: true });
});

test('clear errors for a missing checkpoint, an unknown protocol, and an unknown dataset', async () => {
  const base = { dataset: 'fashion-mnist-embedded', protocol: 'knn', preset: 'fashion-mnist', json: false, ...quiet };
  await assert.rejects(evalReport(base), /no checkpoint given: pass --checkpoint runs\/<name>.*--features pixels/s);
  await assert.rejects(evalReport({ ...base, checkpoint: '/nonexistent/run' }), /does not exist\. Train one with 'ibotlab pretrain --out \/nonexistent\/run'/);
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-empty-'));
  await assert.rejects(evalReport({ ...base, checkpoint: empty }), /holds no complete checkpoint/);
  fs.rmSync(empty, { recursive: true });
  assert.throws(() => parseProtocols('knn,foo'), /unknown protocol 'foo'/);
  assert.deepEqual(parseProtocols('all'), ['knn', 'linear', 'logistic', 'semi', 'cluster']);
  await assert.rejects(evalReport({ ...base, features: 'pixels', dataset: 'no-such-set' }), /fashion-mnist-embedded/);
});

test('eval --weights: a timm-named .safetensors backbone on any dataset, resized to its input, every requested protocol', async () => {
  const file = path.join(REFERENCE_DIR, 'vit.safetensors');
  const out: string[] = [];
  const logs: string[] = [];
  const n0 = tf.memory().numTensors;
  const report = await evalReport({ weights: file, heads: 4, protocol: 'knn,cluster', preset: 'fashion-mnist', json: false, perClass: { train: 10, test: 5 }, cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-w-')), log: (t) => logs.push(t), progress: false, write: (t) => out.push(t) });
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak');
  assert.equal(report.features, 'vit.safetensors');
  assert.equal(report.dataset, 'fashion-mnist-embedded');
  assert.deepEqual(report.results.map((r) => r.protocol), ['knn', 'cluster']);
  assert.match(logs.join('\n'), /4 heads \(given\)/);
  await assert.rejects(evalReport({ weights: file, checkpoint: '/x', protocol: 'knn', preset: 'fashion-mnist', json: false, ...quiet }), /either --checkpoint DIR or --weights FILE, not both/);
});
