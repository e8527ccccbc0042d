import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup, assertSameGrads } from './helpers';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { pretrainedViTFromTensors } from '../src/model/pretrained';
import { gatherRows } from '../src/model/layers';

before(setup);

describe('LayerScale (timm ls1.gamma / ls2.gamma)', () => {
  const cfg = vitConfig('vit-tiny-28', { embedDim: 32, depth: 2, numHeads: 2 });
  const x = (): tf.Tensor4D => tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 5) as tf.Tensor4D;

  it('with gamma = 1 a block is exactly the plain block; gamma scales each residual branch', async () => {
    const plain = new VisionTransformer(cfg, 1);
    const scaled = new VisionTransformer({ ...cfg, layerScale: 1 }, 1);
    assert.deepEqual(
      scaled.params.params.map((p) => p.name).filter((n) => n.includes('.ls')),
      ['blocks.0.ls1.gamma', 'blocks.0.ls2.gamma', 'blocks.1.ls1.gamma', 'blocks.1.ls2.gamma'],
    );
    scaled.params.copyFrom(plain.params);
    const input = x();
    const [a, b] = tf.tidy(() => [plain.forward(input).tokens.dataSync(), scaled.forward(input).tokens.dataSync()]);
    assert.deepEqual(Array.from(b), Array.from(a));
    // gamma = 0: every block adds nothing, so the tokens are the final norm of the embeddings alone.
    for (const p of scaled.params.params) if (p.name.includes('.ls')) p.variable.assign(tf.zeros(p.variable.shape));
    const noBlocks = new VisionTransformer({ ...cfg, depth: 1, layerScale: 1 }, 1);
    noBlocks.params.copyFrom(scaled.params);
    for (const p of noBlocks.params.params) if (p.name.includes('.ls')) p.variable.assign(tf.zeros(p.variable.shape));
    const [c, d] = tf.tidy(() => [scaled.forward(input).tokens.dataSync(), noBlocks.forward(input).tokens.dataSync()]);
    assert.deepEqual(Array.from(c), Array.from(d));
    input.dispose();
    [plain, scaled, noBlocks].forEach((v) => v.dispose());
  });

  it('gamma trains (it gets a gradient) and a saved LayerScale ViT loads back with its architecture', async () => {
    const vit = new VisionTransformer({ ...cfg, layerScale: 1e-5 }, 2);
    const input = x();
    const gamma = vit.params.get('blocks.1.ls2.gamma');
    const { grads } = tf.variableGrads(() => tf.sum(vit.forward(input).tokens) as tf.Scalar, [gamma]);
    const gg = grads[gamma.name];
    assert.ok(gg && (await gg.data()).some((v) => v !== 0));
    const loaded = pretrainedViTFromTensors(await vit.params.toTorch(), { num_heads: '2' });
    assert.equal(loaded.model.config.layerScale, 1);
    assert.deepEqual(loaded.report.missing, []);
    const [a, b] = tf.tidy(() => [vit.forward(input).tokens.dataSync(), loaded.model.forward(input).tokens.dataSync()]);
    assert.deepEqual(Array.from(b), Array.from(a));
    tf.dispose([input, ...Object.values(grads)]);
    vit.dispose();
    loaded.model.dispose();
  });
});

