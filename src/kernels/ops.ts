/**
 * Tensor-level entry points to the fused kernels, for src/model. Each
 * `has…` tells whether the current backend has the kernel; callers keep a
 * plain-op path for the other backends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KERNEL_NAMES, registerWasmKernels, unregisterWasmKernels, wasmKernelsRegistered } from './register';
import { registerWebGPUKernels } from './webgpu';
import { StackedBatches, groupsAttr } from './stacked';

let autoRegister = process.env.IBOTLAB_KERNELS !== '0';
let autoRegistered = false;

/**
 * Register at import (only the 'wasm' kernel registry is touched; the backend
 * need not exist yet), so that every product of a process runs on the same
 * kernels. Registering at the model's first call instead would leave what
 * runs earlier (the augmentation's colour products) on XNNPACK in the first
 * step only, and a resumed run would then round differently from an
 * uninterrupted one.
 */
if (autoRegister) {
  registerWasmKernels();
  autoRegistered = true;
}
// The WebGPU programs: registered by name only, nothing loads until a webgpu backend runs them.
registerWebGPUKernels();

/**
 * Whether our kernels are registered automatically on the wasm backend
 * (default true, at import; env IBOTLAB_KERNELS=0 turns it off, e.g. to time
 * the stock kernels). Turning it off removes the kernels when they were
 * registered automatically.
 */
export function setAutoRegisterKernels(enabled: boolean): void {
  autoRegister = enabled;
  if (!enabled && autoRegistered) {
    unregisterWasmKernels();
    autoRegistered = false;
  }
}

/**
 * True when the current backend runs our whole set of fused kernels (the
 * wasm one: products with transpose flags, dense+GELU, attention). On the
 * wasm backend this registers them on first call (unless auto-registration
 * is off).
 */
export function hasFusedKernels(): boolean {
  return hasKernel(KERNEL_NAMES.attention);
}

/**
 * True when the current backend has this one fused kernel: the wasm backend
 * has them all, webgpu the GELU and LayerNorm (src/kernels/webgpu.ts).
 */
export function hasKernel(name: (typeof KERNEL_NAMES)[keyof typeof KERNEL_NAMES]): boolean {
  const backend = tf.getBackend();
  if (backend === 'wasm' && autoRegister && !wasmKernelsRegistered()) registerWasmKernels();
  return tf.getKernel(name, backend) !== undefined;
}

/**
 * Dense layer then exact GELU from one GEMM: returns h = x·W + b (kept for
 * the backward pass) and y = gelu(h).
 */
export function fusedDenseGelu(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): { h: tf.Tensor2D; y: tf.Tensor2D } {
  const [h, y] = tf.engine().runKernel(KERNEL_NAMES.denseGelu, { x, w, bias: b }) as tf.Tensor[];
  return { h: h as tf.Tensor2D, y: y as tf.Tensor2D };
}

/** Exact GELU x·Φ(x), one kernel. */
export function fusedGelu<R extends tf.Tensor>(x: R): R {
  return tf.engine().runKernel(KERNEL_NAMES.gelu, { x }) as R;
}

/** dy · (Φ(x) + x·φ(x)), the GELU derivative applied to dy, one kernel. */
export function fusedGeluGrad<R extends tf.Tensor>(x: R, dy: tf.Tensor): R {
  return tf.engine().runKernel(KERNEL_NAMES.geluGrad, { x, dy }) as R;
}

/**
 * softmax(q·kᵀ·scale)·v for every head, straight from the qkv projection
 * [B·N, 3·D] to the merged heads [B·N, D]; also returns the probabilities
 * [B·heads, N, N] (needed by the backward pass).
 */
