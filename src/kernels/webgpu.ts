/**
 * GELU, LayerNorm and attention's q/k/v heads as WebGPU programs for the tfjs
 * `webgpu` backend.
 *
 * Why: a small model's GPU step is bound by dispatches, not arithmetic (about
 * 2,400 kernels per `bench` step at batch 64 on an H200, see the README's GPU
 * section). Written with plain tfjs ops, a LayerNorm costs 9 dispatches
 * forward and 11 backward and an exact GELU 5 and 8; here they cost 3 + 5 and
 * 1 + 1, with the same formulas (the GELU's erf is the Abramowitz–Stegun
 * 7.1.26 form tfjs's own WebGPU `Erf` uses, |error| ≤ 1.5e-7). Attention's
 * heads come straight out of the qkv rows, one program per q, k, v and one
 * for the whole gradient, instead of splits (a slice per output) and
 * transposes.
 *
 * The GELU and LayerNorm kernels carry the same names and inputs as the wasm ones
 * (`register.ts`), so the model code (`src/model/layers.ts`) calls them
 * through `ops.ts` on either backend. One difference: LayerNorm's third
 * output, the per-row statistics the backward reads, is `[rows, 1]` 1/σ on
 * wasm and `[2·rows]` (mean, 1/σ) here; the model only passes it back.
 *
 * Nothing here imports the WebGPU backend: the programs are plain objects in
 * the shape `WebGPUBackend.runWebGPUProgram` takes, registered by name, so a
 * process without the `webgpu` package pays nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { KERNEL_NAMES } from './register';
import { parseGroups } from './stacked';

type TensorInfo = { dataId: object; shape: number[]; dtype: string };
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };
type Uniform = { type: 'int32' | 'float32'; data: number[] };

/** What the programs need of tfjs-backend-webgpu's `WebGPUBackend`. */
interface WebGPUBackendLike {
  runWebGPUProgram(program: Program, inputs: TensorInfo[], outputDtype: 'float32', uniforms?: Uniform[]): TensorInfo;
}

/** The fields `runWebGPUProgram` reads (tfjs-backend-webgpu's `WebGPUProgram`). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  variableNames: string[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Adds `uniforms.size` (the output's element count). */
  size: boolean;
  uniforms?: string;
  getUserCode(): string;
}

const WORKGROUP = 64;

/**
 * One thread per index over `threads` indices (a flat layout: the backend
 * folds a dispatch past 65,535 workgroups into y and z, and `main(index)`
 * gets the global index either way, so every body checks its bound).
 */
