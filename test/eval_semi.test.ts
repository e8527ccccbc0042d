import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { Rng } from '../src/util/rng';
import { ImageDataset, classCounts } from '../src/data/dataset';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { IBOTHead } from '../src/model/head';
import { fineTune, semiFineTune, semiSplits, semiSupervised } from '../src/eval/semi';

before(async () => {
  await setup();
});

/** 10 classes × 100 samples, labels in a shuffled order. */
function labels1000(seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from(rng.shuffle(Array.from({ length: 1000 }, (_, i) => i % 10)));
}

test('1% and 10% splits are class-balanced, nested, and reproducible by seed', async () => {
  const y = labels1000(7);
  const [one, ten] = semiSplits(y, [0.01, 0.1], 3);
  // round(0.01 * 1000 / 10) = 1 and round(0.1 * 1000 / 10) = 10 per class.
  assert.deepEqual(classCounts(Array.from(one, (i) => y[i]), 10), new Array(10).fill(1));
  assert.deepEqual(classCounts(Array.from(ten, (i) => y[i]), 10), new Array(10).fill(10));
  for (const i of one) assert.ok(ten.includes(i), 'the 1% subset lies inside the 10% subset');
  assert.deepEqual(semiSplits(y, [0.01, 0.1], 3), [one, ten]);
  assert.notDeepEqual(semiSplits(y, [0.1], 4)[0], ten);
});

test('semi-supervised LR and k-NN on separable features use only the subset and score the full test set', async () => {
  const rng = new Rng(5);
  const K = 4;
  const dim = 8;
  const centres = Array.from({ length: K }, () => Array.from({ length: dim }, () => rng.normal()));
  const make = (n: number) => {
    const y = Int32Array.from({ length: n }, (_, i) => i % K);
    return { x: tf.tensor2d(Array.from(y, (c) => centres[c].map((v) => v + 0.05 * rng.normal()))), y };
  };
  const tr = make(400);
  const te = make(120);
  const n0 = tf.memory().numTensors;
  const rs = await semiSupervised(tr.x, tr.y, te.x, te.y, { fractions: [0.01, 0.1] });
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak');
  assert.equal(rs.length, 2);
  assert.deepEqual(rs[0].perClass, [1, 1, 1, 1]);
  assert.deepEqual(rs[1].perClass, [10, 10, 10, 10]);
  assert.equal(rs[0].numLabelled, 4);
  assert.equal(rs[0].knn.k, 4, 'k is capped at the subset size');
  // One labelled sample per class has nothing to hold out: the first C is used.
  assert.equal(rs[0].logistic.selection, 'first');
  assert.equal(rs[1].logistic.selection, 'validation');
  for (const r of rs) {
    assert.equal(r.numTest, 120);
    assert.equal(r.logistic.numTest, 120);
    assert.equal(r.logistic.top1, 100);
    assert.equal(r.knn.top1, 100);
  }
  tf.dispose([tr.x, te.x]);
});

/** 28×28 grayscale images: class 0 bright in the top half, class 1 in the bottom half, with noise. */
function halves(n: number, seed: number): ImageDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 28 * 28);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let r = 0; r < 28; r++)
      for (let c = 0; c < 28; c++) {
        const on = (r < 14) === (labels[i] === 0);
        images[i * 784 + r * 28 + c] = Math.max(0, Math.min(255, Math.round((on ? 180 : 40) + 30 * rng.normal())));
      }
  }
  return { name: 'halves', images, labels, n, height: 28, width: 28, channels: 1, numClasses: 2 };
}

test('fine-tuning decreases the train loss in a few steps, leaves the original backbone untouched, and leaks nothing', async () => {
  const vit = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 16, depth: 1, numHeads: 2 }), 3);
  const head = new IBOTHead({ inDim: 16, outDim: 8, patchOutDim: 8, hiddenDim: 12, bottleneckDim: 4, nlayers: 2, normLastLayer: true, sharedHead: true }, 4);
  const train = halves(16, 1);
  const test = halves(8, 2);
  const before = vit.params.params.map((p) => Float32Array.from(p.variable.dataSync()));
  const n0 = tf.memory().numTensors;
  for (const kind of ['linear', 'headLayer'] as const) {
    const r = await fineTune(vit, train, test, { head: kind, projectionHead: head, epochs: 2, batchSize: 8, lr: 3e-3, weightDecay: 0, seed: 0 });
    assert.equal(r.steps, 4);
    assert.equal(r.losses.length, 4);
    assert.equal(r.head, kind);
    const lb = r.trainLossBefore as number;
    const la = r.trainLossAfter as number;
    assert.ok(la < lb, `${kind}: train loss ${lb} → ${la}`);
    assert.ok(r.top1 >= 0 && r.top1 <= 100);
  }
  assert.equal(tf.memory().numTensors, n0, 'no tensors leak');
  vit.params.params.forEach((p, i) => assert.deepEqual(Float32Array.from(p.variable.dataSync()), before[i], `${p.name} unchanged`));
  // The semi wrapper fine-tunes on the class-balanced fraction only.
  const s = await semiFineTune(vit, halves(40, 3), test, 0.1, { epochs: 1, maxSteps: 1, measureTrainLoss: false });
  assert.equal(s.numTrain, 4);
  assert.equal(s.fraction, 0.1);
  assert.equal(s.steps, 1);
  await assert.rejects(async () => fineTune(vit, train, test, { head: 'headLayer' }), /needs the pretrained projectionHead/);
  vit.dispose();
  head.dispose();
});
