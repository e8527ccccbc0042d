/**
 * Worker threads that run our kernels on the same shared wasm memory as the
 * main thread, so a kernel call can be split across cores.
 *
 * Only possible with the multithreaded tfjs build (its memory is a shared
 * WebAssembly.Memory). Each worker instantiates the kernels module on that
 * memory. A call is a table of chunks (export index + arguments) in shared
 * memory; the main thread publishes it, wakes the workers, and every
 * participant, main thread included, takes chunks off a shared counter until
 * none are left. Claiming chunks dynamically (rather than a fixed share per
 * thread) keeps a call fast when another process holds one of the cores.
 * tfjs calls kernels synchronously from the main thread, so the workers are
 * parked in Atomics.wait between calls and never touch tfjs state.
 */
import { Worker } from 'worker_threads';

/** Export names a chunk may call, in opcode order. */
export const OPS = ['gemm', 'dense', 'bmm', 'transpose', 'gather_rows', 'colsum', 'exp', 'gelu', 'gelu_grad', 'attn_fwd', 'attn_bwd', 'ln_fwd', 'ln_bwd', 'adamw', 'ema'] as const;
export type OpName = (typeof OPS)[number];

/** Most chunks in one call. */
export const MAX_CHUNKS = 128;
const ARGS = 16; // per chunk: [0] opcode, [1..15] arguments
// ctrl: [0] seq, [1] next chunk, [2] chunk count, [3] error flag, [4] workers finished
const SEQ = 0;
const NEXT = 1;
const COUNT = 2;
const ERR = 3;
const FINISHED = 4;

const WORKER_SOURCE = `
const { workerData } = require('worker_threads');
const { module, memory, ctrlBuf, argBuf, ops } = workerData;
const ex = new WebAssembly.Instance(module, { env: { memory } }).exports;
const fns = ops.map((n) => ex[n]);
const ctrl = new Int32Array(ctrlBuf);
const args = new Float64Array(argBuf);
function runChunk(i) {
  const a = args.subarray(i * ${ARGS}, (i + 1) * ${ARGS});
  const f = fns[a[0]];
  f(a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
}
let seq = 0;
for (;;) {
  let s = Atomics.load(ctrl, ${SEQ});
  for (let spin = 0; s === seq && spin < 2000; spin++) s = Atomics.load(ctrl, ${SEQ});
  while (s === seq) {
    Atomics.wait(ctrl, ${SEQ}, seq);
    s = Atomics.load(ctrl, ${SEQ});
  }
  seq = s;
  const n = Atomics.load(ctrl, ${COUNT});
  if (n < 0) break;
  try {
    for (let i = Atomics.add(ctrl, ${NEXT}, 1); i < n; i = Atomics.add(ctrl, ${NEXT}, 1)) runChunk(i);
  } catch (e) {
    Atomics.store(ctrl, ${ERR}, 1);
  }
  Atomics.add(ctrl, ${FINISHED}, 1);
  Atomics.notify(ctrl, ${FINISHED});
}
`;

export class KernelPool {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  private readonly args: Float64Array;
  private seq = 0;
  broken: Error | undefined;

  /** `size` workers (the main thread is one more participant). */
  constructor(readonly size: number, module: WebAssembly.Module, memory: WebAssembly.Memory) {
    const ctrlBuf = new SharedArrayBuffer(16 * 4);
    const argBuf = new SharedArrayBuffer(MAX_CHUNKS * ARGS * 8);
    this.ctrl = new Int32Array(ctrlBuf);
    this.args = new Float64Array(argBuf);
    for (let w = 0; w < size; w++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, ctrlBuf, argBuf, ops: [...OPS] } });
      // Parked workers must not keep the process alive.
      worker.unref();
      worker.on('error', (e) => {
        this.broken = e instanceof Error ? e : new Error(String(e));
      });
      this.workers.push(worker);
    }
  }

  /**
   * Run every chunk, on this thread and the workers, and return when all are
   * done. `call(op, args)` runs a chunk on this thread.
   */
  run(chunks: Array<[OpName, number[]]>, call: (op: OpName, args: number[]) => void): void {
    if (this.broken) throw new Error(`kernel worker failed: ${this.broken.message}`);
    const n = chunks.length;
    if (n > MAX_CHUNKS) throw new Error(`custom kernels: ${n} chunks exceed the pool's table of ${MAX_CHUNKS}`);
    for (let i = 0; i < n; i++) {
      const [op, a] = chunks[i];
      const base = i * ARGS;
      this.args[base] = OPS.indexOf(op);
      for (let j = 0; j < a.length; j++) this.args[base + 1 + j] = a[j];
    }
    Atomics.store(this.ctrl, NEXT, 0);
    Atomics.store(this.ctrl, COUNT, n);
    Atomics.store(this.ctrl, FINISHED, 0);
    Atomics.store(this.ctrl, SEQ, ++this.seq);
    Atomics.notify(this.ctrl, SEQ);
    let failure: unknown;
    try {
      for (let i = Atomics.add(this.ctrl, NEXT, 1); i < n; i = Atomics.add(this.ctrl, NEXT, 1)) call(chunks[i][0], chunks[i][1]);
    } catch (e) {
      failure = e;
      // Let the workers drain the table so none is left mid-call.
      Atomics.store(this.ctrl, NEXT, n);
    }
    // Every worker checks in once per call (those that found no chunk left too).
    let spins = 0;
    for (;;) {
      const f = Atomics.load(this.ctrl, FINISHED);
      if (f >= this.size) break;
      if (++spins > 4000) Atomics.wait(this.ctrl, FINISHED, f, 20);
      if (this.broken) throw new Error(`kernel worker failed: ${this.broken.message}`);
    }
    if (failure) throw failure;
    if (Atomics.load(this.ctrl, ERR)) {
      Atomics.store(this.ctrl, ERR, 0);
      throw new Error('a kernel trapped in a worker thread (out-of-bounds memory access?)');
    }
  }

  terminate(): void {
    Atomics.store(this.ctrl, COUNT, -1);
    Atomics.store(this.ctrl, SEQ, ++this.seq);
    Atomics.notify(this.ctrl, SEQ);
    for (const w of this.workers) void w.terminate();
  }
}
