import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { blobCentres, blobs, setup } from './helpers';
import { Rng } from '../src/util/rng';
import { LinearClassifier, accuracy, predictLinear } from '../src/eval/classifier';
import { linearProbe, trainLinearClassifiers } from '../src/eval/linear';
import { fitLogisticRegression, logisticRegression } from '../src/eval/logistic';

before(async () => {
  await setup();
});

/** Blobs as feature tensors with Int32 labels. */
function data(rng: Rng, centres: number[][], perClass: number, noise: number) {
  const b = blobs(rng, centres, perClass, noise);
  return { x: tf.tensor2d(b.rows), labels: Int32Array.from(b.labels), rows: b.rows };
}

test('linear probe separates well-separated classes perfectly, and the sweep picks the best validation setting', async () => {
  const rng = new Rng(1);
  const centres = blobCentres(rng, 4, 16, 'normal', 4);
  const tr = data(rng, centres, 60, 0.5);
  const te = data(rng, centres, 20, 0.5);
  const n0 = tf.memory().numTensors;
  const r = await linearProbe(tr.x, tr.labels, te.x, te.labels, { lrs: [1e-5, 0.1], weightDecays: [0, 1e-3], epochs: 10, batchSize: 32 });
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak');
  assert.equal(r.top1, 100);
  assert.equal(r.sweep.length, 4);
  const bestVal = Math.max(...r.sweep.map((e) => e.valTop1));
  assert.equal(r.best.valTop1, bestVal);
  // The first setting reaching the best validation accuracy wins (sweep order is lr-major).
  assert.deepEqual(r.best, r.sweep.find((e) => e.valTop1 === bestVal));
  // lr 1e-5 barely moves from the N(0, 0.01) init in 80 steps; lr 0.1 learns the task.
  assert.equal(r.best.lr, 0.1);
  assert.equal(r.numVal, 24); // 10% of 60 per class, stratified
  tf.dispose([tr.x, te.x]);
});

test('sweep settings trained together agree with the same settings trained alone', async () => {
  const rng = new Rng(2);
  const d = data(rng, blobCentres(rng, 3, 8, 'normal', 1), 30, 1.5);
  const settings = [
    { lr: 0.05, weightDecay: 0 },
    { lr: 0.2, weightDecay: 0.01 },
  ];
  for (const optimizer of ['sgd', 'adamw'] as const) {
    const together = await trainLinearClassifiers(d.x, d.labels, settings, { epochs: 3, batchSize: 16, optimizer, seed: 5 });
    // Alone: same mini-batch order (same seed), different random init of the other columns only.
    const alone: LinearClassifier[] = [];
    for (const s of settings) alone.push((await trainLinearClassifiers(d.x, d.labels, [s], { epochs: 3, batchSize: 16, optimizer, seed: 5 }))[0]);
    for (let s = 0; s < 2; s++) {
      const a = await predictLinear(together[s], d.x);
      const b = await predictLinear(alone[s], d.x);
      // Different N(0, 0.01) inits; after training the predictions of a convex problem agree almost everywhere.
      assert.ok(accuracy(a, b) >= 95, `${optimizer} setting ${s}: ${accuracy(a, b)}% agreement`);
    }
  }
  d.x.dispose();
});

test('logistic regression: the 1-D symmetric two-point problem has the hand-derived optimum', async () => {
  // x = +1 (class 1) and x = −1 (class 0), n = 2. By symmetry W = [−a, a], b0 = b1, and
  // f(a) = log(1 + e^{−2a}) + (2a²)/(2·C·2) with f'(a) = −2/(1 + e^{2a}) + a/C = 0.
  for (const C of [0.3, 1, 4]) {
    let lo = 0;
    let hi = 10;
    for (let i = 0; i < 200; i++) {
      const mid = (lo + hi) / 2;
      if (-2 / (1 + Math.exp(2 * mid)) + mid / C < 0) lo = mid;
      else hi = mid;
    }
    const a = (lo + hi) / 2;
    const m = await fitLogisticRegression(tf.tensor2d([[1], [-1]]), [1, 0], { C, tol: 1e-7 });
    assert.ok(Math.abs(m.weights[1] - a) < 1e-4, `C=${C}: w1 ${m.weights[1]} vs ${a}`);
    assert.ok(Math.abs(m.weights[0] + a) < 1e-4, `C=${C}: w0 ${m.weights[0]} vs ${-a}`);
    assert.ok(Math.abs(m.bias[0] - m.bias[1]) < 1e-4);
    const f = Math.log(1 + Math.exp(-2 * a)) + a * a / (2 * C);
    assert.ok(Math.abs(m.loss - f) < 1e-6, `objective ${m.loss} vs ${f}`);
  }
});

