/**
 * Dense products of the `bench` iBOT step: XNNPACK (tfjs-wasm's 2-D matMul)
 * against our GEMM (src/kernels), GFLOP/s per shape, measured interleaved in
 * one run so that load from other processes hits every implementation alike.
 *
 *   node dist/bench/gemm.js                 # all shapes, 2 threads (default)
 *   node dist/bench/gemm.js --reps 7 --threads 1 --only fc1
 *
 * Shapes: ViT width 128, MLP 512, 64 images × 2 global crops × 50 tokens
 * (6400 rows) and 64 × 4 local crops × 10 tokens (2560 rows); head
 * 128→512→512→128 and 128→1024 prototypes. "fwd" is x·W + b (tf.fused.matMul,
 * as the forward dense layers call it), "fwd+gelu" is gelu(x·W + b), "dx" is
 * dy·Wᵀ, "dW" is xᵀ·dy.
 *
 * Columns: `xnnpack` (our kernels for everything else, plain products on
 * XNNPACK), `ours-simd` / `ours-relaxed` (our GEMM, plain / relaxed SIMD),
 * all three computing each product as the layer code did before our GEMM
 * took the dense products (explicit transposes, separate GELU); and `fused`
 * (relaxed when available) as src/model/layers.ts computes it now: transpose
 * flags read by the GEMM's packing, GELU in the GEMM's epilogue.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, describeBackend } from '../src/backend';
import { registerWasmKernels, kernelsFor, WasmBackendLike, releaseKernels, relaxedSimd, fusedDenseGelu, fusedGelu } from '../src/kernels';
import { median } from '../src/util/stats';

type Kind = 'fwd' | 'fwd+gelu' | 'dx' | 'dW';
interface Shape {
  name: string;
  kind: Kind;
  /** The product is [M, K]·[K, N]. */
  M: number;
  K: number;
  N: number;
}

const ROWS = 6400;
const LOCAL_ROWS = 2560;
const SHAPES: Shape[] = [
  { name: 'qkv', kind: 'fwd', M: ROWS, K: 128, N: 384 },
  { name: 'proj', kind: 'fwd', M: ROWS, K: 128, N: 128 },
  { name: 'fc1', kind: 'fwd', M: ROWS, K: 128, N: 512 },
  { name: 'fc2', kind: 'fwd', M: ROWS, K: 512, N: 128 },
  { name: 'head1', kind: 'fwd', M: ROWS, K: 512, N: 512 },
  { name: 'protos', kind: 'fwd', M: ROWS, K: 128, N: 1024 },
  { name: 'qkv-local', kind: 'fwd', M: LOCAL_ROWS, K: 128, N: 384 },
  { name: 'patch', kind: 'fwd', M: 6272, K: 16, N: 128 },
  { name: 'cls-head', kind: 'fwd', M: 256, K: 128, N: 512 },
  { name: 'fc1', kind: 'fwd+gelu', M: ROWS, K: 128, N: 512 },
  { name: 'head1', kind: 'fwd+gelu', M: ROWS, K: 512, N: 512 },
  { name: 'qkv', kind: 'dx', M: ROWS, K: 384, N: 128 },
  { name: 'fc1', kind: 'dx', M: ROWS, K: 512, N: 128 },
  { name: 'fc2', kind: 'dx', M: ROWS, K: 128, N: 512 },
  { name: 'protos', kind: 'dx', M: ROWS, K: 1024, N: 128 },
  { name: 'qkv', kind: 'dW', M: 128, K: ROWS, N: 384 },
  { name: 'fc1', kind: 'dW', M: 128, K: ROWS, N: 512 },
  { name: 'fc2', kind: 'dW', M: 512, K: ROWS, N: 128 },
  { name: 'head1', kind: 'dW', M: 512, K: ROWS, N: 512 },
  { name: 'fc1-local', kind: 'dW', M: 128, K: LOCAL_ROWS, N: 512 },
];

interface Args {
  reps: number;
  threads?: number;
  only?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { reps: 5 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--reps') a.reps = Number(argv[++i]);
    else if (v === '--threads') a.threads = Number(argv[++i]);
    else if (v === '--only') a.only = argv[++i];
    else if (v === '--help' || v === '-h') {
      console.log('usage: gemm.js [--reps N] [--threads N] [--only NAME]');
      process.exit(0);
    } else throw new Error(`unknown argument '${v}' (see --help)`);
  }
  if (!Number.isInteger(a.reps) || a.reps < 1) throw new Error('--reps takes a positive integer');
  return a;
}

/** One way of computing a shape's product from its operands. */
interface Impl {
  name: string;
  /** Prepare for this implementation (kernel options). */
  select(): void;
  /** The product, or undefined where this implementation has nothing different to show. */
  run(s: Shape, ops: Operands): tf.Tensor | undefined;
}

interface Operands {
  /** fwd/dx: the left operand [M, K]; dW: x [K, M] (transposed by the product). */
  a: tf.Tensor2D;
  /** fwd: W [K, N]; dx: W [N, K] (transposed by the product); dW: dy [K, N]. */
  b: tf.Tensor2D;
  bias: tf.Tensor1D;
}

