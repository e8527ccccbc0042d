import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../src/util/rng';
import { knnClassify, knnClassifyMulti } from '../src/eval/knn';
import { checkKnnFixture } from '../src/reference/eval-checks';
import { REFERENCE_DIR, blobCentres, blobs } from './helpers';

before(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
});

const FIXTURE = path.join(REFERENCE_DIR, 'knn.json');

test('knn.json fixture: every case passes (predictions and vote sums)', async () => {
  const before = tf.memory().numTensors;
  const results = await checkKnnFixture(JSON.parse(fs.readFileSync(FIXTURE, 'utf8')));
  assert.ok(results.length > 0);
  for (const r of results) assert.ok(r.passed, `${r.name}: ${r.detail ?? ''} (rel ${r.maxRelErr})`);
  assert.equal(tf.memory().numTensors, before);
});

test('hand-derived votes: each neighbour adds exp(cos/T) to its class', async () => {
  const train = tf.tensor2d([
    [1, 0],
    [0, 1],
    [0.8, 0.6],
    [-1, 0],
  ]);
  const test = tf.tensor2d([
    [2, 0], // unnormalised on purpose: cosine to the rows is 1, 0, 0.8, −1
    [0, 1],
  ]);
  const T = 0.5;
  const r = await knnClassify(train, [0, 1, 1, 0], test, { k: 2, temperature: T, returnVotes: true, testLabels: [0, 0] });
  // Test 0: neighbours row 0 (cos 1, class 0) and row 2 (cos 0.8, class 1).
  // Test 1: neighbours row 1 (cos 1, class 1) and row 2 (cos 0.6, class 1).
  const expected = [Math.exp(1 / T), Math.exp(0.8 / T), 0, Math.exp(1 / T) + Math.exp(0.6 / T)];
  const votes = r.votes as Float32Array;
  expected.forEach((e, i) => assert.ok(Math.abs(votes[i] - e) <= 1e-5 * Math.max(1, e), `votes[${i}] ${votes[i]} vs ${e}`));
  assert.deepEqual([...r.predictions], [0, 1]);
  assert.equal(r.top1, 50);
  assert.equal(r.top5, 100); // only 2 classes: the true one is always in the top min(5, k)
  tf.dispose([train, test]);
});

test('separable clusters: 100% top-1; chunked equals unchunked; multi-k equals single-k; no leaks', async () => {
  const rng = new Rng(7);
  const tr = blobs(rng, blobCentres(rng, 6, 24, 'unit'), 40, 0.05);
  const te = blobs(rng, tr.centres, 10, 0.05);
  const train = tf.tensor2d(tr.rows);
  const test = tf.tensor2d(te.rows);
  const start = tf.memory().numTensors;
  const ks = [1, 5, 20, 40];
  const full = await knnClassifyMulti(train, tr.labels, test, ks, { testLabels: te.labels, returnVotes: true, chunkSize: 1000 });
  for (const r of full) {
    assert.equal(r.top1, 100, `k=${r.k}`);
    assert.equal(r.top5, 100, `k=${r.k}`);
    assert.deepEqual([...r.predictions], te.labels);
  }
  for (const chunkSize of [1, 7]) {
    const chunked = await knnClassifyMulti(train, tr.labels, test, ks, { testLabels: te.labels, returnVotes: true, chunkSize });
    chunked.forEach((r, i) => {
      assert.deepEqual(r.predictions, full[i].predictions);
      const a = r.votes as Float32Array;
      const b = full[i].votes as Float32Array;
      for (let j = 0; j < a.length; j++) assert.ok(Math.abs(a[j] - b[j]) <= 1e-4 * Math.abs(b[j]) + 1e-5, `chunk ${chunkSize} k ${r.k} vote ${j}`);
    });
  }
  for (const [i, k] of ks.entries()) {
    const single = await knnClassify(train, tr.labels, test, { k, returnVotes: true, chunkSize: 1000 });
    assert.equal(single.k, k);
    assert.deepEqual(single.votes, full[i].votes);
  }
  // Repeated calls must not leave tensors behind.
  await knnClassify(train, tr.labels, test, { k: 5, chunkSize: 3 });
  assert.equal(tf.memory().numTensors, start);
  tf.dispose([train, test]);
});

