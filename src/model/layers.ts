/**
 * The differentiable building blocks of the ViT and the iBOT head, each with a
 * hand-written gradient.
 *
 * Why not plain autodiff: on the wasm backend XNNPACK serves only 2-D matMul
 * without transpose flags; autodiff's matMul gradient uses transpose flags and
 * falls onto a slow scalar loop (a naive ViT step is ~7x slower). So `linear`
 * transposes explicitly and multiplies plainly. LayerNorm and GELU get closed-
 * form backward passes: fewer, cheaper ops than the chain autodiff builds.
 * Every gradient here is checked against finite differences in the tests.
 *
 * With our wasm kernels registered (src/kernels), every product here is our
 * packed GEMM, which reads transposed operands through its packing: the
 * gradients then use transpose flags instead of explicit transposes. Bias
 * gradients (column sums) are SIMD kernels, GELU and LayerNorm are one fused
 * kernel each way, and `linearGelu` adds the bias and applies the GELU in the
 * GEMM's epilogue.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CustomGradientFunc } from '@tensorflow/tfjs-core/dist/engine';
import '../util/gradients';
import { fusedDenseGelu, fusedGelu, fusedGeluGrad, fusedLayerNorm, fusedLayerNormGrad, hasFusedKernels, hasKernel } from '../kernels/ops';
import { KERNEL_NAMES } from '../kernels/register';

type T = tf.Tensor;

/**
 * Whether products take transpose flags at full speed: our wasm GEMM packs
 * the transposed operand as it goes, and WebGPU's tiled product reads it
 * transposed (a separate Transpose would be one more dispatch and pass). On
 * stock wasm any transpose flag falls onto a scalar loop, so there the
 * transpose is explicit and the product stays on the 2-D path.
 */
function transposeFlagsFast(): boolean {
  return hasFusedKernels() || tf.getBackend() === 'webgpu';
}

/** dx = dy·Wᵀ. */
function linearGradX(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return transposeFlagsFast() ? tf.matMul(dy, w, false, true) : tf.matMul(dy, tf.transpose(w));
}

/** dW = xᵀ·dy (with flags, no transpose of the large activation: [6400, 512] in the bench step). */
function linearGradW(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  return transposeFlagsFast() ? tf.matMul(x, dy, true, false) : tf.matMul(tf.transpose(x), dy);
}

/** y = x·W + b with x [M, in], W [in, out] (kernel layout), b [out]. */
const linearWithBias = tf.customGrad(((x: T, w: T, b: T, save: tf.GradSaveFunc) => {
  save([x, w]);
  const value = tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: b });
  return {
    value,
    gradFunc: (dy: T, saved: T[]) => {
      const [xs, ws] = saved;
      return [linearGradX(dy as tf.Tensor2D, ws as tf.Tensor2D), linearGradW(xs as tf.Tensor2D, dy as tf.Tensor2D), tf.sum(dy, 0)];
    },
  };
}) as unknown as CustomGradientFunc<T>);

const linearNoBias = tf.customGrad(((x: T, w: T, save: tf.GradSaveFunc) => {
  save([x, w]);
  const value = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D);
  return {
    value,
    gradFunc: (dy: T, saved: T[]) => {
      const [xs, ws] = saved;
      return [linearGradX(dy as tf.Tensor2D, ws as tf.Tensor2D), linearGradW(xs as tf.Tensor2D, dy as tf.Tensor2D)];
    },
  };
}) as unknown as CustomGradientFunc<T>);

/** Dense layer on rows: x [M, in], w [in, out], optional bias [out]. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  return (b ? linearWithBias(x, w, b) : linearNoBias(x, w)) as tf.Tensor2D;
}

/**
 * x·W + b on data that needs no gradient (the pixels of the patch embedding):
 * the backward pass gives dW and db only and skips dx = dy·Wᵀ, a product as
 * large as the forward one whose result nothing reads. Gradients with respect
 * to x are unavailable through it (`linear` has them).
 */
export function linearOnData(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad(((ws: T, bs: T, save: tf.GradSaveFunc) => {
    // Saved, so the data outlives the tidy scope that made it until the backward pass.
    save([x]);
    return {
      value: tf.fused.matMul({ a: x, b: ws as tf.Tensor2D, bias: bs }),
      gradFunc: (dy: T, saved: T[]) => [linearGradW(saved[0] as tf.Tensor2D, dy as tf.Tensor2D), tf.sum(dy, 0)],
    };
  }) as unknown as CustomGradientFunc<T>);
  return f(w, b) as tf.Tensor2D;
}

/**
 * gelu(x·W + b), the MLP's first layer. With our kernels one GEMM adds the
 * bias and applies the GELU in its epilogue (no separate pass over the
 * [M, out] pre-activation); elsewhere `gelu(linear(x, w, b))`. Same values
 * and gradients either way.
 */
export function linearGelu(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  return (hasFusedKernels() ? linearGeluFused(x, w, b) : gelu(linear(x, w, b))) as tf.Tensor2D;
}

const linearGeluFused = tf.customGrad(((x: T, w: T, b: T, save: tf.GradSaveFunc) => {
  const { h, y } = fusedDenseGelu(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D);
  save([x, w, h]);
  return {
    value: y,
    gradFunc: (dy: T, saved: T[]) => {
      const [xs, ws, hs] = saved;
      const dh = fusedGeluGrad(hs, dy) as tf.Tensor2D;
      return [linearGradX(dh, ws as tf.Tensor2D), linearGradW(xs as tf.Tensor2D, dh), tf.sum(dh, 0)];
    },
  };
}) as unknown as CustomGradientFunc<T>);

