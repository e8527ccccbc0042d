import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { pretrainedViTFromTensors } from '../src/model/pretrained';

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
