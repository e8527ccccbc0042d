import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { fdDirectional, relL2 as relArrays, setup } from './helpers';
import { gelu, l2Normalize, layerNorm, linear, linearOnData } from '../src/model/layers';
import { attention } from '../src/model/attention';
import { bicubicMatrix1d } from '../src/model/vit';
import { hasFusedKernels, registerWasmKernels, setAutoRegisterKernels, unregisterWasmKernels } from '../src/kernels';

before(setup);
after(() => useKernels(true));

/** Switch between our fused wasm kernels and plain tfjs ops (the path every other backend takes). */
function useKernels(on: boolean): void {
  setAutoRegisterKernels(on);
  if (on) registerWasmKernels();
  else unregisterWasmKernels();
}

/** Plain-op versions written independently of the custom gradients: autodiff differentiates these. */
const naive = {
  linear: (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.add(tf.matMul(x, w), b),
  layerNorm: (x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps = 1e-6) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, eps))), g), b);
  },
  gelu: (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2)))),
};

function relL2(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.norm(tf.sub(a, b)).dataSync()[0] / Math.max(tf.norm(b).dataSync()[0], 1e-12));
}

const MODES = ['our wasm kernels', 'plain tfjs ops'] as const;
for (const mode of MODES) describe(`custom-gradient layers (${mode})`, () => {
  before(() => useKernels(mode === MODES[0]));

  it('runs on the intended path', async () => {
    assert.equal(hasFusedKernels(), mode === MODES[0] && tf.getBackend() === 'wasm');
  });

  it('linear: forward and gradients match autodiff of x·W+b and finite differences', async () => {
    tf.tidy(() => {
      const x = tf.randomNormal([7, 5], 0, 1, 'float32', 1) as tf.Tensor2D;
      const w = tf.randomNormal([5, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
      const b = tf.randomNormal([3], 0, 1, 'float32', 3) as tf.Tensor1D;
      const r = tf.randomNormal([7, 3], 0, 1, 'float32', 4);
      const loss = (f: typeof naive.linear) => (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D), r)) as tf.Scalar;
      assert.ok(relL2(linear(x, w, b), naive.linear(x, w, b)) < 1e-6);
      const gc = tf.grads(loss(linear))([x, w, b]);
      const gn = tf.grads(loss(naive.linear))([x, w, b]);
      for (let i = 0; i < 3; i++) assert.ok(relL2(gc[i], gn[i]) < 1e-5, `grad ${i}`);
      const fdx = fdDirectional((xi) => loss(linear)(xi, w, b), x, gc[0], 11);
      const fdw = fdDirectional((wi) => loss(linear)(x, wi, b), w, gc[1], 12);
      assert.ok(fdx.relErr < 1e-2 && fdw.relErr < 1e-2, JSON.stringify([fdx, fdw]));
      // Without bias too.
      const g2 = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.mul(linear(xi as tf.Tensor2D, wi as tf.Tensor2D), r)) as tf.Scalar)([x, w]);
      assert.ok(relL2(g2[1], gn[1]) < 1e-5);
    });
  });

  it('linearOnData: the same value and weight gradients as linear, with no gradient for the data', async () => {
    tf.tidy(() => {
      const x = tf.randomNormal([9, 4], 0, 1, 'float32', 21) as tf.Tensor2D;
      const w = tf.randomNormal([4, 6], 0, 1, 'float32', 22) as tf.Tensor2D;
      const b = tf.randomNormal([6], 0, 1, 'float32', 23) as tf.Tensor1D;
      const r = tf.randomNormal([9, 6], 0, 1, 'float32', 24);
      assert.ok(relL2(linearOnData(x, w, b), naive.linear(x, w, b)) < 1e-6);
      const gd = tf.grads((wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(linearOnData(x, wi as tf.Tensor2D, bi as tf.Tensor1D), r)) as tf.Scalar)([w, b]);
      const gn = tf.grads((wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(naive.linear(x, wi as tf.Tensor2D, bi as tf.Tensor1D), r)) as tf.Scalar)([w, b]);
      assert.ok(relL2(gd[0], gn[0]) < 1e-5 && relL2(gd[1], gn[1]) < 1e-5);
      // Asking for the data's gradient is an error, not a silent zero.
      assert.throws(() => tf.grad((xi: tf.Tensor) => tf.sum(linearOnData(xi as tf.Tensor2D, w, b)) as tf.Scalar)(x));
    });
  });

  it('layerNorm: normalises rows and its gradient matches autodiff and finite differences', async () => {
    tf.tidy(() => {
      const x = tf.add(tf.mul(tf.randomNormal([6, 16], 0, 1, 'float32', 5), 3), 2) as tf.Tensor2D;
      const g = tf.randomNormal([16], 1, 0.3, 'float32', 6) as tf.Tensor1D;
      const b = tf.randomNormal([16], 0, 0.3, 'float32', 7) as tf.Tensor1D;
      const r = tf.randomNormal([6, 16], 0, 1, 'float32', 8);
      // Row statistics of the un-affine output are (0, 1).
      const y0 = layerNorm(x, tf.ones([16]) as tf.Tensor1D, tf.zeros([16]) as tf.Tensor1D);
      const { mean, variance } = tf.moments(y0, -1);
      assert.ok(tf.max(tf.abs(mean)).dataSync()[0] < 1e-5);
      assert.ok(tf.max(tf.abs(tf.sub(variance, 1))).dataSync()[0] < 1e-3);
      const loss = (f: typeof naive.layerNorm) => (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D, gi as tf.Tensor1D, bi as tf.Tensor1D), r)) as tf.Scalar;
      assert.ok(relL2(layerNorm(x, g, b), naive.layerNorm(x, g, b)) < 1e-5);
      const gc = tf.grads(loss(layerNorm))([x, g, b]);
      const gn = tf.grads(loss(naive.layerNorm))([x, g, b]);
      for (let i = 0; i < 3; i++) assert.ok(relL2(gc[i], gn[i]) < 1e-4, `grad ${i}: ${relL2(gc[i], gn[i])}`);
      const fd = fdDirectional((xi) => loss(layerNorm)(xi, g, b), x, gc[0], 13);
      assert.ok(fd.relErr < 1e-2, JSON.stringify(fd));
    });
  });

  it('gelu: exact erf form, x·Φ(x), with hand-checked values and gradient', async () => {
    tf.tidy(() => {
      // Φ(1) = 0.8413447, Φ(−1) = 0.1586553; gelu'(0) = 0.5
      const y = gelu(tf.tensor1d([1, -1, 0, 3])).dataSync();
      assert.ok(Math.abs(y[0] - 0.8413447) < 1e-6 && Math.abs(y[1] + 0.1586553) < 1e-6 && y[2] === 0);
      const d0 = tf.grad((x: tf.Tensor) => tf.sum(gelu(x)))(tf.tensor1d([0, 1])).dataSync();
      // d/dx xΦ(x) at 1 = Φ(1) + φ(1) = 0.8413447 + 0.2419707
      assert.ok(Math.abs(d0[0] - 0.5) < 1e-6 && Math.abs(d0[1] - 1.0833154) < 1e-5);
      const x = tf.randomNormal([50], 0, 2, 'float32', 9);
      const r = tf.randomNormal([50], 0, 1, 'float32', 10);
      const gc = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(gelu(xi), r)) as tf.Scalar)(x);
      const gn = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(naive.gelu(xi), r)) as tf.Scalar)(x);
      assert.ok(relL2(gc, gn) < 1e-5);
      const fd = fdDirectional((xi) => tf.sum(tf.mul(gelu(xi), r)) as tf.Scalar, x, gc, 14, 1e-3);
      assert.ok(fd.relErr < 1e-2, JSON.stringify(fd));
    });
  });

  it('l2Normalize gives unit rows', async () => {
    tf.tidy(() => {
      const n = tf.norm(l2Normalize(tf.randomNormal([4, 9], 0, 5, 'float32', 1) as tf.Tensor2D), 2, -1).dataSync();
      for (const v of n) assert.ok(Math.abs(v - 1) < 1e-6);
    });
  });

  it('attention: matches a naive per-head softmax(qkᵀ/√d)v and its gradients match autodiff and finite differences', async () => {
    tf.tidy(() => {
      const B = 2, N = 5, D = 8, H = 2, d = D / H;
      const x = tf.randomNormal([B * N, D], 0, 1, 'float32', 20) as tf.Tensor2D;
      const w = {
        qkvW: tf.randomNormal([D, 3 * D], 0, 0.5, 'float32', 21) as tf.Tensor2D,
        qkvB: tf.randomNormal([3 * D], 0, 0.1, 'float32', 22) as tf.Tensor1D,
        projW: tf.randomNormal([D, D], 0, 0.5, 'float32', 23) as tf.Tensor2D,
        projB: tf.randomNormal([D], 0, 0.1, 'float32', 24) as tf.Tensor1D,
      };
      const naiveAttn = (xi: tf.Tensor2D, qkvW: tf.Tensor2D) => {
        const qkv = tf.add(tf.matMul(xi, qkvW), w.qkvB);
        const outs: tf.Tensor[] = [];
        for (let b = 0; b < B; b++) {
          const rows = tf.slice(qkv, [b * N, 0], [N, 3 * D]);
          const heads: tf.Tensor[] = [];
          for (let h = 0; h < H; h++) {
            const q = tf.slice(rows, [0, h * d], [N, d]);
            const k = tf.slice(rows, [0, D + h * d], [N, d]);
            const v = tf.slice(rows, [0, 2 * D + h * d], [N, d]);
            heads.push(tf.matMul(tf.softmax(tf.div(tf.matMul(q, k, false, true), Math.sqrt(d))), v));
          }
          outs.push(tf.concat(heads, 1));
        }
        return tf.add(tf.matMul(tf.concat(outs, 0) as tf.Tensor2D, w.projW), w.projB);
      };
      const r = tf.randomNormal([B * N, D], 0, 1, 'float32', 25);
      const { out, probs } = attention(x, w, B, N, H, true);
      assert.ok(relL2(out, naiveAttn(x, w.qkvW)) < 1e-5);
      // Probabilities are row-stochastic.
      const rowSums = tf.sum(probs as tf.Tensor4D, -1).dataSync();
      for (const s of rowSums) assert.ok(Math.abs(s - 1) < 1e-5);
      const lossC = (xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.mul(attention(xi as tf.Tensor2D, { ...w, qkvW: wi as tf.Tensor2D }, B, N, H).out, r)) as tf.Scalar;
      const lossN = (xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.mul(naiveAttn(xi as tf.Tensor2D, wi as tf.Tensor2D), r)) as tf.Scalar;
      const gc = tf.grads(lossC)([x, w.qkvW]);
      const gn = tf.grads(lossN)([x, w.qkvW]);
      assert.ok(relL2(gc[0], gn[0]) < 1e-4 && relL2(gc[1], gn[1]) < 1e-4);
      const fd = fdDirectional((wi) => lossC(x, wi), w.qkvW, gc[1], 26);
      assert.ok(fd.relErr < 2e-2, JSON.stringify(fd));
    });
  });

  it('bicubic position-embedding resampling: weights of each output sum to 1', async () => {
    const m = bicubicMatrix1d(7, 3);
    for (let i = 0; i < 3; i++) {
      let s = 0;
      for (let j = 0; j < 7; j++) s += m[i * 7 + j];
      assert.ok(Math.abs(s - 1) < 1e-6);
    }
  });
});

