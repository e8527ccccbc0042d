/**
 * Our SIMD kernels module (kernels.wat), instantiated on the memory of a tfjs
 * wasm backend so it computes in place on tensors' heap offsets.
 *
 * The tfjs wasm backend is an Emscripten module: the single-threaded build
 * exports its memory (`Module.asm.memory`), the multithreaded build creates a
 * shared memory itself (`Module.wasmMemory`). We import whichever exists,
 * choosing the module variant whose import matches (plain or shared).
 */
import * as os from 'os';
import * as v8 from 'v8';
import { KERNELS_WASM_PLAIN, KERNELS_WASM_RELAXED_PLAIN, KERNELS_WASM_RELAXED_SHARED, KERNELS_WASM_SHARED } from './wasm-binary';
import { KernelPool, MAX_CHUNKS, OpName } from './pool';

/** The parts of tfjs-backend-wasm's `BackendWasm` that the kernels use (not exported typed by tfjs). */
export interface WasmBackendLike {
  wasm: {
    _malloc(bytes: number): number;
    _free(ptr: number): void;
    HEAPU8: Uint8Array;
    asm?: { memory?: WebAssembly.Memory };
    wasmMemory?: WebAssembly.Memory;
  };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: string): { dataId: object; shape: number[]; dtype: string };
  disposeData(dataId: object, force?: boolean): boolean;
}

/** Exports of kernels.wat (pointers and strides in bytes). */
export interface KernelExports {
  gemm(a: number, sAm: number, sAk: number, b: number, sBk: number, sBn: number, c: number, sCm: number,
    M: number, N: number, K: number, alpha: number, accum: number, ws: number): void;
  /** C = op(A)·op(B) + bias (0: none); G = gelu(C) too when g is not 0. */
  dense(a: number, sAm: number, sAk: number, b: number, sBk: number, sBn: number, c: number, sCm: number,
    M: number, N: number, K: number, bias: number, g: number, ws: number): void;
  bmm(a: number, bA: number, sAm: number, sAk: number, b: number, bB: number, sBk: number, sBn: number,
    c: number, batch: number, M: number, N: number, K: number, alpha: number, ws: number): void;
  transpose(src: number, dst: number, batch: number, R: number, C: number, ldd: number): void;
  gather_rows(src: number, dst: number, n0: number, s0: number, n1: number, s1: number, n2: number, s2: number, len: number): void;
  colsum(src: number, dst: number, R: number, C: number, ld: number, scale: number): void;
  exp(src: number, dst: number, n: number): void;
  gelu(src: number, dst: number, n: number): void;
  gelu_grad(x: number, dy: number, dst: number, n: number): void;
  ln_fwd(x: number, g: number, b: number, y: number, xhat: number, rstd: number, r0: number, r1: number, D: number, eps: number): void;
  ln_bwd(dy: number, xhat: number, rstd: number, g: number, dx: number, r0: number, r1: number, D: number): void;
  attn_fwd(qkv: number, out: number, probs: number, b0: number, b1: number, N: number, H: number, d: number, scale: number, ws: number): void;
  attn_bwd(qkv: number, probs: number, dout: number, dqkv: number, b0: number, b1: number, N: number, H: number, d: number, scale: number, ws: number): void;
  /** AdamW on n floats of one parameter (gradient factor s); k [8] constants. */
  adamw(w: number, g: number, m: number, v: number, wo: number, mo: number, vo: number, n: number, s: number, k: number): void;
  /** out = t·a + s·b over n floats. */
  ema(t: number, s: number, out: number, n: number, a: number, b: number): void;
}

/** K-chunk and row block of the GEMM (must match kernels.wat). */
const KC = 256;
const MC = 64;

/** Scratch bytes `gemm` / `dense` need for an output with N columns. */
export function gemmScratchBytes(N: number): number {
  return (KC * (Math.ceil(N / 8) * 8) + MC * KC + 32) * 4;
}

/** Scratch bytes `attn_fwd` / `attn_bwd` need for N tokens of head width d. */
export function attentionScratchBytes(N: number, d: number): number {
  if (d % 8 === 0) return (2 * N + d) * Math.ceil(N / 8) * 8 * 4;
  const Np = Math.ceil(N / 4) * 4;
  return 2 * N * Np * 4 + gemmScratchBytes(Math.max(N, d));
}

/**
 * Which instruction set the kernels use: 'relaxed' (relaxed SIMD: fused
 * multiply-add in the GEMM where the CPU has FMA), 'plain' (SIMD 128 only),
 * 'auto' (relaxed when the engine has it).
 */
export type SimdChoice = 'auto' | 'relaxed' | 'plain';

/** A module with one f32x4.relaxed_madd: f(a, b, c) = lane 0 of a·b + c. */
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 125, 125, 125, 1, 125, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 22, 1, 20, 0, 32,
  0, 253, 19, 32, 1, 253, 19, 32, 2, 253, 19, 253, 133, 2, 253, 31, 0, 11,
]);