function program(outputShape: number[], threads: number, key: string, variableNames: string[], body: string, uniforms?: string): Program {
  return {
    outputShape,
    shaderKey: key,
    variableNames,
    // Flat: every output dimension on x (the dispatch itself is sized per thread below).
    dispatchLayout: { x: outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(threads / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
    size: true,
    uniforms,
    getUserCode: () => body,
  };
}

/** Φ(x) = ½(1 + erf(x/√2)), erf as in tfjs's WebGPU `Erf` (Abramowitz–Stegun 7.1.26). */
const PHI = `
  fn ibotPhi(x : f32) -> f32 {
    let a = x * ${Math.SQRT1_2};
    let t = 1.0 / (1.0 + ${tf.backend_util.ERF_P} * abs(a));
    let poly = ((((${tf.backend_util.ERF_A5} * t + ${tf.backend_util.ERF_A4}) * t + ${tf.backend_util.ERF_A3}) * t + ${tf.backend_util.ERF_A2}) * t + ${tf.backend_util.ERF_A1}) * t;
    return 0.5 * (1.0 + sign(a) * (1.0 - poly * exp(-a * a)));
  }`;

function gelu(args: KernelArgs): TensorInfo {
  const { x } = args.inputs;
  const n = tf.util.sizeFromShape(x.shape);
  const p = program(x.shape, n, 'ibot_gelu', ['X'], `${PHI}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let v = X[index];
      result[index] = v * ibotPhi(v);
    }
  }`);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(p, [x], 'float32');
}

function geluGrad(args: KernelArgs): TensorInfo {
  const { x, dy } = args.inputs;
  const n = tf.util.sizeFromShape(x.shape);
  const p = program(x.shape, n, 'ibot_gelu_grad', ['X', 'DY'], `${PHI}
  fn main(index : i32) {
    if (index < uniforms.size) {
      let v = X[index];
      // d/dx x·Φ(x) = Φ(x) + x·φ(x)
      result[index] = DY[index] * (ibotPhi(v) + v * ${1 / Math.sqrt(2 * Math.PI)} * exp(-0.5 * v * v));
    }
  }`);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(p, [x, dy], 'float32');
}

/** Per-row statistics: mean and 1/√(var + eps), two passes over the row as the plain ops do. */
function rowStats(backend: WebGPUBackendLike, x: TensorInfo, M: number, D: number, eps: number): TensorInfo {
  const p = program([2 * M], M, 'ibot_ln_stats', ['X'], `
  fn main(index : i32) {
    if (index < uniforms.rows) {
      let base = index * uniforms.d;
      var s = 0.0;
      for (var j = 0; j < uniforms.d; j++) { s += X[base + j]; }
      let mean = s / f32(uniforms.d);
      var q = 0.0;
      for (var j = 0; j < uniforms.d; j++) { let c = X[base + j] - mean; q += c * c; }
      result[2 * index] = mean;
      result[2 * index + 1] = inverseSqrt(q / f32(uniforms.d) + uniforms.eps);
    }
  }`, 'rows : i32, d : i32, eps : f32,');
  return backend.runWebGPUProgram(p, [x], 'float32', [{ type: 'int32', data: [M] }, { type: 'int32', data: [D] }, { type: 'float32', data: [eps] }]);
}

function rowsOf(name: string, x: TensorInfo, gammaSize: number): { M: number; D: number } {
  const D = x.shape[x.shape.length - 1];
  if (x.dtype !== 'float32' || gammaSize !== D) throw new Error(`${name}: float32 rows of width ${D} need ${D} γ values, got ${gammaSize}`);
  return { M: tf.util.sizeFromShape(x.shape) / D, D };
}

function layerNorm(args: KernelArgs): TensorInfo[] {
  const { x, gamma, beta } = args.inputs;
  const { M, D } = rowsOf(KERNEL_NAMES.layerNorm, x, tf.util.sizeFromShape(gamma.shape));
  const backend = args.backend as WebGPUBackendLike;
  const stats = rowStats(backend, x, M, D, Number(args.attrs?.eps ?? 1e-6));
  const n = M * D;
  const xhat = backend.runWebGPUProgram(program(x.shape, n, 'ibot_ln_xhat', ['X', 'S'], `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let r = index / uniforms.d;
      result[index] = (X[index] - S[2 * r]) * S[2 * r + 1];
    }
  }`, 'd : i32,'), [x, stats], 'float32', [{ type: 'int32', data: [D] }]);
  const y = backend.runWebGPUProgram(program(x.shape, n, 'ibot_ln_affine', ['XH', 'G', 'B'], `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let j = index % uniforms.d;
      result[index] = XH[index] * G[j] + B[j];
    }
  }`, 'd : i32,'), [xhat, gamma, beta], 'float32', [{ type: 'int32', data: [D] }]);
  return [y, xhat, stats];
}

/** dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·γ: the row means, then dx. */
function layerNormGrad(args: KernelArgs): TensorInfo {
  const { dy, xhat, rstd: stats, gamma } = args.inputs;
  const { M, D } = rowsOf(KERNEL_NAMES.layerNormGrad, xhat, tf.util.sizeFromShape(gamma.shape));
  if (tf.util.sizeFromShape(stats.shape) !== 2 * M || tf.util.sizeFromShape(dy.shape) !== M * D) {
    throw new Error(`${KERNEL_NAMES.layerNormGrad}: dy [${dy.shape}] and row statistics [${stats.shape}] do not fit x̂ [${xhat.shape}] (statistics come from this backend's ${KERNEL_NAMES.layerNorm})`);
  }
  const backend = args.backend as WebGPUBackendLike;
  const means = backend.runWebGPUProgram(program([2 * M], M, 'ibot_ln_grad_means', ['DY', 'XH', 'G'], `
  fn main(index : i32) {
    if (index < uniforms.rows) {
      let base = index * uniforms.d;
      var m1 = 0.0;
      var m2 = 0.0;
      for (var j = 0; j < uniforms.d; j++) {
        let g = DY[base + j] * G[j];
        m1 += g;
        m2 += g * XH[base + j];
      }
      result[2 * index] = m1 / f32(uniforms.d);
      result[2 * index + 1] = m2 / f32(uniforms.d);
    }
  }`, 'rows : i32, d : i32,'), [dy, xhat, gamma], 'float32', [{ type: 'int32', data: [M] }, { type: 'int32', data: [D] }]);
  const dx = backend.runWebGPUProgram(program(xhat.shape, M * D, 'ibot_ln_grad', ['DY', 'XH', 'S', 'MS', 'G'], `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let r = index / uniforms.d;
      let j = index % uniforms.d;
      result[index] = S[2 * r + 1] * (DY[index] * G[j] - MS[2 * r] - XH[index] * MS[2 * r + 1]);
    }
  }`, 'd : i32,'), [dy, xhat, stats, means, gamma], 'float32', [{ type: 'int32', data: [D] }]);
  (backend as unknown as { disposeData(dataId: object): void }).disposeData(means.dataId);
  return dx;
}

/**
 * q, k and v of every batch stacked in qkv [Σ B·N, 3D] (the qkv projection's output), each as
 * heads [B·H, N, d], straight out of the 2-D matrix: one program per output instead of a split
 * of the rows, a split of the three parts and a transpose of each.
 */
function qkvHeads(args: KernelArgs): TensorInfo[] {
  const { qkv } = args.inputs;
  const H = Number(args.attrs?.heads);
  // q comes out multiplied by this (the attention's 1/√d, saving a product on the scores and one on their gradient)
  const qScale = Number(args.attrs?.qScale ?? 1);
  const D = qkv.shape[1] / 3;
  const d = D / H;
  const { groups: batches, rows } = parseGroups(KERNEL_NAMES.qkvHeads, args.attrs?.groups);
  if (qkv.shape.length !== 2 || qkv.shape[0] !== rows || !Number.isInteger(d)) {
    throw new Error(`${KERNEL_NAMES.qkvHeads}: qkv must be [Σ B·N, 3·heads·d], got [${qkv.shape}] for ${rows} rows and ${H} heads`);
  }
  const backend = args.backend as WebGPUBackendLike;
  const out: TensorInfo[] = [];
  for (const { B, N, row } of batches) {
    for (let part = 0; part < 3; part++) {
      // element (bh, n, c) of the heads ← qkv[row + b·N + n][part·D + h·d + c]
      const p = program([B * H, N, d], B * H * N * d, 'ibot_qkv_heads', ['QKV'], `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let c = index % uniforms.d;
      let n = (index / uniforms.d) % uniforms.n;
      let bh = index / (uniforms.d * uniforms.n);
      let b = bh / uniforms.h;
      let h = bh % uniforms.h;
      result[index] = uniforms.factor * QKV[(uniforms.row + b * uniforms.n + n) * 3 * uniforms.dim + uniforms.part * uniforms.dim + h * uniforms.d + c];
    }
  }`, 'row : i32, n : i32, h : i32, d : i32, dim : i32, part : i32, factor : f32,');
      const u = [row, N, H, d, D, part].map((v): Uniform => ({ type: 'int32', data: [v] }));
      u.push({ type: 'float32', data: [part === 0 ? qScale : 1] });
      out.push(backend.runWebGPUProgram(p, [qkv], 'float32', u));
    }
  }
  return out;
}

/** The gradient of `qkvHeads`: dq, dk, dv of every batch (inputs g0, g1, … in its output order) back into one [Σ B·N, 3D] matrix, one program. */
function qkvHeadsGrad(args: KernelArgs): TensorInfo {
  const H = Number(args.attrs?.heads);
  const qScale = Number(args.attrs?.qScale ?? 1);
  const { groups: batches, rows } = parseGroups(KERNEL_NAMES.qkvHeadsGrad, args.attrs?.groups);
  const grads = batches.flatMap((_, i) => [0, 1, 2].map((part) => args.inputs[`g${3 * i + part}`]));
  if (grads.some((g) => !g)) throw new Error(`${KERNEL_NAMES.qkvHeadsGrad}: needs inputs g0…g${3 * batches.length - 1}`);
  const d = grads[0].shape[2];
  const D = H * d;
  // One branch per batch and part: WGSL cannot pick a buffer by index.
  const names = grads.map((_, i) => `G${i}`);
  const branches = batches
    .map(({ B, N, row }, i) => `
      if (r < ${row + B * N}) {
        let local = r - ${row};
        let b = local / ${N};
        let n = local % ${N};
        let src = ((b * ${H} + h) * ${N} + n) * ${d} + c;
        if (part == 0) { result[index] = ${qScale} * G${3 * i}[src]; }
        else if (part == 1) { result[index] = G${3 * i + 1}[src]; }
        else { result[index] = G${3 * i + 2}[src]; }
        return;
      }`)
    .join('');
  const p = program([rows, 3 * D], rows * 3 * D, `ibot_qkv_heads_grad_${batches.map((b) => `${b.B}x${b.N}`).join('_')}_${H}x${d}_${qScale}`, names, `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let r = index / ${3 * D};
      let col = index % ${3 * D};
      let part = col / ${D};
      let h = (col % ${D}) / ${d};
      let c = col % ${d};${branches}
    }
  }`);
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(p, grads, 'float32');
}

/** Softmax backward over the last axis: dS = P ⊙ (dP − rowsum(dP ⊙ P)), one thread per row. */
function softmaxGrad(args: KernelArgs): TensorInfo {
  const { probs, dy } = args.inputs;
  const N = probs.shape[probs.shape.length - 1];
  const rows = tf.util.sizeFromShape(probs.shape) / N;
  if (tf.util.sizeFromShape(dy.shape) !== rows * N) throw new Error(`${KERNEL_NAMES.softmaxGrad}: dy [${dy.shape}] does not match the probabilities [${probs.shape}]`);
  const p = program(probs.shape, rows, 'ibot_softmax_grad', ['P', 'DP'], `
  fn main(index : i32) {
    if (index < uniforms.rows) {
      let base = index * uniforms.n;
      var s = 0.0;
      for (var j = 0; j < uniforms.n; j++) { s += DP[base + j] * P[base + j]; }
      for (var j = 0; j < uniforms.n; j++) { result[base + j] = P[base + j] * (DP[base + j] - s); }
    }
  }`, 'rows : i32, n : i32,');
  return (args.backend as WebGPUBackendLike).runWebGPUProgram(p, [probs, dy], 'float32', [{ type: 'int32', data: [rows] }, { type: 'int32', data: [N] }]);
}

/** GPU dispatches behind one call of each kernel here (the others run one program each), for counting dispatches. */
const WEBGPU_PROGRAMS_PER_KERNEL: Readonly<Record<string, number>> = {
  [KERNEL_NAMES.layerNorm]: 3,
  [KERNEL_NAMES.layerNormGrad]: 2,
};

const KERNELS: Record<string, (args: KernelArgs) => TensorInfo | TensorInfo[]> = {
  [KERNEL_NAMES.gelu]: gelu,
  [KERNEL_NAMES.geluGrad]: geluGrad,
  [KERNEL_NAMES.layerNorm]: layerNorm,
  [KERNEL_NAMES.layerNormGrad]: layerNormGrad,
  [KERNEL_NAMES.qkvHeads]: qkvHeads,
  [KERNEL_NAMES.qkvHeadsGrad]: qkvHeadsGrad,
  [KERNEL_NAMES.softmaxGrad]: softmaxGrad,
};

/**
 * Dispatches behind one kernel record of a `tf.profile` on webgpu: our multi-program kernels
 * count their programs, and kernels that run one program per output (tfjs's SplitV and Unpack
 * slice each output; our qkv heads) count their outputs.
 */
export function webgpuDispatches(name: string, outputs: number): number {
  if (name === 'SplitV' || name === 'Unpack' || name === KERNEL_NAMES.qkvHeads) return outputs;
  return WEBGPU_PROGRAMS_PER_KERNEL[name] ?? 1;
}

/** Register the programs on the `webgpu` kernel registry (idempotent; no backend needed yet). */
export function registerWebGPUKernels(): void {
  for (const [name, fn] of Object.entries(KERNELS)) {
    if (!tf.getKernel(name, 'webgpu')) tf.registerKernel({ kernelName: name, backendName: 'webgpu', kernelFunc: fn as unknown as tf.KernelFunc });
  }
  // The heads' gradient goes through the kernel registry (a custom gradient has one output only).
  if (!tf.getGradient(KERNEL_NAMES.qkvHeads)) {
    tf.registerGradient({
      kernelName: KERNEL_NAMES.qkvHeads,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], _saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
        const dys = dy as tf.Tensor[];
        return { qkv: () => tf.engine().runKernel(KERNEL_NAMES.qkvHeadsGrad, Object.fromEntries(dys.map((g, i) => [`g${i}`, g])), attrs) as tf.Tensor };
      },
    });
  }
}

/** Remove them again (tests: the plain-op path on webgpu). */
export function unregisterWebGPUKernels(): void {
  for (const name of Object.keys(KERNELS)) if (tf.getKernel(name, 'webgpu')) tf.unregisterKernel(name, 'webgpu');
}