describe('fused kernels agree with the plain-op path at ViT sizes', () => {
  after(() => useKernels(true));

  /** Forward outputs and gradients of f under both paths. */
  function bothPaths(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], r: tf.Tensor): Array<{ y: Float32Array; g: Float32Array[] }> {
    return [true, false].map((on) => {
      useKernels(on);
      return tf.tidy(() => {
        const y = f(...inputs).dataSync() as Float32Array;
        const g = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), r)) as tf.Scalar)(inputs).map((t) => t.dataSync() as Float32Array);
        return { y, g };
      });
    });
  }
  const rel = relArrays;

  it('attention (3 images × 50 tokens, 4 heads of 32), outputs and gradients', async () => {
    const B = 3, N = 50, D = 128, H = 4;
    const x = tf.randomNormal([B * N, D], 0, 1, 'float32', 31) as tf.Tensor2D;
    const w = {
      qkvW: tf.randomNormal([D, 3 * D], 0, 0.1, 'float32', 32) as tf.Tensor2D,
      qkvB: tf.randomNormal([3 * D], 0, 0.1, 'float32', 33) as tf.Tensor1D,
      projW: tf.randomNormal([D, D], 0, 0.1, 'float32', 34) as tf.Tensor2D,
      projB: tf.randomNormal([D], 0, 0.1, 'float32', 35) as tf.Tensor1D,
    };
    const r = tf.randomNormal([B * N, D], 0, 1, 'float32', 36);
    const [fused, plain] = bothPaths((xi, qw, pw) => attention(xi as tf.Tensor2D, { ...w, qkvW: qw as tf.Tensor2D, projW: pw as tf.Tensor2D }, B, N, H).out, [x, w.qkvW, w.projW], r);
    assert.ok(rel(fused.y, plain.y) < 1e-5, `forward ${rel(fused.y, plain.y)}`);
    for (let i = 0; i < 3; i++) assert.ok(rel(fused.g[i], plain.g[i]) < 1e-4, `grad ${i}: ${rel(fused.g[i], plain.g[i])}`);
    tf.dispose([x, r, ...Object.values(w)]);
  });

  it('linear (x [300, 96] · W [96, 200] + b) and GELU on odd sizes', async () => {
    const x = tf.randomNormal([300, 96], 0, 1, 'float32', 41) as tf.Tensor2D;
    const w = tf.randomNormal([96, 200], 0, 0.1, 'float32', 42) as tf.Tensor2D;
    const b = tf.randomNormal([200], 0, 0.1, 'float32', 43) as tf.Tensor1D;
    const r = tf.randomNormal([300, 200], 0, 1, 'float32', 44);
    const [fused, plain] = bothPaths((xi, wi, bi) => gelu(linear(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D)), [x, w, b], r);
    assert.ok(rel(fused.y, plain.y) < 1e-5, `forward ${rel(fused.y, plain.y)}`);
    for (let i = 0; i < 3; i++) assert.ok(rel(fused.g[i], plain.g[i]) < 1e-5, `grad ${i}: ${rel(fused.g[i], plain.g[i])}`);
    tf.dispose([x, w, b, r]);
  });
});

it('no tensors leak from the layers across repeated forward+backward passes', async () => {
  const x = tf.randomNormal([6, 8]) as tf.Tensor2D;
  const w = tf.randomNormal([8, 8]) as tf.Tensor2D;
  const g = tf.ones([8]) as tf.Tensor1D;
  const b = tf.zeros([8]) as tf.Tensor1D;
  const run = () => {
    const gr = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(gelu(layerNorm(linear(xi as tf.Tensor2D, wi as tf.Tensor2D, b), g, b))) as tf.Scalar)([x, w]);
    tf.dispose(gr);
  };
  run();
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) run();
  assert.equal(tf.memory().numTensors, n0);
  tf.dispose([x, w, g, b]);
});