/** Row-wise LayerNorm of x [M, D] with affine gamma/beta [D]; eps 1e-6 as timm's ViT. */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-6): tf.Tensor2D {
  if (x.shape[1] % 4 === 0 && hasKernel(KERNEL_NAMES.layerNorm)) return layerNormFused(x, gamma, beta, eps);
  const f = tf.customGrad(((xi: T, g: T, bt: T, save: tf.GradSaveFunc) => {
    const mean = tf.mean(xi, -1, true);
    const xc = tf.sub(xi, mean);
    const variance = tf.mean(tf.square(xc), -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(xc, rstd);
    save([xhat, rstd, g]);
    const value = tf.add(tf.mul(xhat, g), bt);
    return {
      value,
      gradFunc: (dy: T, saved: T[]) => {
        const [xh, rs, gs] = saved;
        const dxhat = tf.mul(dy, gs);
        const m1 = tf.mean(dxhat, -1, true);
        const m2 = tf.mean(tf.mul(dxhat, xh), -1, true);
        const dx = tf.mul(rs, tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)));
        const dg = tf.sum(tf.mul(dy, xh), 0);
        const db = tf.sum(dy, 0);
        return [dx, dg, db];
      },
    };
  }) as unknown as CustomGradientFunc<T>);
  return f(x, gamma, beta) as tf.Tensor2D;
}

/** LayerNorm as one kernel each way (a few programs on webgpu); dγ and dβ are column sums. */
function layerNormFused(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  const f = tf.customGrad(((xi: T, g: T, bt: T, save: tf.GradSaveFunc) => {
    const { y, xhat, rstd } = fusedLayerNorm(xi, g, bt, eps);
    save([xhat, rstd, g]);
    return {
      value: y,
      gradFunc: (dy: T, saved: T[]) => {
        const [xh, rs, gs] = saved;
        return [fusedLayerNormGrad(dy, xh, rs, gs), tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      },
    };
  }) as unknown as CustomGradientFunc<T>);
  return f(x, gamma, beta) as tf.Tensor2D;
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact (erf) GELU, as torch.nn.GELU() in timm/DINO/iBOT: x·Φ(x). One fused kernel each way where available. */
export function gelu<R extends tf.Tensor>(x: R): R {
  return (hasKernel(KERNEL_NAMES.gelu) ? geluFused(x) : geluOps(x)) as R;
}

const geluFused = tf.customGrad(((x: T, save: tf.GradSaveFunc) => {
  save([x]);
  return {
    value: fusedGelu(x),
    gradFunc: (dy: T, saved: T[]) => fusedGeluGrad(saved[0], dy),
  };
}) as unknown as CustomGradientFunc<T>) as <R extends tf.Tensor>(x: R) => R;

const geluOps = tf.customGrad(((x: T, save: tf.GradSaveFunc) => {
  const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(x, SQRT1_2))));
  save([x, cdf]);
  return {
    value: tf.mul(x, cdf),
    gradFunc: (dy: T, saved: T[]) => {
      const [xs, c] = saved;
      // d/dx x·Φ(x) = Φ(x) + x·φ(x)
      const pdf = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(-0.5, tf.mul(xs, xs))));
      return tf.mul(dy, tf.add(c, tf.mul(xs, pdf)));
    },
  };
}) as unknown as CustomGradientFunc<T>) as <R extends tf.Tensor>(x: R) => R;

/** L2-normalise rows (torch F.normalize(x, dim=-1, p=2, eps=1e-12)). Autodiff is fine: elementwise + reductions. */
export function l2Normalize(x: tf.Tensor2D, eps = 1e-12): tf.Tensor2D {
  const norm = tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), eps);
  return tf.div(x, norm);
}

/**
 * Rows `index` (int32 [M], distinct) of x [R, D] → [M, D]. Its gradient scatters dy back into
 * [R, D] zeros: tfjs's own gather gradient needs UnsortedSegmentSum, which the wasm backend lacks.
 */
export function gatherRows(x: tf.Tensor2D, index: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad(((xs: T, save: tf.GradSaveFunc) => {
    // Saved, so the index outlives the tidy scope that made it until the backward pass.
    save([index]);
    return {
      value: tf.gather(xs, index),
      gradFunc: (dy: T, saved: T[]) => tf.scatterND(tf.reshape(saved[0], [-1, 1]), dy, xs.shape),
    };
  }) as unknown as CustomGradientFunc<T>);
  return f(x) as tf.Tensor2D;
}

/*
 * Broadcasts written as products with K = 1 (outer products on the GEMM). On the
 * wasm backend a broadcasting add or multiply computes an index per element (the
 * local crops' [CLS] broadcast alone took 3.9 ms), and tf.tile's gradient is a
 * slice and an add per copy; a product with K = 1 is one fast call each way.
 */

/** A row [1, n] repeated `times` times → [times, n] (as ones[times, 1]·row). */
export function repeatRows(row: tf.Tensor2D, times: number): tf.Tensor2D {
  return tf.matMul(tf.ones([times, 1]), row);
}

/** A column [m, 1] repeated `times` times → [m, times] (as col·ones[1, times]). */
export function repeatCols(col: tf.Tensor2D, times: number): tf.Tensor2D {
  return tf.matMul(col, tf.ones([1, times]));
}
