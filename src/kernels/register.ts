/**
 * Registers our SIMD kernels on the tfjs `wasm` backend.
 *
 * Overrides (each falls back to the stock kernel for cases it does not
 * handle: dtype other than float32, unusual broadcasting or permutations):
 * - BatchMatMul: every transpose-flag variant and batch size through one
 *   packed GEMM (relaxed-SIMD FMA where available); the stock kernel runs any
 *   batched or transposed product on a scalar loop (~1 GFLOP/s). Plain 2-D
 *   products too (faster than XNNPACK per thread), unless
 *   `KernelOptions.plain2d` is false (then they stay on XNNPACK).
 * - _FusedMatMul (x·W + b): the same GEMM, bias as the accumulators' start.
 * - Transpose: 4x4 register transposes for (batched) 2-D, row gathers when
 *   the last axis stays in place (e.g. the [0,2,1,3] head split).
 * - Sum / Mean over leading axes (bias and LayerNorm gradients): column sums
 *   instead of the stock transpose-then-reduce.
 * - Exp: vectorised.
 * - Identity: shares the input's buffer (reference count) instead of
 *   copying it, as the cpu backend does; tfjs clones every tensor a custom
 *   gradient saves for the backward pass, so this saves a copy of most
 *   activations.
 * New kernels (called by src/model through src/kernels/ops.ts):
 * - IbotDenseGelu: x·W + b and its GELU from one GEMM (GELU as epilogue).
 * - IbotGelu / IbotGeluGrad: exact GELU and its derivative, one pass each.
 * - IbotAttention / IbotAttentionGrad: softmax attention on the 2-D qkv
 *   matrix, heads as strided views (no split/transpose/merge).
 * - IbotLayerNorm / IbotLayerNormGrad: row LayerNorm (row width a multiple
 *   of 4) in one pass each way; outputs y, x̂ and 1/σ for the backward.
 * - IbotAdamW / IbotEma: the optimizer step and the teacher's EMA, one pass
 *   per parameter from the parameters' own tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { MAX_CHUNKS } from './pool';
import { StackedGroup, parseGroups } from './stacked';
import { Job, SimdChoice, WasmBackendLike, WasmKernels, attentionScratchBytes, gemmScratchBytes, kernelsFor, setKernelSimd, setKernelThreads, splitRange } from './wasm-kernels';

type TensorInfo = { dataId: object; shape: number[]; dtype: string };
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

export const KERNEL_NAMES = {
  denseGelu: 'IbotDenseGelu',
  gelu: 'IbotGelu',
  geluGrad: 'IbotGeluGrad',
  attention: 'IbotAttention',
  attentionGrad: 'IbotAttentionGrad',
  layerNorm: 'IbotLayerNorm',
  layerNormGrad: 'IbotLayerNormGrad',
  /** AdamW on a list of parameters, the clipping factors applied per parameter (src/train/optim.ts). */
  adamW: 'IbotAdamW',
  /** The teacher's EMA t·m + s·(1 − m) on a list of parameters (src/train/teacher.ts). */
  ema: 'IbotEma',
  /** webgpu only (src/kernels/webgpu.ts): per-head q, k, v out of stacked qkv rows, and back. */
  qkvHeads: 'IbotQkvHeads',
  qkvHeadsGrad: 'IbotQkvHeadsGrad',
  /** webgpu only: the softmax's backward, P ⊙ (dP − rowsum(dP ⊙ P)), one program. */
  softmaxGrad: 'IbotSoftmaxGrad',
} as const;

export interface KernelOptions {
  /**
   * Plain 2-D products (no transposes, batch 1: BatchMatMul and
   * _FusedMatMul) on our GEMM rather than XNNPACK. Default true: measured
   * faster on every dense product of the iBOT step, 1.03–1.17× with plain
   * SIMD and 1.25–1.4× with relaxed SIMD per thread on an AMD EPYC
   * (bench/gemm.ts); false leaves them to XNNPACK (A/B timing).
   */
  plain2d: boolean;
  /** Instruction set of our module (default 'auto': relaxed SIMD when the engine has it). */
  simd?: SimdChoice;
  /**
   * Threads a kernel call may use (main thread + workers). Default: env
   * IBOTLAB_KERNEL_THREADS, else the logical core count. Workers need the
   * multithreaded tfjs build (shared memory); with the single-threaded build
   * kernels always run on the calling thread.
   */
  threads?: number;
}

const DEFAULT_OPTIONS: KernelOptions = { plain2d: true };
let options: KernelOptions = { ...DEFAULT_OPTIONS };
/** Stock kernels we replaced, to fall back to and to restore. */
const stock = new Map<string, tf.KernelConfig>();

const prod = (s: number[]): number => s.reduce((a, b) => a * b, 1);

/** Below this much work a kernel runs on the calling thread alone (waking a worker costs ~10–50 µs). */
let PARALLEL_MIN_FLOPS = 4e6;
let PARALLEL_MIN_ELEMENTS = 1 << 16;

/** Work thresholds for splitting a call across threads (tests lower them to exercise the split paths). */
export function setParallelThresholds(minFlops = 4e6, minElements = 1 << 16): void {
  PARALLEL_MIN_FLOPS = minFlops;
  PARALLEL_MIN_ELEMENTS = minElements;
}

function partsFor(k: WasmKernels, elements: number): number {
  return elements < PARALLEL_MIN_ELEMENTS ? 1 : k.chunks;
}

