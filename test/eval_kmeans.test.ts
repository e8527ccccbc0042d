import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../src/util/rng';
import { blobCentres, blobs } from './helpers';
import { kmeans } from '../src/eval/kmeans';
import { hungarianAccuracy } from '../src/eval/metrics';

before(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
});

/** Σ over groups of squared distances to the group mean, in float64: the optimal inertia for that partition. */
function withinSS(rows: number[][], labels: number[]): number {
  const groups = new Map<number, number[][]>();
  rows.forEach((r, i) => groups.set(labels[i], [...(groups.get(labels[i]) ?? []), r]));
  let s = 0;
  for (const g of groups.values()) {
    const mean = g[0].map((_, j) => g.reduce((a, r) => a + r[j], 0) / g.length);
    for (const r of g) s += r.reduce((a, x, j) => a + (x - mean[j]) ** 2, 0);
  }
  return s;
}

test('recovers well-separated blobs exactly (ACC = 1) with the optimal inertia', async () => {
  const rng = new Rng(1);
  const { rows, labels } = blobs(rng, blobCentres(rng, 5, 16, 'uniform', 10), 60, 0.3);
  const x = tf.tensor2d(rows);
  const start = tf.memory().numTensors;
  const res = await kmeans(x, { k: 5, seed: 42 });
  assert.equal(tf.memory().numTensors, start);
  assert.equal(hungarianAccuracy(labels, res.assignments), 1);
  const opt = withinSS(rows, labels);
  assert.ok(Math.abs(res.inertia - opt) <= 1e-4 * opt, `inertia ${res.inertia} vs ${opt}`);
  assert.equal(res.centroids.length, 5 * 16);
  assert.ok(res.converged);
  // Each centroid is the mean of its members.
  const c = res.assignments[0];
  const members = rows.filter((_, i) => res.assignments[i] === c);
  for (let j = 0; j < 16; j++) {
    const mean = members.reduce((a, r) => a + r[j], 0) / members.length;
    assert.ok(Math.abs(res.centroids[c * 16 + j] - mean) < 1e-4, `centroid dim ${j}`);
  }
  x.dispose();
});

test('hand-derived 1-D case and k = 1', async () => {
  const pts = [[0], [1], [10], [11]];
  const two = await kmeans(pts, { k: 2, seed: 3 });
  const cs = [...two.centroids].sort((a, b) => a - b);
  assert.deepEqual(cs, [0.5, 10.5]);
  assert.equal(two.inertia, 1); // four points each 0.5 from their centre
  assert.equal(two.assignments[0], two.assignments[1]);
  assert.notEqual(two.assignments[1], two.assignments[2]);
  const one = await kmeans(pts, { k: 1 });
  assert.deepEqual([...one.centroids], [5.5]);
  assert.equal(one.inertia, 5.5 ** 2 + 4.5 ** 2 + 4.5 ** 2 + 5.5 ** 2);
});

test('same seed or same Rng state reproduces the result; k-means++ and random init both work', async () => {
  const rng = new Rng(9);
  const { rows } = blobs(rng, blobCentres(rng, 4, 8, 'uniform', 4), 30, 2.5); // overlapping, so runs can differ
  const a = await kmeans(rows, { k: 4, seed: 123, nInit: 2 });
  const b = await kmeans(rows, { k: 4, seed: 123, nInit: 2 });
  assert.deepEqual(a.assignments, b.assignments);
  assert.deepEqual(a.centroids, b.centroids);
  assert.equal(a.inertia, b.inertia);
  const r1 = new Rng(77);
  const r2 = new Rng(77);
  assert.deepEqual((await kmeans(rows, { k: 4, rng: r1, nInit: 1 })).assignments, (await kmeans(rows, { k: 4, rng: r2, nInit: 1 })).assignments);
  assert.deepEqual(r1.getState(), r2.getState());
  const rand = await kmeans(rows, { k: 4, seed: 5, init: 'random', nInit: 3 });
  assert.equal(new Set(rand.assignments).size, 4);
  // More restarts can only lower (or keep) the best inertia for the same stream.
  const few = await kmeans(rows, { k: 4, seed: 8, nInit: 1 });
  const many = await kmeans(rows, { k: 4, seed: 8, nInit: 6 });
  assert.ok(many.inertia <= few.inertia + 1e-9);
});

test('duplicate points and empty clusters: still k finite centres and valid assignments', async () => {
  const pts = [[0, 0], [0, 0], [0, 0], [5, 5], [5, 5]];
  const res = await kmeans(pts, { k: 3, seed: 0, nInit: 2 });
  assert.equal(res.assignments.length, 5);
  assert.ok(res.assignments.every((a) => a >= 0 && a < 3));
  assert.ok(res.centroids.every(Number.isFinite));
  assert.equal(res.inertia, 0);
});

test('bad input gives clear errors', async () => {
  await assert.rejects(async () => kmeans([[0], [1]], { k: 3 }), /k = 3/);
  await assert.rejects(async () => kmeans([[0], [1]], { k: 1, nInit: 0 }), /nInit/);
});