test('logistic regression matches scikit-learn 1.2 LogisticRegression(C=5) coefficients', async () => {
  // X[i][j] = sin(1.3 i + 0.7 j) + cos(0.11 i j), y = i mod 3; sklearn lbfgs with tol 1e-12.
  const X = Array.from({ length: 30 }, (_, i) => Array.from({ length: 4 }, (_, j) => Math.sin(i * 1.3 + j * 0.7) + Math.cos(i * j * 0.11)));
  const y = Array.from({ length: 30 }, (_, i) => i % 3);
  const coef = [
    [-0.152458, -0.00592, 0.158378],
    [0.08025, 0.009322, -0.089572],
    [-0.068204, 0.021182, 0.047022],
    [0.070938, 0.01479, -0.085727],
  ];
  const bCentered = [0.154199, 0.009885, -0.164085];
  const m = await fitLogisticRegression(tf.tensor2d(X), y, { C: 5, tol: 1e-7, maxIter: 2000 });
  for (let j = 0; j < 4; j++) for (let c = 0; c < 3; c++) assert.ok(Math.abs(m.weights[j * 3 + c] - coef[j][c]) < 2e-4, `W[${j}][${c}] ${m.weights[j * 3 + c]} vs ${coef[j][c]}`);
  const bm = (m.bias[0] + m.bias[1] + m.bias[2]) / 3;
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(m.bias[c] - bm - bCentered[c]) < 2e-4, `b[${c}]`);
});

test('logistic regression: the float64 gradient is ~0 at the returned optimum and separable data is fit perfectly', async () => {
  const rng = new Rng(3);
  const d = data(rng, blobCentres(rng, 3, 5, 'normal', 2), 40, 0.7);
  const C = 0.5;
  const m = await fitLogisticRegression(d.x, d.labels, { C, tol: 1e-6 });
  assert.equal(accuracy(await predictLinear(m, d.x), d.labels), 100);
  // Independent gradient of mean CE + ‖W‖²/(2Cn), in float64.
  const n = d.rows.length;
  const gW = new Float64Array(5 * 3);
  const gb = new Float64Array(3);
  for (let i = 0; i < n; i++) {
    const z = [0, 1, 2].map((c) => m.bias[c] + d.rows[i].reduce((s, x, j) => s + x * m.weights[j * 3 + c], 0));
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const sum = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < 3; c++) {
      const r = e[c] / sum - (d.labels[i] === c ? 1 : 0);
      gb[c] += r / n;
      for (let j = 0; j < 5; j++) gW[j * 3 + c] += (r * d.rows[i][j]) / n;
    }
  }
  for (let k = 0; k < 15; k++) gW[k] += m.weights[k] / (C * n);
  const gmax = Math.max(...gW.map(Math.abs), ...gb.map(Math.abs));
  assert.ok(gmax < 2e-5, `max |grad| = ${gmax}`);
  d.x.dispose();
});

test('logisticRegression selects C on held-out train data, never on test, and leaks no tensors', async () => {
  const rng = new Rng(4);
  const centres = blobCentres(rng, 3, 6, 'normal', 1);
  const tr = data(rng, centres, 30, 2.5);
  const te = data(rng, centres, 10, 2.5);
  const n0 = tf.memory().numTensors;
  const r = await logisticRegression(tr.x, tr.labels, te.x, te.labels, { Cs: [1e-4, 1, 100], preprocess: 'standardize', seed: 0 });
  assert.equal(tf.memory().numTensors, n0);
  assert.equal(r.selection, 'validation');
  const vals = r.entries.map((e) => e.valTop1 as number);
  assert.equal(r.selectedC, r.entries[vals.indexOf(Math.max(...vals))].C);
  assert.equal(r.top1, r.entries.find((e) => e.C === r.selectedC)?.top1);
  assert.deepEqual(
    r.entries.map((e) => e.C),
    [1e-4, 1, 100],
  );
  // One C: no selection.
  const one = await logisticRegression(tr.x, tr.labels, te.x, te.labels, { Cs: [1] });
  assert.equal(one.selection, 'first');
  tf.dispose([tr.x, te.x]);
});

test('bad input gets errors that say what to do', async () => {
  const x = tf.tensor2d([[1], [2]]);
  await assert.rejects(async () => fitLogisticRegression(x, [0], {}), /2 feature rows but 1 labels/);
  await assert.rejects(async () => fitLogisticRegression(x, [0, 1], { C: 0 }), /C must be > 0/);
  await assert.rejects(async () => fitLogisticRegression(x, [0, 0.5]), /not a class index/);
  await assert.rejects(async () => trainLinearClassifiers(x, [0, 1], []), /at least one/);
  x.dispose();
});