function stockCall(name: string, args: KernelArgs): TensorInfo | TensorInfo[] {
  const k = stock.get(name);
  if (!k) throw new Error(`custom kernels: no stock ${name} kernel to fall back to`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as unknown as TensorInfo | TensorInfo[];
}

function batchMatMul(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { a, b } = args.inputs;
  const transA = Boolean(args.attrs?.transposeA);
  const transB = Boolean(args.attrs?.transposeB);
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return stockCall('BatchMatMul', args);
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const Kb = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (K !== Kb) return stockCall('BatchMatMul', args); // the stock kernel raises the proper error
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = prod(outerA);
  const batchB = prod(outerB);
  let outer: number[];
  if (batchA === batchB) {
    const r = Math.max(outerA.length, outerB.length);
    const pa = [...Array(r - outerA.length).fill(1), ...outerA];
    const pb = [...Array(r - outerB.length).fill(1), ...outerB];
    if (pa.some((v, i) => v !== pb[i])) return stockCall('BatchMatMul', args);
    outer = pa;
  } else if (batchA === 1) {
    outer = outerB.length >= outerA.length ? outerB : [...Array(outerA.length - outerB.length).fill(1), ...outerB];
  } else if (batchB === 1) {
    outer = outerA.length >= outerB.length ? outerA : [...Array(outerB.length - outerA.length).fill(1), ...outerA];
  } else {
    return stockCall('BatchMatMul', args);
  }
  const batch = Math.max(batchA, batchB);
  if (!transA && !transB && batch === 1 && !options.plain2d) return stockCall('BatchMatMul', args);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput([...outer, M, N], 'float32');
  if (batch * M * N === 0) return out;
  const k = kernelsFor(backend);
  const pa = k.offset(a.dataId);
  const pb = k.offset(b.dataId);
  const pc = k.offset(out.dataId);
  if (K === 0) {
    new Float32Array(k.memory.buffer, pc, batch * M * N).fill(0);
    return out;
  }
  const bA = batchA === 1 ? 0 : M * K * 4;
  const bB = batchB === 1 ? 0 : K * N * 4;
  const sAm = transA ? 4 : K * 4;
  const sAk = transA ? M * 4 : 4;
  const sBk = transB ? 4 : N * 4;
  const sBn = transB ? K * 4 : 4;
  const parts = 2 * batch * M * N * K < PARALLEL_MIN_FLOPS ? 1 : k.chunks;
  if (batch >= parts) {
    k.run(splitRange(batch, parts).map(([s, e], i): Job => ['bmm', [
      pa + s * bA, bA, sAm, sAk, pb + s * bB, bB, sBk, sBn, pc + s * M * N * 4, e - s, M, N, K, 1, k.scratch(gemmScratchBytes(N), i)]]));
    return out;
  }
  for (let i = 0; i < batch; i++) {
    runProduct(k, { a: pa + i * bA, sAm, sAk, b: pb + i * bB, sBk, sBn, c: pc + i * M * N * 4, M, N, K, bias: 0, g: 0 }, parts);
  }
  return out;
}

/** One 2-D product C = op(A)·op(B) (+ bias) (G = gelu(C)); pointers and strides in bytes, C and G rows dense. */
interface Product {
  a: number;
  sAm: number;
  sAk: number;
  b: number;
  sBk: number;
  sBn: number;
  c: number;
  M: number;
  N: number;
  K: number;
  /** Heap offset of N bias floats, 0 for none. */
  bias: number;
  /** Heap offset of G (same shape as C), 0 for none. */
  g: number;
}

/** Scratch slot of the K-split partial products (chunk slots are 0 … MAX_CHUNKS − 1). */
const PARTIALS_SLOT = MAX_CHUNKS;
/** Scratch slot of the optimizer kernel's constants. */
const OPTIM_SLOT = MAX_CHUNKS + 1;
/** Scratch the K-split partials may take (a ViT-S/16 MLP weight is 2.4 MB of them per piece). */
const PARTIALS_MAX_BYTES = 32 << 20;

/**
 * Run one product cut into `parts` pieces. Row pieces each pack all of B
 * (K·N), column pieces all of A (M·K); K pieces pack nothing twice but each
 * writes an M·N partial that a column-sum pass then adds up. Pick the cut
 * that moves the fewest extra floats: K pieces win for the weight gradients
 * xᵀ·dy (K = rows of the batch, M·N = a weight), where column pieces packed
 * the whole activation once per chunk.
 */
function runProduct(k: WasmKernels, p: Product, parts: number): void {
  const { M, N, K } = p;
  const extraRows = M >= 16 ? (parts - 1) * K * N : Infinity;
  const extraCols = N >= 16 ? (parts - 1) * M * K : Infinity;
  // K pieces: one per chunk, fewer when the partials would pass PARTIALS_MAX_BYTES (never fewer than threads).
  const kParts = Math.max(Math.min(parts, k.parts), Math.min(parts, Math.floor(PARTIALS_MAX_BYTES / (4 * M * N))));
  const extraK = p.bias === 0 && p.g === 0 && K >= 64 * kParts ? 2 * kParts * M * N : Infinity;
  if (parts > 1 && extraK < Math.min(extraRows, extraCols)) {
    const MN = M * N;
    const ks = splitRange(K, kParts, 4);
    const partial = k.scratch(ks.length * MN * 4, PARTIALS_SLOT);
    k.run(ks.map(([s, e], j): Job => ['dense', [p.a + s * p.sAk, p.sAm, p.sAk, p.b + s * p.sBk, p.sBk, p.sBn, partial + j * MN * 4, N * 4, M, N, e - s, 0, 0, k.scratch(gemmScratchBytes(N), j)]]));
    k.run(splitRange(MN, parts, 16).map(([s, e]): Job => ['colsum', [partial + s * 4, p.c + s * 4, ks.length, e - s, MN, 1]]));
    return;
  }
  const byRows = extraRows <= extraCols;
  const ranges = splitRange(byRows ? M : N, parts, byRows ? 4 : 8);
  k.run(ranges.map(([s, e], j): Job => byRows
    ? ['dense', [p.a + s * p.sAm, p.sAm, p.sAk, p.b, p.sBk, p.sBn, p.c + s * N * 4, N * 4, e - s, N, K, p.bias, p.g && p.g + s * N * 4, k.scratch(gemmScratchBytes(N), j)]]
    : ['dense', [p.a, p.sAm, p.sAk, p.b + s * p.sBn, p.sBk, p.sBn, p.c + s * 4, N * 4, M, e - s, K, p.bias && p.bias + s * 4, p.g && p.g + s * 4, k.scratch(gemmScratchBytes(e - s), j)]]));
}

/**
 * _FusedMatMul (tf.fused.matMul: the dense layers' x·W + b) on our GEMM, the
 * bias added as the accumulators' starting value. Handles float32, batch 1,
 * any transpose flags, a bias of N values and no activation; the rest (and
 * everything with `plain2d: false`) goes to the stock kernel.
 */
function fusedMatMul(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { a, b, bias, preluActivationWeights } = args.inputs;
  const transA = Boolean(args.attrs?.transposeA);
  const transB = Boolean(args.attrs?.transposeB);
  const activation = (args.attrs?.activation as string | undefined) ?? 'linear';
  if (activation !== 'linear' || preluActivationWeights || a.dtype !== 'float32' || b.dtype !== 'float32') return stockCall('_FusedMatMul', args);
  if (a.shape.length !== 3 || b.shape.length !== 3 || a.shape[0] !== 1 || b.shape[0] !== 1) return stockCall('_FusedMatMul', args);
  const M = transA ? a.shape[2] : a.shape[1];
  const K = transA ? a.shape[1] : a.shape[2];
  const Kb = transB ? b.shape[2] : b.shape[1];
  const N = transB ? b.shape[1] : b.shape[2];
  if (K !== Kb) return stockCall('_FusedMatMul', args);
  if (bias && (bias.dtype !== 'float32' || prod(bias.shape) !== N || (bias.shape.length > 0 && bias.shape[bias.shape.length - 1] !== N))) return stockCall('_FusedMatMul', args);
  if (!transA && !transB && !options.plain2d) return stockCall('_FusedMatMul', args);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput([1, M, N], 'float32');
  if (M * N === 0) return out;
  const k = kernelsFor(backend);
  const pc = k.offset(out.dataId);
  const pbias = bias ? k.offset(bias.dataId) : 0;
  const parts = 2 * M * N * K < PARALLEL_MIN_FLOPS ? 1 : k.chunks;
  runProduct(k, {
    a: k.offset(a.dataId), sAm: transA ? 4 : K * 4, sAk: transA ? M * 4 : 4,
    b: k.offset(b.dataId), sBk: transB ? 4 : N * 4, sBn: transB ? K * 4 : 4,
    c: pc, M, N, K, bias: pbias, g: 0,
  }, parts);
  return out;
}

/**
 * IbotDenseGelu: h = x·W + b and y = gelu(h) from one GEMM whose epilogue
 * runs the GELU on each block of rows while it is still in cache (saves the
 * separate GELU kernel's pass over h). x [M, K], W [K, N], b [N]; outputs
 * [h, y], h being what the GELU backward needs.
 */
function denseGelu(args: KernelArgs): TensorInfo[] {
  const { x, w, bias } = args.inputs;
  checkFloat(KERNEL_NAMES.denseGelu, x, w, bias);
  if (x.shape.length !== 2 || w.shape.length !== 2 || x.shape[1] !== w.shape[0] || prod(bias.shape) !== w.shape[1]) {
    throw new Error(`${KERNEL_NAMES.denseGelu}: x [M, K], W [K, N] and b [N] do not fit: [${x.shape}], [${w.shape}], [${bias.shape}]`);
  }
  const [M, K] = x.shape;
  const N = w.shape[1];
  const backend = args.backend as WasmBackendLike;
  const h = backend.makeOutput([M, N], 'float32');
  const y = backend.makeOutput([M, N], 'float32');
  if (M * N > 0) {
    const k = kernelsFor(backend);
    const parts = 2 * M * N * K < PARALLEL_MIN_FLOPS ? 1 : k.chunks;
    runProduct(k, {
      a: k.offset(x.dataId), sAm: K * 4, sAk: 4, b: k.offset(w.dataId), sBk: N * 4, sBn: 4,
      c: k.offset(h.dataId), M, N, K, bias: k.offset(bias.dataId), g: k.offset(y.dataId),
    }, parts);
  }
  return [h, y];
}

/** Drop size-1 axes and merge axes that stay adjacent and in order under the permutation. */
export function simplifyPermutation(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const keep = perm.filter((p) => shape[p] !== 1);
  if (keep.length === 0) return { shape: [], perm: [] };
  // groups of consecutive input axes, in output order
  const groups: number[][] = [];
  for (const p of keep) {
    const g = groups[groups.length - 1];
    // p continues the group if it is the next non-unit input axis after the group's last
    if (g) {
      let next = g[g.length - 1] + 1;
      while (next < shape.length && shape[next] === 1) next++;
      if (next === p) {
        g.push(p);
        continue;
      }
    }
    groups.push([p]);
  }
  const order = [...groups].sort((x, y) => x[0] - y[0]);
  const newShape = order.map((g) => prod(g.map((p) => shape[p])));
  const newPerm = groups.map((g) => order.indexOf(g));
  return { shape: newShape, perm: newPerm };
}

function transpose(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  const perm = args.attrs?.perm as number[];
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return stockCall('Transpose', args);
  const backend = args.backend as WasmBackendLike;
  const outShape = perm.map((p) => x.shape[p]);
  const size = prod(x.shape);
  const { shape, perm: p } = simplifyPermutation(x.shape, perm);
  const isIdentity = p.every((v, i) => v === i);
  if (isIdentity || size === 0) return stockCall('Transpose', args);
  const r = shape.length;
  const k = kernelsFor(backend);
  if (r === 2 || (r === 3 && p[0] === 0 && p[1] === 2 && p[2] === 1)) {
    const out = backend.makeOutput(outShape, x.dtype);
    const [batch, R, C] = r === 2 ? [1, shape[0], shape[1]] : shape;
    const src = k.offset(x.dataId);
    const dst = k.offset(out.dataId);
    const parts = partsFor(k, size);
    if (batch >= parts) {
      k.run(splitRange(batch, parts).map(([s, e]): Job => ['transpose', [src + s * R * C * 4, dst + s * R * C * 4, e - s, R, C, R]]));
    } else {
      // One matrix (or few): split its rows; each part writes a column band of the output.
      for (let i = 0; i < batch; i++) {
        const o = i * R * C * 4;
        k.run(splitRange(R, parts, 4).map(([s, e]): Job => ['transpose', [src + o + s * C * 4, dst + o + s * 4, 1, e - s, C, R]]));
      }
    }
    return out;
  }
  if (p[r - 1] === r - 1 && r <= 4) {
    // Last axis stays: copy contiguous rows; up to 3 outer loops in output order.
    const strides = new Array<number>(r).fill(0);
    let s = 4;
    for (let i = r - 1; i >= 0; i--) {
      strides[i] = s;
      s *= shape[i];
    }
    const outer = p.slice(0, r - 1).map((ax) => ({ n: shape[ax], s: strides[ax] }));
    while (outer.length < 3) outer.unshift({ n: 1, s: 0 });
    const out = backend.makeOutput(outShape, x.dtype);
    const src = k.offset(x.dataId);
    const dst = k.offset(out.dataId);
    const len = shape[r - 1] * 4;
    const block = outer[1].n * outer[2].n * len;
    k.run(splitRange(outer[0].n, partsFor(k, size)).map(([s, e]): Job => ['gather_rows', [
      src + s * outer[0].s, dst + s * block, e - s, outer[0].s, outer[1].n, outer[1].s, outer[2].n, outer[2].s, len]]));
    return out;
  }
  return stockCall('Transpose', args);
}

function leadingReduction(name: 'Sum' | 'Mean', args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  if (x.dtype !== 'float32' || x.shape.length < 2) return stockCall(name, args);
  const axes = tf.util.parseAxisParam(args.attrs?.axis as number | number[], x.shape).sort((u, v) => u - v);
  const r = axes.length;
  if (r === 0 || r >= x.shape.length || axes.some((a, i) => a !== i)) return stockCall(name, args);
  const R = prod(x.shape.slice(0, r));
  const C = prod(x.shape.slice(r));
  if (R === 0 || C === 0) return stockCall(name, args);
  const backend = args.backend as WasmBackendLike;
  const outShape = args.attrs?.keepDims ? [...Array(r).fill(1), ...x.shape.slice(r)] : x.shape.slice(r);
  const out = backend.makeOutput(outShape, 'float32');
  const k = kernelsFor(backend);
  const src = k.offset(x.dataId);
  const dst = k.offset(out.dataId);
  const scale = name === 'Mean' ? 1 / R : 1;
  const parts = C >= 32 ? partsFor(k, R * C) : 1;
  k.run(splitRange(C, parts, 16).map(([s, e]): Job => ['colsum', [src + s * 4, dst + s * 4, R, e - s, C, scale]]));
  return out;
}

function exp(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  if (x.dtype !== 'float32') return stockCall('Exp', args);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = prod(x.shape);
  if (n > 0) elementwise(kernelsFor(backend), 'exp', [x], out, n);
  return out;
}

/** op(inputs…, out, n) over float arrays of n elements, split across threads. */
function elementwise(k: WasmKernels, op: 'exp' | 'gelu' | 'gelu_grad', inputs: TensorInfo[], out: TensorInfo, n: number): void {
  const ptrs = [...inputs.map((t) => k.offset(t.dataId)), k.offset(out.dataId)];
  k.run(splitRange(n, partsFor(k, n), 4).map(([s, e]): Job => [op, [...ptrs.map((p) => p + s * 4), e - s]]));
}

function identity(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  if (x.dtype === 'string') return stockCall('Identity', args);
  const backend = args.backend as WasmBackendLike & { incRef(dataId: object): void };
  // tfjs tensors are immutable and the wasm backend frees a buffer when its reference count drops to 0.
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * Slices copied straight out of the heap. The stock wasm Slice reads the
 * whole input back (a fresh copy) for every slice, so cutting a flat vector
 * of a million parameters into 60 tensors copied it 60 times (150 ms for what
 * is 5 MB of memcpy). Only the inner contiguous runs move here.
 */
function sliceOut(backend: WasmBackendLike, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const n = prod(size);
  if (n === 0) return out;
  // Views only after makeOutput: allocating may grow the heap and detach earlier views.
  const heap = (backend as unknown as { typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array }).typedArrayFromHeap;
  const src = heap.call(backend, x);
  const dst = heap.call(backend, out);
  const shape = x.shape;
  const rank = shape.length;
  // The innermost axes the slice covers fully, plus the first partial one, form one contiguous run.
  let inner = rank - 1;
  let run = size[rank - 1] ?? 1;
  while (inner > 0 && size[inner] === shape[inner]) {
    inner--;
    run *= size[inner];
  }
  const strides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  const base = begin.reduce((acc, b, i) => acc + b * strides[i], 0);
  const outer = inner > 0 ? size.slice(0, inner) : [];
  const count = prod(outer);
  const idx = new Array<number>(outer.length).fill(0);
  for (let r = 0; r < count; r++) {
    let off = base;
    for (let i = 0; i < outer.length; i++) off += idx[i] * strides[i];
    dst.set(src.subarray(off, off + run), r * run);
    for (let i = outer.length - 1; i >= 0; i--) {
      if (++idx[i] < outer[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

const heapDtype = (t: TensorInfo): boolean => t.dtype === 'float32' || t.dtype === 'int32' || t.dtype === 'bool';

function slice(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  if (!heapDtype(x)) return stockCall('Slice', args);
  const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, args.attrs?.begin as number[], args.attrs?.size as number[]);
  return sliceOut(args.backend as WasmBackendLike, x, begin, size);
}

function splitV(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs;
  if (!heapDtype(x)) return stockCall('SplitV', args);
  const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, args.attrs?.numOrSizeSplits as number[] | number, axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[axis] = s;
    const part = sliceOut(args.backend as WasmBackendLike, x, begin, size);
    begin[axis] += s;
    return part;
  });
}

function unpack(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { value } = args.inputs;
  if (!heapDtype(value)) return stockCall('Unpack', args);
  const rank = value.shape.length;
  const axis = ((args.attrs?.axis as number) + rank) % rank;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const begin = new Array<number>(rank).fill(0);
  const size = value.shape.slice();
  size[axis] = 1;
  return Array.from({ length: value.shape[axis] }, (_, i) => {
    begin[axis] = i;
    const part = sliceOut(args.backend as WasmBackendLike, value, begin, size);
    return { ...part, shape: outShape };
  });
}

/**
 * Gather (batchDims 0) as row copies out of the heap. The stock wasm Gather
 * walks the output element by element: picking 1,128 rows of 128 floats took
 * 5 ms, a memcpy's worth of work (the heads' masked-patch rows, train/patch-rows.ts).
 */
function gatherV2(args: KernelArgs): TensorInfo | TensorInfo[] {
  const { x, indices } = args.inputs;
  if (!heapDtype(x) || indices.dtype !== 'int32' || ((args.attrs?.batchDims as number) ?? 0) !== 0) return stockCall('GatherV2', args);
  const backend = args.backend as WasmBackendLike;
  const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
  const dim = x.shape[axis];
  const outer = prod(x.shape.slice(0, axis));
  const run = prod(x.shape.slice(axis + 1));
  const out = backend.makeOutput([...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], x.dtype);
  // Views only after makeOutput: allocating may grow the heap and detach earlier views.
  const heap = (backend as unknown as { typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array }).typedArrayFromHeap;
  const idx = heap.call(backend, indices);
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < dim)) throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dim - 1}]`);
  }
  const src = heap.call(backend, x);
  const dst = heap.call(backend, out);
  let o = 0;
  if (run < 16) {
    // Short rows (a gather of single values, e.g. a factor per parameter spread over a flat vector):
    // element by element, as a subarray per row costs far more than the copy (50 ms for 1.2M values).
    for (let a = 0; a < outer; a++) {
      for (let i = 0; i < idx.length; i++) {
        const from = (a * dim + idx[i]) * run;
        for (let j = 0; j < run; j++) dst[o++] = src[from + j];
      }
    }
    return out;
  }
  for (let a = 0; a < outer; a++) {
    for (let i = 0; i < idx.length; i++, o += run) dst.set(src.subarray((a * dim + idx[i]) * run, (a * dim + idx[i] + 1) * run), o);
  }
  return out;
}

function checkFloat(name: string, ...ts: TensorInfo[]): void {
  for (const t of ts) if (t.dtype !== 'float32') throw new Error(`${name} takes float32 tensors, got ${t.dtype}`);
}

function gelu(args: KernelArgs): TensorInfo {
  const { x } = args.inputs;
  checkFloat(KERNEL_NAMES.gelu, x);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = prod(x.shape);
  if (n > 0) elementwise(kernelsFor(backend), 'gelu', [x], out, n);
  return out;
}

function geluGrad(args: KernelArgs): TensorInfo {
  const { x, dy } = args.inputs;
  checkFloat(KERNEL_NAMES.geluGrad, x, dy);
  if (prod(x.shape) !== prod(dy.shape)) throw new Error(`${KERNEL_NAMES.geluGrad}: x [${x.shape}] and dy [${dy.shape}] differ in size`);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput(x.shape, 'float32');
  const n = prod(x.shape);
  if (n > 0) elementwise(kernelsFor(backend), 'gelu_grad', [x, dy], out, n);
  return out;
}

interface AttentionAttrs {
  batch: number;
  tokens: number;
  heads: number;
  scale: number;
  /**
   * Several batches stacked in qkv's rows, as [B1, N1, B2, N2, …] (then `batch` and `tokens`
   * are not read): attention within each, probabilities as one flat [Σ B·heads·N²] vector.
   */
  groups?: number[];
}

/** A batch of the stacked rows, and where its probabilities start (in floats). */
type AttentionGroup = StackedGroup & { prob: number };

function attentionDims(name: string, qkv: TensorInfo, attrs: AttentionAttrs): { groups: AttentionGroup[]; H: number; d: number; D: number; rows: number; probs: number } {
  const H = attrs.heads;
  const pairs = attrs.groups ?? [attrs.batch, attrs.tokens];
  const { groups: stack, rows } = parseGroups(name, pairs);
  let prob = 0;
  const groups = stack.map((g): AttentionGroup => {
    const at = prob;
    prob += g.B * H * g.N * g.N;
    return { ...g, prob: at };
  });
  if (qkv.shape.length !== 2 || qkv.shape[0] !== rows || qkv.shape[1] % (3 * H) !== 0) {
    throw new Error(`${name}: qkv must be [Σ batch·tokens, 3·heads·d], got [${qkv.shape}] for (batch, tokens) [${pairs}], heads ${H}`);
  }
  const D = qkv.shape[1] / 3;
  return { groups, H, d: D / H, D, rows, probs: prob };
}

function attention(args: KernelArgs): TensorInfo[] {
  const { qkv } = args.inputs;
  checkFloat(KERNEL_NAMES.attention, qkv);
  const attrs = args.attrs as unknown as AttentionAttrs;
  const { groups, H, d, D, rows, probs: nProbs } = attentionDims(KERNEL_NAMES.attention, qkv, attrs);
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput([rows, D], 'float32');
  const probs = backend.makeOutput(attrs.groups ? [nProbs] : [groups[0].B * H, groups[0].N, groups[0].N], 'float32');
  if (rows * D > 0) {
    const k = kernelsFor(backend);
    const [pq, po, pp] = [k.offset(qkv.dataId), k.offset(out.dataId), k.offset(probs.dataId)];
    for (const { B, N, row, prob } of groups) {
      if (B * N === 0) continue;
      const parts = 4 * B * N * N * D < PARALLEL_MIN_FLOPS ? 1 : k.chunks;
      const [q, o, p] = [pq + row * 3 * D * 4, po + row * D * 4, pp + prob * 4];
      k.run(splitRange(B, parts).map(([s, e], i): Job => ['attn_fwd', [q, o, p, s, e, N, H, d, attrs.scale, k.scratch(attentionScratchBytes(N, d), i)]]));
    }
  }
  return [out, probs];
}

function attentionGrad(args: KernelArgs): TensorInfo {
  const { qkv, probs, dy } = args.inputs;
  checkFloat(KERNEL_NAMES.attentionGrad, qkv, probs, dy);
  const attrs = args.attrs as unknown as AttentionAttrs;
  const { groups, H, d, D, rows, probs: nProbs } = attentionDims(KERNEL_NAMES.attentionGrad, qkv, attrs);
  if (prod(dy.shape) !== rows * D || prod(probs.shape) !== nProbs) {
    throw new Error(`${KERNEL_NAMES.attentionGrad}: dy [${dy.shape}] / probs [${probs.shape}] do not match qkv [${qkv.shape}]`);
  }
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput([rows, 3 * D], 'float32');
  if (rows * D > 0) {
    const k = kernelsFor(backend);
    const [pq, pp, pd, po] = [k.offset(qkv.dataId), k.offset(probs.dataId), k.offset(dy.dataId), k.offset(out.dataId)];
    for (const { B, N, row, prob } of groups) {
      if (B * N === 0) continue;
      const parts = 8 * B * N * N * D < PARALLEL_MIN_FLOPS ? 1 : k.chunks;
      const [q, p, dd, o] = [pq + row * 3 * D * 4, pp + prob * 4, pd + row * D * 4, po + row * 3 * D * 4];
      k.run(splitRange(B, parts).map(([s, e], i): Job => ['attn_bwd', [q, p, dd, o, s, e, N, H, d, attrs.scale, k.scratch(attentionScratchBytes(N, d), i)]]));
    }
  }
  return out;
}

function layerNorm(args: KernelArgs): TensorInfo[] {
  const { x, gamma, beta } = args.inputs;
  checkFloat(KERNEL_NAMES.layerNorm, x, gamma, beta);
  const D = x.shape[x.shape.length - 1];
  const M = prod(x.shape) / D;
  if (D % 4 !== 0 || prod(gamma.shape) !== D || prod(beta.shape) !== D) {
    throw new Error(`${KERNEL_NAMES.layerNorm}: rows of width ${D} need gamma/beta of ${D} values and a width that is a multiple of 4`);
  }
  const backend = args.backend as WasmBackendLike;
  const y = backend.makeOutput(x.shape, 'float32');
  const xhat = backend.makeOutput(x.shape, 'float32');
  const rstd = backend.makeOutput([M, 1], 'float32');
  if (M > 0) {
    const k = kernelsFor(backend);
    const p = [x, gamma, beta, y, xhat, rstd].map((t) => k.offset(t.dataId));
    const eps = Number(args.attrs?.eps ?? 1e-6);
    k.run(splitRange(M, partsFor(k, M * D)).map(([s, e]): Job => ['ln_fwd', [...p, s, e, D, eps]]));
  }
  return [y, xhat, rstd];
}

function layerNormGrad(args: KernelArgs): TensorInfo {
  const { dy, xhat, rstd, gamma } = args.inputs;
  checkFloat(KERNEL_NAMES.layerNormGrad, dy, xhat, rstd, gamma);
  const D = xhat.shape[xhat.shape.length - 1];
  const M = prod(xhat.shape) / D;
  if (D % 4 !== 0 || prod(dy.shape) !== M * D || prod(rstd.shape) !== M || prod(gamma.shape) !== D) {
    throw new Error(`${KERNEL_NAMES.layerNormGrad}: dy [${dy.shape}], xhat [${xhat.shape}], rstd [${rstd.shape}], gamma [${gamma.shape}] do not fit together`);
  }
  const backend = args.backend as WasmBackendLike;
  const dx = backend.makeOutput(xhat.shape, 'float32');
  if (M > 0) {
    const k = kernelsFor(backend);
    const p = [dy, xhat, rstd, gamma, dx].map((t) => k.offset(t.dataId));
    k.run(splitRange(M, partsFor(k, M * D)).map(([s, e]): Job => ['ln_bwd', [...p, s, e, D]]));
  }
  return dx;
}

/**
 * Pieces of parameters for a parallel call: parameter p's elements cut into runs of at most
 * ⌈total / chunks⌉, so a large parameter spreads over the threads and small ones stay whole.
 * Run in batches of at most MAX_CHUNKS jobs (a ViT-S/16 has 150 parameters).
 */
function runPieces(k: WasmKernels, sizes: number[], job: (p: number, start: number, count: number) => Job): void {
  const total = sizes.reduce((a, b) => a + b, 0);
  const piece = Math.max(1024, Math.ceil(total / partsFor(k, total) / 4) * 4);
  const jobs: Job[] = [];
  sizes.forEach((n, p) => {
    for (let s = 0; s < n; s += piece) jobs.push(job(p, s, Math.min(piece, n - s)));
  });
  for (let i = 0; i < jobs.length; i += MAX_CHUNKS) k.run(jobs.slice(i, i + MAX_CHUNKS));
}

/** Inputs named prefix0, prefix1, … (parameter lists passed to one kernel). */
function listed(inputs: Record<string, TensorInfo>, prefix: string, P: number, kernel: string): TensorInfo[] {
  return Array.from({ length: P }, (_, p) => {
    const t = inputs[`${prefix}${p}`];
    if (!t) throw new Error(`${kernel}: input ${prefix}${p} missing (expected ${P} parameters)`);
    return t;
  });
}

/**
 * IbotAdamW: AdamW on P parameters in one pass each: inputs w0…, g0… (weights and gradients,
 * shapes alike), m and v (the moments, flat, parameter after parameter) and optional coef
 * (gradient factors, e.g. clipping: parameter p's gradient is multiplied by coef[coefIndex[p]],
 * none for −1). Outputs [m', v', w'0, …]. Attrs: coefIndex and the constants beta1, beta2, eps,
 * sqrtBc2 (√(1 − β2ᵗ)), lr (already divided by 1 − β1ᵗ) and keep (1 − lr·decay).
 */
function adamW(args: KernelArgs): TensorInfo[] {
  const a = args.attrs as { coefIndex: number[]; beta1: number; beta2: number; eps: number; sqrtBc2: number; lr: number; keep: number };
  const P = a.coefIndex.length;
  const { m, v, coef } = args.inputs;
  const ws = listed(args.inputs, 'w', P, KERNEL_NAMES.adamW);
  const gs = listed(args.inputs, 'g', P, KERNEL_NAMES.adamW);
  checkFloat(KERNEL_NAMES.adamW, m, v, ...ws, ...gs, ...(coef ? [coef] : []));
  const sizes = ws.map((t) => prod(t.shape));
  const n = sizes.reduce((x, y) => x + y, 0);
  if (gs.some((g, p) => prod(g.shape) !== sizes[p]) || prod(m.shape) !== n || prod(v.shape) !== n) {
    throw new Error(`${KERNEL_NAMES.adamW}: each gradient must match its weights, and the moments hold all ${n} values`);
  }
  const coefSize = coef ? prod(coef.shape) : 0;
  if (a.coefIndex.some((c) => c >= coefSize)) throw new Error(`${KERNEL_NAMES.adamW}: a parameter's factor index is past the ${coefSize} factors given`);
  const backend = args.backend as WasmBackendLike;
  const outs = [backend.makeOutput(m.shape, 'float32'), backend.makeOutput(v.shape, 'float32'), ...ws.map((w) => backend.makeOutput(w.shape, 'float32'))];
  if (n === 0) return outs;
  const k = kernelsFor(backend);
  const consts = k.scratch(8 * 4, OPTIM_SLOT);
  // Views only after every allocation (growing the heap detaches them).
  new Float32Array(k.memory.buffer, consts, 8).set([a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, a.sqrtBc2, a.eps, a.keep, a.lr]);
  const factors = coef ? new Float32Array(k.memory.buffer, k.offset(coef.dataId), coefSize) : undefined;
  const scales = a.coefIndex.map((c) => (factors && c >= 0 ? factors[c] : 1));
  const [pm, pv, pmo, pvo] = [m, v, outs[0], outs[1]].map((t) => k.offset(t.dataId));
  const [pw, pg, pwo] = [ws, gs, outs.slice(2)].map((l) => l.map((t) => k.offset(t.dataId)));
  const start = sizes.reduce((o, sz) => [...o, o[o.length - 1] + sz], [0]);
  runPieces(k, sizes, (p, s, c): Job => {
    const i = (start[p] + s) * 4;
    return ['adamw', [pw[p] + s * 4, pg[p] + s * 4, pm + i, pv + i, pwo[p] + s * 4, pmo + i, pvo + i, c, scales[p], consts]];
  });
  return outs;
}

