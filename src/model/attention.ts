/**
 * Multi-head self-attention (timm's `Attention`): qkv projection, scaled
 * dot-product per head, softmax, weighted sum, output projection.
 *
 * The per-head products are batched matMuls. Their forward and backward are
 * written out by hand (one custom gradient for the whole softmax-attention
 * core) so they run through `batchMatMul` below, which the wasm backend can
 * replace with a faster kernel, and so autodiff never builds its chain of
 * transposed-flag products.
 *
 * With our wasm kernels (src/kernels) the whole core is one kernel each way,
 * reading q, k, v as strided views of the 2-D qkv projection and writing the
 * merged heads directly: no split, no head transposes, no separate softmax.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CustomGradientFunc } from '@tensorflow/tfjs-core/dist/engine';
import { gatherRows, linear } from './layers';
import { fusedAttention, fusedAttentionGrad, fusedAttentionStacked, fusedAttentionStackedGrad, hasFusedKernels, hasKernel, qkvHeads, softmaxGrad } from '../kernels/ops';
import { KERNEL_NAMES } from '../kernels/register';
import type { TokenBatch } from '../kernels/stacked';

type T = tf.Tensor;

export interface AttentionWeights {
  qkvW: tf.Tensor2D;
  qkvB?: tf.Tensor1D;
  projW: tf.Tensor2D;
  projB: tf.Tensor1D;
}

/**
 * a·b over a batch of matrices, with optional transposes: a [n, M, K] (or
 * [n, K, M] with transA), b [n, K, N] (or [n, N, K] with transB). Every
 * attention product goes through here.
 */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D, transA = false, transB = false): tf.Tensor3D {
  return tf.matMul(a, b, transA, transB);
}

/** softmax(q·kᵀ·scale)·v on [n, N, d] heads, returning the probabilities too. */
function attentionCore(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, scale: number, keepProbs: boolean): { out: tf.Tensor3D; probs?: tf.Tensor3D } {
  let probsOut: tf.Tensor3D | undefined;
  const f = tf.customGrad(((qi: T, ki: T, vi: T, save: tf.GradSaveFunc) => {
    const scores = batchMatMul(qi as tf.Tensor3D, ki as tf.Tensor3D, false, true);
    const probs = tf.softmax(scale === 1 ? scores : tf.mul(scores, scale)) as tf.Tensor3D;
    save([qi, ki, vi, probs]);
    // Intermediates die with the custom op's scope; keep the probabilities only when the caller wants them.
    if (keepProbs) probsOut = tf.keep(probs);
    return {
      value: batchMatMul(probs, vi as tf.Tensor3D),
      gradFunc: (dy: T, saved: T[]) => {
        const [qs, ks, vs, p] = saved as tf.Tensor3D[];
        const dO = dy as tf.Tensor3D;
        const dV = batchMatMul(p, dO, true, false);
        const dP = batchMatMul(dO, vs, false, true);
        // softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P))
        const dS = hasKernel(KERNEL_NAMES.softmaxGrad) ? softmaxGrad(p, dP) : (tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))) as tf.Tensor3D);
        const dSs = scale === 1 ? dS : (tf.mul(dS, scale) as tf.Tensor3D);
        const dQ = batchMatMul(dSs, ks);
        const dK = batchMatMul(dSs, qs, true, false);
        return [dQ, dK, dV];
      },
    };
  }) as unknown as CustomGradientFunc<T>);
  const out = f(q, k, v) as tf.Tensor3D;
  return { out, probs: probsOut };
}

/** The fused core on qkv [B·N, 3D] → merged heads [B·N, D] (+ probabilities [B·heads, N, N]). */
function fusedCore(qkv: tf.Tensor2D, B: number, N: number, heads: number, scale: number, keepProbs: boolean): { out: tf.Tensor2D; probs?: tf.Tensor3D } {
  let probsOut: tf.Tensor3D | undefined;
  const f = tf.customGrad(((qkvi: T, save: tf.GradSaveFunc) => {
    const { out, probs } = fusedAttention(qkvi as tf.Tensor2D, B, N, heads, scale);
    save([qkvi, probs]);
    if (keepProbs) probsOut = tf.keep(probs);
    return {
      value: out,
      gradFunc: (dy: T, saved: T[]) => fusedAttentionGrad(saved[0] as tf.Tensor2D, saved[1] as tf.Tensor3D, dy as tf.Tensor2D, B, N, heads, scale),
    };
  }) as unknown as CustomGradientFunc<T>);
  const out = f(qkv) as tf.Tensor2D;
  return { out, probs: probsOut };
}

/**
 * Attention on 2-D tokens x [B·N, D] (N tokens per image, [CLS] included).
 * Returns the projected output [B·N, D] and, when asked, the probabilities [B, heads, N, N].
 * With `rows` (token rows, int32 [R]) the output projection runs on those rows only and the
 * output is [R, D]: every token is still a key and a value, only the other queries' outputs go.
 */
export function attention(
  x: tf.Tensor2D,
  w: AttentionWeights,
  B: number,
  N: number,
  heads: number,
  returnProbs = false,
  rows?: tf.Tensor1D,
): { out: tf.Tensor2D; probs?: tf.Tensor4D } {
  return packedAttention(x, w, [{ images: B, tokens: N }], heads, returnProbs, rows);
}