function operands(s: Shape): Operands {
  return tf.tidy(() => ({
    a: tf.randomNormal(s.kind === 'dW' ? [s.K, s.M] : [s.M, s.K], 0, 1, 'float32', 1) as tf.Tensor2D,
    b: tf.randomNormal(s.kind === 'dx' ? [s.N, s.K] : [s.K, s.N], 0, 0.05, 'float32', 2) as tf.Tensor2D,
    bias: tf.randomNormal([s.N], 0, 0.1, 'float32', 3) as tf.Tensor1D,
  }));
}

/** The product as the layer code computed it before our GEMM: explicit transposes, plain 2-D products, separate GELU. */
function asBefore(s: Shape, o: Operands): tf.Tensor {
  return tf.tidy(() => {
    if (s.kind === 'fwd') return tf.fused.matMul({ a: o.a, b: o.b, bias: o.bias });
    if (s.kind === 'fwd+gelu') return fusedGelu(tf.fused.matMul({ a: o.a, b: o.b, bias: o.bias }));
    if (s.kind === 'dx') return tf.matMul(o.a, tf.transpose(o.b));
    return tf.matMul(tf.transpose(o.a), o.b);
  });
}

/** As src/model/layers.ts computes it with our kernels: transpose flags, GELU in the epilogue. */
function fused(s: Shape, o: Operands): tf.Tensor | undefined {
  if (s.kind === 'fwd') return undefined;
  return tf.tidy(() => {
    if (s.kind === 'fwd+gelu') return fusedDenseGelu(o.a, o.b, o.bias).y;
    if (s.kind === 'dx') return tf.matMul(o.a, o.b, false, true);
    return tf.matMul(o.a, o.b, true, false);
  });
}

function impls(threads: number | undefined): Impl[] {
  const best = relaxedSimd().available ? 'relaxed' : 'plain';
  const list: Impl[] = [
    { name: 'xnnpack', select: () => registerWasmKernels({ threads, plain2d: false, simd: best }), run: asBefore },
    { name: 'ours-simd', select: () => registerWasmKernels({ threads, plain2d: true, simd: 'plain' }), run: asBefore },
  ];
  if (best === 'relaxed') list.push({ name: 'ours-relaxed', select: () => registerWasmKernels({ threads, plain2d: true, simd: 'relaxed' }), run: asBefore });
  list.push({ name: 'fused', select: () => registerWasmKernels({ threads, plain2d: true, simd: best }), run: fused });
  return list;
}

/** Milliseconds of one call, the median of a few back-to-back calls (NaN when the implementation has none). */
function timeCall(f: () => tf.Tensor | undefined, calls: number): number {
  const ts: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    // The wasm backend computes synchronously: no read-back needed (it would time a copy of C).
    const r = f();
    if (!r) return NaN;
    ts.push(performance.now() - t0);
    r.dispose();
  }
  return median(ts);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await initBackend({ quiet: true, threads: args.threads });
  if (info.name !== 'wasm') throw new Error(`this benchmark needs the wasm backend, got ${info.name}`);
  const list = impls(args.threads);
  list[0].select();
  const k = kernelsFor(tf.backend() as unknown as WasmBackendLike);
  const rs = relaxedSimd();
  console.log(`dense products of the bench step — ${describeBackend(info)}; our kernels: ${k.parts} thread(s); relaxed SIMD ${rs.available ? `available, multiply-add ${rs.fused ? 'fused (FMA)' : 'not fused'}` : 'unavailable'}; Node ${process.version}`);
  console.log('GELU rows count only the product\'s FLOPs (the GELU is part of the time).');
  console.log(`GFLOP/s of the fastest of ${args.reps} interleaved rounds (each round: median of 3 calls per implementation; the fastest is the closest estimate of an unloaded machine)`);
  console.log(`${'shape'.padEnd(16)} ${'M×K×N'.padEnd(16)} ${list.map((i) => i.name.padStart(12)).join(' ')}   best ours/xnnpack`);
  const shapes = SHAPES.filter((s) => !args.only || s.name === args.only || `${s.kind}:${s.name}` === args.only);
  for (const s of shapes) {
    const o = operands(s);
    const flops = 2 * s.M * s.N * s.K;
    const ms: number[][] = list.map(() => []);
    for (const impl of list) {
      impl.select();
      timeCall(() => impl.run(s, o), 1); // warm-up (scratch allocation, tier-up)
    }
    for (let r = 0; r < args.reps; r++) {
      list.forEach((impl, i) => {
        impl.select();
        ms[i].push(timeCall(() => impl.run(s, o), 3));
      });
    }
    const gf = ms.map((m) => flops / Math.min(...m) / 1e6);
    const label = `${s.kind}:${s.name}`;
    const ours = Math.max(...gf.slice(1).filter((g) => !Number.isNaN(g)));
    const cells = gf.map((g) => (Number.isNaN(g) ? '–' : g.toFixed(1)).padStart(12)).join(' ');
    console.log(`${label.padEnd(16)} ${`${s.M}×${s.K}×${s.N}`.padEnd(16)} ${cells}   ${(ours / gf[0]).toFixed(2)}`);
    tf.dispose([o.a, o.b, o.bias]);
  }
  releaseKernels(tf.backend() as unknown as WasmBackendLike);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
