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
import { KERNELS_WASM_PLAIN, KERNELS_WASM_SHARED } from './wasm_binary';
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
}

/** K-chunk of the GEMM (must match kernels.wat). */
const KC = 256;

/** Scratch bytes `gemm` needs for an output with N columns. */
export function gemmScratchBytes(N: number): number {
  return (KC * (Math.ceil(N / 8) * 8) + KC * 4 + 32) * 4;
}

/** Scratch bytes `attn_fwd` / `attn_bwd` need for N tokens of head width d. */
export function attentionScratchBytes(N: number, d: number): number {
  const Np = Math.ceil(N / 4) * 4;
  return 2 * N * Np * 4 + gemmScratchBytes(Math.max(N, d));
}

/**
 * Instantiate the kernels module on any WebAssembly.Memory (tests use a
 * fresh one to exercise the non-shared variant in a process whose tfjs
 * backend is threaded).
 */
export function instantiateKernels(memory: WebAssembly.Memory): KernelExports {
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(Buffer.from(shared ? KERNELS_WASM_SHARED : KERNELS_WASM_PLAIN, 'base64'));
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
}

/** A kernel call: export name and its arguments. */
export type Job = [OpName, number[]];

/**
 * Threads our kernels may use: env IBOTLAB_KERNEL_THREADS, else the number of
 * logical cores (capped at 8). Only a shared (threaded-build) memory allows
 * more than one.
 */
export function defaultKernelThreads(): number {
  const env = Number(process.env.IBOTLAB_KERNEL_THREADS);
  if (Number.isInteger(env) && env >= 1) return Math.min(env, 16);
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, n));
}

export class WasmKernels {
  readonly exports: KernelExports;
  readonly shared: boolean;
  readonly memory: WebAssembly.Memory;
  /** Participants in a parallel call: the main thread plus the pool's workers. */
  readonly parts: number;
  /** Chunks to cut a parallel call into (a few per thread, claimed dynamically); 1 without workers. */
  readonly chunks: number;
  private readonly pool: KernelPool | undefined;
  private readonly scratchPtr: number[] = [];
  private readonly scratchBytes: number[] = [];

  constructor(readonly backend: WasmBackendLike, threads = defaultKernelThreads()) {
    const mem = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
    if (!mem || !(mem instanceof WebAssembly.Memory)) {
      throw new Error('the tfjs wasm backend exposes no WebAssembly.Memory (unknown tfjs-backend-wasm build); custom kernels unavailable');
    }
    this.memory = mem;
    this.shared = typeof SharedArrayBuffer !== 'undefined' && mem.buffer instanceof SharedArrayBuffer;
    const bytes = Buffer.from(this.shared ? KERNELS_WASM_SHARED : KERNELS_WASM_PLAIN, 'base64');
    const module = new WebAssembly.Module(bytes);
    const instance = new WebAssembly.Instance(module, { env: { memory: mem } });
    this.exports = instance.exports as unknown as KernelExports;
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

const cache = new WeakMap<object, WasmKernels>();

let threadsWanted: number | undefined;

/** Thread count for kernel instances created from now on (undefined: `defaultKernelThreads()`). */
export function setKernelThreads(n: number | undefined): void {
  threadsWanted = n;
}

/** The kernels instance bound to this backend (created on first use). */
export function kernelsFor(backend: WasmBackendLike): WasmKernels {
  let k = cache.get(backend);
  if (!k) {
    k = new WasmKernels(backend, threadsWanted ?? defaultKernelThreads());
    cache.set(backend, k);
  }
  return k;
}

/** Stop the worker threads and free the scratch of this backend's kernels instance. */
export function releaseKernels(backend: WasmBackendLike): void {
  const k = cache.get(backend);
  if (k) {
    k.dispose();
    cache.delete(backend);
  }
}