export function fusedAttention(qkv: tf.Tensor2D, batch: number, tokens: number, heads: number, scale: number): { out: tf.Tensor2D; probs: tf.Tensor3D } {
  const attrs = { batch, tokens, heads, scale };
  const [out, probs] = tf.engine().runKernel(KERNEL_NAMES.attention, { qkv }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { out: out as tf.Tensor2D, probs: probs as tf.Tensor3D };
}

/** Gradient of `fusedAttention`'s output w.r.t. qkv, given the saved probabilities. */
export function fusedAttentionGrad(qkv: tf.Tensor2D, probs: tf.Tensor3D, dy: tf.Tensor2D, batch: number, tokens: number, heads: number, scale: number): tf.Tensor2D {
  const attrs = { batch, tokens, heads, scale };
  return tf.engine().runKernel(KERNEL_NAMES.attentionGrad, { qkv, probs, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/**
 * `fusedAttention` on several batches stacked in qkv's rows (images of different sizes), with
 * attention within each batch: out [Σ B·N, D] and the probabilities as one flat vector.
 */
export function fusedAttentionStacked(qkv: tf.Tensor2D, batches: StackedBatches, heads: number, scale: number): { out: tf.Tensor2D; probs: tf.Tensor1D } {
  const attrs = { batch: 0, tokens: 0, heads, scale, groups: groupsAttr(batches) };
  const [out, probs] = tf.engine().runKernel(KERNEL_NAMES.attention, { qkv }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { out: out as tf.Tensor2D, probs: probs as tf.Tensor1D };
}

/** Gradient of `fusedAttentionStacked`'s output w.r.t. qkv. */
export function fusedAttentionStackedGrad(qkv: tf.Tensor2D, probs: tf.Tensor1D, dy: tf.Tensor2D, batches: StackedBatches, heads: number, scale: number): tf.Tensor2D {
  const attrs = { batch: 0, tokens: 0, heads, scale, groups: groupsAttr(batches) };
  return tf.engine().runKernel(KERNEL_NAMES.attentionGrad, { qkv, probs, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/**
 * q, k, v of every batch stacked in qkv [Σ B·N, 3D] as heads [B·heads, N, d]: [q₁, k₁, v₁, q₂, …]
 * (webgpu: one program each, differentiable).
 */
export function qkvHeads(qkv: tf.Tensor2D, batches: StackedBatches, heads: number, qScale = 1): tf.Tensor3D[] {
  return tf.engine().runKernel(KERNEL_NAMES.qkvHeads, { qkv }, { heads, qScale, groups: groupsAttr(batches) } as unknown as tf.NamedAttrMap) as unknown as tf.Tensor3D[];
}

/** Softmax backward over the last axis, P ⊙ (dy − rowsum(dy ⊙ P)), one kernel (webgpu). */
export function softmaxGrad<R extends tf.Tensor>(probs: R, dy: tf.Tensor): R {
  return tf.engine().runKernel(KERNEL_NAMES.softmaxGrad, { probs, dy }) as R;
}

/**
 * Row LayerNorm of x [..., D] (D a multiple of 4): y = x̂·γ + β with
 * x̂ = (x − mean)/√(var + eps); also returns x̂ and the row statistics the
 * backward reads (`rstd`: 1/√(var + eps) as [rows, 1] on wasm, mean and 1/σ
 * as [2·rows] on webgpu; pass it back unchanged).
 */
export function fusedLayerNorm<R extends tf.Tensor>(x: R, gamma: tf.Tensor, beta: tf.Tensor, eps: number): { y: R; xhat: R; rstd: tf.Tensor } {
  const [y, xhat, rstd] = tf.engine().runKernel(KERNEL_NAMES.layerNorm, { x, gamma, beta }, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y: y as R, xhat: xhat as R, rstd };
}

/** dx of the LayerNorm given dy, the saved x̂ and row statistics, and γ. */
export function fusedLayerNormGrad<R extends tf.Tensor>(dy: tf.Tensor, xhat: R, rstd: tf.Tensor, gamma: tf.Tensor): R {
  return tf.engine().runKernel(KERNEL_NAMES.layerNormGrad, { dy, xhat, rstd, gamma }) as R;
}

/** The AdamW step's constants, as `fusedAdamW` applies them (see `AdamW` in src/train/optim.ts). */
export interface AdamWStepConstants {
  beta1: number;
  beta2: number;
  eps: number;
  /** √(1 − β2ᵗ): the second moment's bias correction. */
  sqrtBc2: number;
  /** The step size divided by the first moment's bias correction 1 − β1ᵗ. */
  lr: number;
  /** 1 − lr·weight decay (1 without decay): decoupled weight decay. */
  keep: number;
}

/**
 * AdamW on a list of parameters in one kernel (wasm): returns the new weights (one tensor per
 * parameter) and moments for weights `ws`, gradients `gs` (shapes alike) and flat moments m, v
 * (parameter after parameter). Parameter p's gradient is first multiplied by
 * `coef[coefIndex[p]]` (−1 or no `coef`: by 1). The values are those of the op-by-op arithmetic
 * bit for bit.
 */
export function fusedAdamW(
  ws: readonly tf.Tensor[],
  gs: readonly tf.Tensor[],
  m: tf.Tensor1D,
  v: tf.Tensor1D,
  k: AdamWStepConstants,
  factors: { coefIndex: readonly number[]; coef?: tf.Tensor1D },
): { ws: tf.Tensor[]; m: tf.Tensor1D; v: tf.Tensor1D } {
  if (gs.length !== ws.length || factors.coefIndex.length !== ws.length) throw new Error(`fusedAdamW: ${ws.length} weights, ${gs.length} gradients and ${factors.coefIndex.length} factor indices`);
  const inputs: tf.NamedTensorMap = { m, v };
  if (factors.coef) inputs.coef = factors.coef;
  ws.forEach((w, p) => (inputs[`w${p}`] = w));
  gs.forEach((g, p) => (inputs[`g${p}`] = g));
  const attrs = { ...k, coefIndex: [...factors.coefIndex] };
  const [m1, v1, ...w1] = tf.engine().runKernel(KERNEL_NAMES.adamW, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { ws: w1, m: m1 as tf.Tensor1D, v: v1 as tf.Tensor1D };
}

/** The teacher's EMA t·momentum + s·(1 − momentum) for each pair (ts[i], ss[i]), one kernel (same values as the two products and the sum). */
export function fusedEma(ts: readonly tf.Tensor[], ss: readonly tf.Tensor[], momentum: number): tf.Tensor[] {
  if (ts.length !== ss.length) throw new Error(`fusedEma: ${ts.length} teacher and ${ss.length} student tensors`);
  const inputs: tf.NamedTensorMap = {};
  ts.forEach((t, p) => (inputs[`t${p}`] = t));
  ss.forEach((s, p) => (inputs[`s${p}`] = s));
  return tf.engine().runKernel(KERNEL_NAMES.ema, inputs, { momentum, count: ts.length } as unknown as tf.NamedAttrMap) as tf.Tensor[];
}