/**
 * `attention` on several batches stacked in one token matrix (the student's
 * global and local crops): the qkv and output projections run once over all
 * rows, the softmax attention per batch (images of different sizes do not
 * attend across). `rows` index the stacked matrix. Probabilities only for a
 * single batch.
 */
export function packedAttention(
  x: tf.Tensor2D,
  w: AttentionWeights,
  batches: readonly TokenBatch[],
  heads: number,
  returnProbs = false,
  rows?: tf.Tensor1D,
): { out: tf.Tensor2D; probs?: tf.Tensor4D } {
  if (returnProbs && batches.length !== 1) throw new Error('attention probabilities come from a single batch of images');
  const qkv = linear(x, w.qkvW, w.qkvB);
  let merged: tf.Tensor2D;
  let probs: tf.Tensor4D | undefined;
  const scale = 1 / Math.sqrt(qkv.shape[1] / 3 / heads);
  if (batches.length > 1 && hasFusedKernels()) {
    // Our kernel reads each batch where it lies in the stacked rows: no split, no concat.
    merged = fusedStackedCore(qkv, batches, heads, scale);
  } else if (hasKernel(KERNEL_NAMES.qkvHeads) && batches.length <= 2) {
    // webgpu: each batch's q, k, v heads in one program each, straight from the stacked rows,
    // q already scaled by 1/√d. At most two batches: the gradient program binds three inputs per
    // batch plus its output, and WebGPU guarantees 8 storage buffers per stage.
    const hs = qkvHeads(qkv, batches, heads, scale);
    const outs = batches.map((b, i) => {
      const { out, probs: p } = attentionCore(hs[3 * i], hs[3 * i + 1], hs[3 * i + 2], 1, returnProbs);
      if (p) probs = keptProbs(p, b.images, heads, b.tokens);
      return mergeHeads(out, b.images, b.tokens, heads);
    });
    merged = outs.length === 1 ? outs[0] : (tf.concat(outs, 0) as tf.Tensor2D);
  } else {
    const parts = batches.length === 1 ? [qkv] : (tf.split(qkv, batches.map((b) => b.images * b.tokens), 0) as tf.Tensor2D[]);
    const cores = parts.map((q, i) => headsCore(q, batches[i].images, batches[i].tokens, heads, scale, returnProbs));
    merged = cores.length === 1 ? cores[0].merged : (tf.concat(cores.map((c) => c.merged), 0) as tf.Tensor2D);
    probs = cores[0].probs;
  }
  return { out: linear(rows ? gatherRows(merged, rows) : merged, w.projW, w.projB), probs };
}

/** The fused core over batches stacked in qkv's rows → merged heads [Σ B·N, D]. */
function fusedStackedCore(qkv: tf.Tensor2D, batches: readonly TokenBatch[], heads: number, scale: number): tf.Tensor2D {
  const f = tf.customGrad(((qkvi: T, save: tf.GradSaveFunc) => {
    const { out, probs } = fusedAttentionStacked(qkvi as tf.Tensor2D, batches, heads, scale);
    save([qkvi, probs]);
    return {
      value: out,
      gradFunc: (dy: T, saved: T[]) => fusedAttentionStackedGrad(saved[0] as tf.Tensor2D, saved[1] as tf.Tensor1D, dy as tf.Tensor2D, batches, heads, scale),
    };
  }) as unknown as CustomGradientFunc<T>);
  return f(qkv) as tf.Tensor2D;
}

/** softmax(q·kᵀ·scale)·v of every head from qkv [B·N, 3D] to the merged heads [B·N, D]. */
function headsCore(qkv: tf.Tensor2D, B: number, N: number, heads: number, scale: number, returnProbs: boolean): { merged: tf.Tensor2D; probs?: tf.Tensor4D } {
  const d = qkv.shape[1] / 3 / heads;
  if (hasFusedKernels()) {
    const { out, probs } = fusedCore(qkv, B, N, heads, scale, returnProbs);
    return { merged: out, probs: probs && keptProbs(probs, B, heads, N) };
  }
  // Split on the 2-D tensor, then one 4-D transpose per operand (no 5-D transposes: slow on wasm).
  const [q, k, v] = tf.split(qkv, 3, 1).map(
    (t) => tf.reshape(tf.transpose(tf.reshape(t, [B, N, heads, d]), [0, 2, 1, 3]), [B * heads, N, d]) as tf.Tensor3D,
  );
  const { out, probs } = attentionCore(q, k, v, scale, returnProbs);
  return { merged: mergeHeads(out, B, N, heads), probs: probs && keptProbs(probs, B, heads, N) };
}

/** Heads [B·heads, N, d] → tokens [B·N, heads·d]. */
function mergeHeads(out: tf.Tensor3D, B: number, N: number, heads: number): tf.Tensor2D {
  const d = out.shape[2];
  return tf.reshape(tf.transpose(tf.reshape(out, [B, heads, N, d]), [0, 2, 1, 3]), [B * N, heads * d]) as tf.Tensor2D;
}

/** The kept probabilities [B·heads, N, N] as [B, heads, N, N]; the reshape shares the data, so ownership passes to the enclosing scope. */
function keptProbs(probs: tf.Tensor3D, B: number, heads: number, N: number): tf.Tensor4D {
  const p4 = tf.reshape(probs, [B, heads, N, N]) as tf.Tensor4D;
  probs.dispose();
  return p4;
}