/** IbotEma: t·momentum + s·(1 − momentum) for P parameter pairs (inputs t0…, s0…; outputs one per pair). */
function ema(args: KernelArgs): TensorInfo[] {
  const P = Number(args.attrs?.count);
  const ts = listed(args.inputs, 't', P, KERNEL_NAMES.ema);
  const ss = listed(args.inputs, 's', P, KERNEL_NAMES.ema);
  checkFloat(KERNEL_NAMES.ema, ...ts, ...ss);
  const sizes = ts.map((t) => prod(t.shape));
  if (ss.some((x, p) => prod(x.shape) !== sizes[p])) throw new Error(`${KERNEL_NAMES.ema}: each teacher tensor must match its student tensor`);
  const mom = Number(args.attrs?.momentum);
  const backend = args.backend as WasmBackendLike;
  const outs = ts.map((t) => backend.makeOutput(t.shape, 'float32'));
  const k = kernelsFor(backend);
  const [pt, ps, po] = [ts, ss, outs].map((l) => l.map((t) => k.offset(t.dataId)));
  runPieces(k, sizes, (p, s, c): Job => ['ema', [pt[p] + s * 4, ps[p] + s * 4, po[p] + s * 4, c, mom, 1 - mom]]);
  return outs;
}

type OurKernel = (args: KernelArgs) => TensorInfo | TensorInfo[];
const OVERRIDES: Record<string, OurKernel> = {
  BatchMatMul: batchMatMul,
  _FusedMatMul: fusedMatMul,
  Transpose: transpose,
  Sum: (a) => leadingReduction('Sum', a),
  Mean: (a) => leadingReduction('Mean', a),
  Exp: exp,
  Identity: identity,
  Slice: slice,
  SplitV: splitV,
  Unpack: unpack,
  GatherV2: gatherV2,
};
const NEW_KERNELS: Record<string, OurKernel> = {
  [KERNEL_NAMES.denseGelu]: denseGelu,
  [KERNEL_NAMES.gelu]: gelu,
  [KERNEL_NAMES.geluGrad]: geluGrad,
  [KERNEL_NAMES.attention]: attention,
  [KERNEL_NAMES.attentionGrad]: attentionGrad,
  [KERNEL_NAMES.layerNorm]: layerNorm,
  [KERNEL_NAMES.layerNormGrad]: layerNormGrad,
  [KERNEL_NAMES.adamW]: adamW,
  [KERNEL_NAMES.ema]: ema,
};