test('votes sum over neighbours: with k = Ntrain every sample votes; scale of features is irrelevant when normalising', async () => {
  const rng = new Rng(5);
  const rows = Array.from({ length: 12 }, () => Array.from({ length: 5 }, () => rng.normal()));
  const labels = rows.map((_, i) => i % 3);
  const q = [Array.from({ length: 5 }, () => rng.normal())];
  const T = 0.1;
  const unit = (v: number[]) => v.map((x) => x / Math.hypot(...v));
  const expected = [0, 0, 0];
  rows.forEach((r, i) => {
    const cos = unit(r).reduce((s, x, j) => s + x * unit(q[0])[j], 0);
    expected[labels[i]] += Math.exp(cos / T);
  });
  const train = tf.tensor2d(rows);
  const scaled = tf.tensor2d(rows.map((r, i) => r.map((x) => x * (i + 1) * 3)));
  const test = tf.tensor2d(q);
  const a = await knnClassify(train, labels, test, { k: 12, temperature: T, returnVotes: true });
  const b = await knnClassify(scaled, labels, test, { k: 12, temperature: T, returnVotes: true });
  for (let c = 0; c < 3; c++) {
    const e = expected[c];
    assert.ok(Math.abs((a.votes as Float32Array)[c] - e) <= 1e-4 * e, `class ${c}: ${(a.votes as Float32Array)[c]} vs ${e}`);
    assert.ok(Math.abs((b.votes as Float32Array)[c] - e) <= 1e-4 * e, `scaled class ${c}`);
  }
  const best = expected.indexOf(Math.max(...expected));
  assert.equal(a.predictions[0], best);
  tf.dispose([train, scaled, test]);
});

test('top-5 counts the true class among the min(5, k) best-voted classes', async () => {
  // 8 classes, one train point each along its own axis; the test point leans
  // towards classes 0..6 with decreasing weight, so the vote ranking is 0,1,2,...
  const dim = 8;
  const train = tf.tensor2d(Array.from({ length: dim }, (_, i) => Array.from({ length: dim }, (_, j) => (i === j ? 1 : 0))));
  const q = Array.from({ length: dim }, (_, j) => (j < 7 ? 1 - j * 0.1 : 0));
  const test = tf.tensor2d([q, q, q, q]);
  const testLabels = [0, 4, 5, 7];
  const r8 = await knnClassify(train, [0, 1, 2, 3, 4, 5, 6, 7], test, { k: 8, testLabels });
  assert.equal(r8.top1, 25); // only label 0 is first
  assert.equal(r8.top5, 50); // labels 0 and 4 are within the first five
  const r3 = await knnClassify(train, [0, 1, 2, 3, 4, 5, 6, 7], test, { k: 3, testLabels });
  assert.equal(r3.top5, 25); // with k = 3 DINO only looks at the first 3 classes
  tf.dispose([train, test]);
});

test('ties between equally similar train samples go to the lower train index (tf.topk order)', async () => {
  const train = tf.tensor2d([
    [0, 1],
    [1, 0],
    [1, 0],
  ]);
  const test = tf.tensor2d([[1, 0]]);
  assert.equal((await knnClassify(train, [0, 2, 1], test, { k: 1, numClasses: 3 })).predictions[0], 2);
  assert.equal((await knnClassify(train, [0, 1, 2], test, { k: 1, numClasses: 3 })).predictions[0], 1);
  tf.dispose([train, test]);
});

test('bad input gives clear errors', async () => {
  const train = tf.tensor2d([
    [1, 0],
    [0, 1],
  ]);
  const test3 = tf.tensor2d([[1, 0, 0]]);
  const test = tf.tensor2d([[1, 0]]);
  await assert.rejects(async () => knnClassify(train, [0, 1], test3, { k: 1 }), /dim/);
  await assert.rejects(async () => knnClassify(train, [0, 1], test, { k: 3 }), /k = 3/);
  await assert.rejects(async () => knnClassify(train, [0], test, { k: 1 }), /one label per row/);
  await assert.rejects(async () => knnClassify(train, [0, 5], test, { k: 1, numClasses: 2 }), /class index/);
  await assert.rejects(async () => knnClassify(train, [0, 1], test, { k: 1, temperature: 0 }), /temperature/);
  tf.dispose([train, test, test3]);
});