describe('forwardRows', () => {
  it('gives the selected rows of forward (also in training, with stochastic depth and masks) and the same weight gradients', async () => {
    const vit = new VisionTransformer(vitConfig('vit-tiny-28', { depth: 2, embedDim: 32, numHeads: 2, dropPathRate: 0.3, layerScale: 0.5 }), 4);
    const B = 3;
    const T = 50;
    const images = tf.randomNormal([B, 28, 28, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const masks = tf.tensor2d(Array.from({ length: B * 49 }, (_, i) => (i % 7 === 3 ? 1 : 0)), [B, 49]);
    const rowList = [0, 5, 50, 77, 99, 100, 149];
    const rows = tf.tensor1d(rowList, 'int32');
    const before = tf.memory().numTensors;
    for (const training of [false, true]) {
      const opts = { masks, training, seed: 17 };
      const full = tf.tidy(() => tf.gather(tf.reshape(vit.forward(images, opts).tokens, [B * T, 32]), rows));
      const part = vit.forwardRows(images, rows, opts);
      const [a, b] = [await full.data(), await part.data()];
      assert.deepEqual(part.shape, [rowList.length, 32]);
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * Math.max(1, Math.abs(a[i])), `training ${training}, element ${i}: ${a[i]} vs ${b[i]}`);
      tf.dispose([full, part]);
    }
    // Gradients of a loss on those rows: the same through either path.
    const r = tf.randomNormal([rowList.length, 32], 0, 1, 'float32', 3);
    const vars = vit.params.params.filter((p) => p.trainable).map((p) => p.variable);
    const g1 = tf.variableGrads(() => tf.sum(tf.mul(gatherRows(tf.reshape(vit.forward(images, { masks, training: true, seed: 5 }).tokens, [B * T, 32]) as tf.Tensor2D, rows), r)) as tf.Scalar, vars);
    const g2 = tf.variableGrads(() => tf.sum(tf.mul(vit.forwardRows(images, rows, { masks, training: true, seed: 5 }), r)) as tf.Scalar, vars);
    await assertSameGrads(g1.grads, g2.grads, 1e-4);
    tf.dispose([g1.value, g2.value, ...Object.values(g1.grads), ...Object.values(g2.grads), r]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    tf.dispose([images, masks, rows]);
    vit.dispose();
  });

  it('packed (forwardRowsPacked): two batches of different sizes give the separate calls\' rows, stacked, and the same weight gradients', async () => {
    const vit = new VisionTransformer(vitConfig('vit-tiny-28', { depth: 2, embedDim: 32, numHeads: 2, dropPathRate: 0.3, layerScale: 0.5 }), 4);
    // Global-like 28 px crops with masks and local-like 12 px crops (10 tokens each: attention must not mix the two).
    const global = tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const local = tf.randomNormal([4, 12, 12, 1], 0, 1, 'float32', 8) as tf.Tensor4D;
    const masks = tf.tensor2d(Array.from({ length: 3 * 49 }, (_, i) => (i % 5 === 2 ? 1 : 0)), [3, 49]);
    const gRows = tf.tensor1d([0, 7, 50, 64, 100, 148], 'int32');
    const lRows = tf.tensor1d([0, 10, 20, 30, 35], 'int32');
    const inputs = [{ images: global, rows: gRows, masks, seed: 17 }, { images: local, rows: lRows, seed: 18 }];
    const separate = (training: boolean): tf.Tensor2D =>
      tf.concat([vit.forwardRows(global, gRows, { masks, training, seed: 17 }), vit.forwardRows(local, lRows, { training, seed: 18 })], 0) as tf.Tensor2D;
    tf.tidy(() => separate(false)); // caches the 3×3 position-embedding resampling, which stays
    const before = tf.memory().numTensors;
    for (const training of [false, true]) {
      const a = tf.tidy(() => separate(training));
      const b = vit.forwardRowsPacked(inputs, { training });
      assert.deepEqual(b.shape, [11, 32]);
      const [va, vb] = [await a.data(), await b.data()];
      for (let i = 0; i < va.length; i++) assert.ok(Math.abs(va[i] - vb[i]) <= 1e-5 * Math.max(1, Math.abs(va[i])), `training ${training}, element ${i}: ${va[i]} vs ${vb[i]}`);
      tf.dispose([a, b]);
    }
    const r = tf.randomNormal([11, 32], 0, 1, 'float32', 3);
    const vars = vit.params.params.filter((p) => p.trainable).map((p) => p.variable);
    const g1 = tf.variableGrads(() => tf.sum(tf.mul(separate(true), r)) as tf.Scalar, vars);
    const g2 = tf.variableGrads(() => tf.sum(tf.mul(vit.forwardRowsPacked(inputs, { training: true }), r)) as tf.Scalar, vars);
    await assertSameGrads(g1.grads, g2.grads, 1e-4);
    tf.dispose([g1.value, g2.value, ...Object.values(g1.grads), ...Object.values(g2.grads), r]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    tf.dispose([global, local, masks, gRows, lRows]);
    vit.dispose();
  });
});