let relaxedState: { available: boolean; fused: boolean } | undefined;

/**
 * Whether this engine runs relaxed SIMD, and whether its multiply-add is
 * fused (one rounding: the CPU's FMA) or a multiply then an add.
 *
 * Node 20 (V8 11.3) has relaxed SIMD behind --experimental-wasm-relaxed-simd;
 * setting the flag at run time, before our module compiles, is enough (V8
 * reads wasm feature flags per compilation). Node >= 22 has it on by
 * default. IBOTLAB_RELAXED_SIMD=0 leaves the flag alone and reports no
 * relaxed SIMD.
 */
export function relaxedSimd(): { available: boolean; fused: boolean } {
  if (relaxedState) return relaxedState;
  relaxedState = { available: false, fused: false };
  if (process.env.IBOTLAB_RELAXED_SIMD === '0') return relaxedState;
  if (!WebAssembly.validate(RELAXED_PROBE)) {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      return relaxedState;
    }
    if (!WebAssembly.validate(RELAXED_PROBE)) return relaxedState;
  }
  const f = new WebAssembly.Instance(new WebAssembly.Module(RELAXED_PROBE)).exports.f as (a: number, b: number, c: number) => number;
  // (1 + 2⁻¹²)² − (1 + 2⁻¹¹) = 2⁻²⁴ exactly; a rounded product loses it (a tie, rounded to even).
  const a = 1 + 2 ** -12;
  relaxedState = { available: true, fused: f(a, a, -(1 + 2 ** -11)) === 2 ** -24 };
  return relaxedState;
}

/** Whether a choice resolves to the relaxed-SIMD module on this engine (throws when 'relaxed' is asked for and absent). */
export function useRelaxed(choice: SimdChoice): boolean {
  if (choice === 'plain') return false;
  const { available } = relaxedSimd();
  if (choice === 'relaxed' && !available) throw new Error('relaxed SIMD is not available in this engine (Node >= 22, or Node 20 with --experimental-wasm-relaxed-simd)');
  return available;
}

function moduleBytes(shared: boolean, relaxed: boolean): Buffer {
  const b64 = relaxed ? (shared ? KERNELS_WASM_RELAXED_SHARED : KERNELS_WASM_RELAXED_PLAIN) : shared ? KERNELS_WASM_SHARED : KERNELS_WASM_PLAIN;
  return Buffer.from(b64, 'base64');
}

/**
 * Instantiate the kernels module on any WebAssembly.Memory (tests use a
 * fresh one to exercise the non-shared variant in a process whose tfjs
 * backend is threaded, and to compare the relaxed and plain variants).
 */
export function instantiateKernels(memory: WebAssembly.Memory, simd: SimdChoice = 'auto'): KernelExports {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(moduleBytes(shared, useRelaxed(simd)));
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
}

/** A kernel call: export name and its arguments. */
export type Job = [OpName, number[]];

/** Most threads our kernels use (a call is cut into at most MAX_CHUNKS chunks, a few per thread). */
export const MAX_KERNEL_THREADS = MAX_CHUNKS / 2;

/**
 * Threads our kernels may use: env IBOTLAB_KERNEL_THREADS, else the number of
 * logical cores. Unlike tfjs-wasm's own pool (8 threads at most, see
 * src/backend/wasm-node.ts) ours is not capped below the machine's core
 * count. Only a shared (threaded-build) memory allows more than one.
 */
export function defaultKernelThreads(): number {
  const env = Number(process.env.IBOTLAB_KERNEL_THREADS);
  if (Number.isInteger(env) && env >= 1) return Math.min(env, MAX_KERNEL_THREADS);
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(MAX_KERNEL_THREADS, n));
}

export class WasmKernels {
  readonly exports: KernelExports;
  readonly shared: boolean;
  /** Running the relaxed-SIMD module (fused multiply-add in the GEMM where the CPU has it). */
  readonly relaxed: boolean;
  readonly memory: WebAssembly.Memory;
  /** Participants in a parallel call: the main thread plus the pool's workers. */
  readonly parts: number;
  /** Chunks to cut a parallel call into (a few per thread, claimed dynamically); 1 without workers. */
  readonly chunks: number;
  private readonly pool: KernelPool | undefined;
  private readonly scratchPtr: number[] = [];
  private readonly scratchBytes: number[] = [];

  constructor(readonly backend: WasmBackendLike, threads = defaultKernelThreads(), simd: SimdChoice = 'auto') {
    const mem = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
    if (!mem || !(mem instanceof WebAssembly.Memory)) {
      throw new Error('the tfjs wasm backend exposes no WebAssembly.Memory (unknown tfjs-backend-wasm build); custom kernels unavailable');
    }
    this.memory = mem;
    this.shared = typeof SharedArrayBuffer !== 'undefined' && mem.buffer instanceof SharedArrayBuffer;
    this.relaxed = useRelaxed(simd);
    const module = new WebAssembly.Module(moduleBytes(this.shared, this.relaxed));
    const instance = new WebAssembly.Instance(module, { env: { memory: mem } });
    this.exports = instance.exports as unknown as KernelExports;
    threads = Math.min(threads, MAX_KERNEL_THREADS);
    this.pool = this.shared && threads > 1 ? new KernelPool(threads - 1, module, mem) : undefined;
    this.parts = 1 + (this.pool?.size ?? 0);
    this.chunks = this.parts === 1 ? 1 : Math.min(MAX_CHUNKS, 4 * this.parts);
  }

