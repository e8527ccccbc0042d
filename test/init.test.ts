import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { init } from '../src/model/params';
import { VisionTransformer, vitConfig } from '../src/model/vit';

before(setup);

/** Sample mean and standard deviation (float64). */
function moments(v: ArrayLike<number>): { mean: number; std: number; maxAbs: number } {
  let s = 0;
  let maxAbs = 0;
  for (let i = 0; i < v.length; i++) {
    s += v[i];
    maxAbs = Math.max(maxAbs, Math.abs(v[i]));
  }
  const mean = s / v.length;
  let q = 0;
  for (let i = 0; i < v.length; i++) q += (v[i] - mean) ** 2;
  return { mean, std: Math.sqrt(q / v.length), maxAbs };
}

describe('weight initialisation (timm/DINO trunc_normal_(std=.02), bounds ±2 absolute)', () => {
  it('has the full normal spread: sample std 0.02 (a ±2σ truncation would give 0.0176)', async () => {
    const w = init.truncNormal([512, 512], 0.02, 7);
    const m = moments(await w.data());
    w.dispose();
    // 262,144 draws: the std of the sample std is 0.02/√(2n) ≈ 2.8e-5.
    assert.ok(Math.abs(m.std - 0.02) < 2e-4, `sample std ${m.std}`);
    assert.ok(Math.abs(m.mean) < 2e-4, `sample mean ${m.mean}`);
    // Values beyond 2σ exist (about 4.6% of them), as in an untruncated normal.
    assert.ok(m.maxAbs > 0.06, `max |w| ${m.maxAbs}`);
  });

  it('clips at ±2 in absolute value, whatever the std', async () => {
    const w = init.truncNormal([10000], 3, 1);
    const m = moments(await w.data());
    w.dispose();
    assert.ok(m.maxAbs <= 2);
  });

  it("the ViT's linear weights, [CLS] token and position embedding follow it", async () => {
    const vit = new VisionTransformer(vitConfig('vit-s16'), 3);
    for (const name of ['blocks.0.attn.qkv.weight', 'blocks.11.mlp.fc1.weight', 'pos_embed']) {
      const m = moments(await vit.params.get(name).data());
      assert.ok(Math.abs(m.std - 0.02) < 5e-4, `${name}: std ${m.std}`);
    }
    vit.dispose();
  });
});