let registered = false;

/**
 * Install the kernels on the `wasm` backend (idempotent). Call before or
 * after `tf.setBackend('wasm')`. Throws if this tfjs-backend-wasm build does
 * not expose its memory (checked when a backend instance is given).
 */
export function registerWasmKernels(opts: Partial<KernelOptions> = {}): void {
  options = { ...DEFAULT_OPTIONS, ...opts };
  setKernelThreads(options.threads);
  setKernelSimd(options.simd ?? 'auto');
  if (registered) return;
  for (const [name, fn] of Object.entries(OVERRIDES)) {
    const orig = tf.getKernel(name, 'wasm');
    if (!orig) continue; // nothing to override (kernel absent in this tfjs version)
    stock.set(name, orig);
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      setupFunc: orig.setupFunc,
      disposeFunc: orig.disposeFunc,
      kernelFunc: fn as unknown as tf.KernelFunc,
    });
  }
  for (const [name, fn] of Object.entries(NEW_KERNELS)) {
    if (!tf.getKernel(name, 'wasm')) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: fn as unknown as tf.KernelFunc });
  }
  registered = true;
}

/** Put the stock kernels back and remove ours (tests, A/B timing). */
export function unregisterWasmKernels(): void {
  if (!registered) return;
  for (const [name, orig] of stock) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(orig);
  }
  stock.clear();
  for (const name of Object.keys(NEW_KERNELS)) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  registered = false;
}

export function wasmKernelsRegistered(): boolean {
  return registered;
}

/** Current options (e.g. to report in benchmarks). */
export function wasmKernelOptions(): Readonly<KernelOptions> {
  return options;
}