  /**
   * Scratch of at least `bytes` on the backend's heap for chunk `part` of a
   * call (chunks may run concurrently), reused across calls, 16-byte aligned.
   */
  scratch(bytes: number, part = 0): number {
    if (bytes > (this.scratchBytes[part] ?? 0)) {
      if (this.scratchPtr[part]) this.backend.wasm._free(this.scratchPtr[part]);
      const size = Math.max(bytes, Math.ceil((this.scratchBytes[part] ?? 0) * 1.5)) + 16;
      const ptr = this.backend.wasm._malloc(size) >>> 0;
      if (!ptr) throw new Error(`custom kernels: cannot allocate ${size} bytes of scratch on the wasm heap`);
      this.scratchPtr[part] = ptr;
      this.scratchBytes[part] = size - 16;
    }
    return ((this.scratchPtr[part] + 15) & ~15) >>> 0;
  }

  /**
   * Run the jobs (independent chunks of one kernel call) and wait for all:
   * with a worker pool every thread claims chunks until none are left.
   * Chunks must not share scratch (use `scratch(bytes, chunkIndex)`).
   */
  run(jobs: Job[]): void {
    const call = (op: OpName, args: number[]): void => (this.exports[op] as (...a: number[]) => void)(...args);
    if (!this.pool || jobs.length <= 1) {
      for (const [op, args] of jobs) call(op, args);
      return;
    }
    this.pool.run(jobs, call);
  }

  /** Heap byte offset of a tensor's data. */
  offset(dataId: object): number {
    const d = this.backend.dataIdMap.get(dataId);
    if (!d) throw new Error('custom kernels: tensor data not found on the wasm backend (disposed?)');
    return d.memoryOffset >>> 0;
  }

  dispose(): void {
    this.pool?.terminate();
    for (const p of this.scratchPtr) if (p) this.backend.wasm._free(p);
    this.scratchPtr.length = 0;
    this.scratchBytes.length = 0;
  }
}

/** [start, end) ranges splitting n into at most `parts` pieces, each boundary a multiple of `align`. */
export function splitRange(n: number, parts: number, align = 1): Array<[number, number]> {
  const units = Math.ceil(n / align);
  const p = Math.max(1, Math.min(parts, units));
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i < p; i++) {
    const end = i === p - 1 ? n : Math.min(n, Math.round((units * (i + 1)) / p) * align);
    if (end > start) out.push([start, end]);
    start = end;
  }
  return out;
}

/** Per backend, one kernels instance per module variant (switching variants, e.g. in benchmarks, keeps both warm). */
const cache = new WeakMap<object, Map<boolean, WasmKernels>>();

let threadsWanted: number | undefined;
let simdWanted: SimdChoice = 'auto';

/** Thread count for kernel instances created from now on (undefined: `defaultKernelThreads()`). */
export function setKernelThreads(n: number | undefined): void {
  threadsWanted = n;
}

/** Instruction set of the kernels used from now on (env IBOTLAB_SIMD=plain|relaxed overrides 'auto'). */
export function setKernelSimd(choice: SimdChoice): void {
  simdWanted = choice;
}

const ENV_SIMD: SimdChoice = process.env.IBOTLAB_SIMD === 'plain' || process.env.IBOTLAB_SIMD === 'relaxed' ? process.env.IBOTLAB_SIMD : 'auto';

function simdChoice(): SimdChoice {
  return simdWanted !== 'auto' ? simdWanted : ENV_SIMD;
}

/** The kernels instance bound to this backend for the current instruction set (created on first use). */
export function kernelsFor(backend: WasmBackendLike): WasmKernels {
  const choice = simdChoice();
  const relaxed = useRelaxed(choice);
  let byVariant = cache.get(backend);
  if (!byVariant) {
    byVariant = new Map();
    cache.set(backend, byVariant);
  }
  let k = byVariant.get(relaxed);
  if (!k) {
    k = new WasmKernels(backend, threadsWanted ?? defaultKernelThreads(), relaxed ? 'relaxed' : 'plain');
    byVariant.set(relaxed, k);
  }
  return k;
}

/** Stop the worker threads and free the scratch of this backend's kernels instances. */
export function releaseKernels(backend: WasmBackendLike): void {
  const byVariant = cache.get(backend);
  if (byVariant) {
    for (const k of byVariant.values()) k.dispose();
    cache.delete(backend);
  }
}
