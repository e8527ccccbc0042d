import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { Rng } from '../src/util/rng';
import { IBOTHead } from '../src/model/head';
import { evaluateClusters, headAssignments, headClustering, kmeansClustering } from '../src/eval/cluster';

before(async () => {
  await setup();
});

test('matched confusion matrix: rows are true classes, columns the cluster matched to each class', async () => {
  // Cluster 5 holds two of class 0, cluster 7 one of class 0 and all three of class 1 → 5↔0, 7↔1.
  const r = evaluateClusters([0, 0, 0, 1, 1, 1], [5, 5, 7, 7, 7, 7], 'kmeans');
  assert.deepEqual(r.confusion, [
    [2, 1],
    [0, 3],
  ]);
  assert.deepEqual(r.clusterOfClass, [5, 7]);
  assert.deepEqual(r.unmatched, [0, 0]);
  assert.equal(r.metrics.acc, 5 / 6);
  assert.equal(r.metrics.purity, 5 / 6);
  assert.equal(r.numClusters, 2);
  // More clusters than classes: the leftover cluster is unmatched and counts as an error.
  const r3 = evaluateClusters([0, 0, 1, 1], [0, 0, 1, 2], 'head-argmax');
  assert.equal(r3.metrics.acc, 3 / 4);
  assert.deepEqual(r3.unmatched, [0, 1]);
  assert.deepEqual(r3.confusion, [
    [2, 0],
    [0, 1],
  ]);
});

test('relabelling the clusters changes no metric and permutes nothing in the matched confusion matrix', async () => {
  const rng = new Rng(3);
  const labels = Array.from({ length: 300 }, (_, i) => i % 5);
  const clusters = labels.map((y) => (rng.random() < 0.7 ? y : rng.randint(0, 4)));
  const perm = [3, 0, 4, 1, 2];
  const a = evaluateClusters(labels, clusters, 'kmeans');
  const b = evaluateClusters(
    labels,
    clusters.map((c) => perm[c] + 10),
    'kmeans',
  );
  // NMI sums in a different order after relabelling: equal to rounding.
  assert.ok(Math.abs(b.metrics.nmi - a.metrics.nmi) < 1e-12);
  assert.deepEqual({ ...b.metrics, nmi: 0 }, { ...a.metrics, nmi: 0 });
  assert.deepEqual(b.confusion, a.confusion);
  assert.ok(a.metrics.acc > 0.7);
});

test('k-means on well-separated blobs recovers the classes (NMI = ARI = ACC = 1)', async () => {
  const rng = new Rng(1);
  const K = 4;
  const centres = Array.from({ length: K }, () => Array.from({ length: 6 }, () => rng.normal()));
  const labels = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % K);
  const x = tf.tensor2d(Array.from(labels, (c) => centres[c].map((v) => 10 * v + 0.1 * rng.normal())));
  const n0 = tf.memory().numTensors;
  const r = await kmeansClustering(x, labels, { seed: 0, normalize: false });
  assert.equal(tf.memory().numTensors, n0);
  assert.ok(Math.abs(r.metrics.nmi - 1) < 1e-12);
  assert.ok(Math.abs(r.metrics.ari - 1) < 1e-12);
  assert.equal(r.metrics.acc, 1);
  assert.equal(r.numClusters, K);
  for (let c = 0; c < K; c++) assert.equal(r.confusion[c][c], 50);
  x.dispose();
});

/** A head whose [CLS] output is the cosine of the input with the first `classes` unit vectors. */
function axisHead(dim: number, outDim: number): IBOTHead {
  const head = new IBOTHead({ inDim: dim, outDim, patchOutDim: outDim, hiddenDim: dim, bottleneckDim: dim, nlayers: 1, normLastLayer: true, sharedHead: true }, 0);
  head.params.get('mlp.0.weight').assign(tf.eye(dim));
  head.params.get('mlp.0.bias').assign(tf.zeros([dim]));
  // Prototype j = unit vector e_(j mod dim): output j is x_(j mod dim)/‖x‖.
  head.params.get('last_layer.weight_v').assign(tf.tidy(() => tf.concat(Array.from({ length: Math.ceil(outDim / dim) }, () => tf.eye(dim)), 1).slice([0, 0], [dim, outDim])));
  return head;
}

test('head-argmax clustering assigns each [CLS] to its prototype (official unsup_cls)', async () => {
  const rng = new Rng(2);
  const dim = 5;
  const head = axisHead(dim, dim);
  const labels = Int32Array.from({ length: 60 }, (_, i) => i % dim);
  // Features near the class's axis, positive on it: argmax must be the class index.
  const cls = tf.tensor2d(Array.from(labels, (c) => Array.from({ length: dim }, (_, j) => (j === c ? 3 : 0) + 0.3 * rng.normal())));
  const n0 = tf.memory().numTensors;
  const a = await headAssignments(head, cls, 7); // batches of 7 rows: results must not depend on batching
  assert.deepEqual(Array.from(a), Array.from(labels));
  const r = await headClustering(head, cls, labels);
  assert.equal(tf.memory().numTensors, n0);
  assert.equal(r.method, 'head-argmax');
  assert.equal(r.metrics.acc, 1);
  assert.ok(Math.abs(r.metrics.nmi - 1) < 1e-12);
  await assert.rejects(async () => headAssignments(head, tf.zeros([2, dim + 1]) as tf.Tensor2D), /the head takes 5/);
  cls.dispose();
  head.dispose();
});
