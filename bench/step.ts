/**
 * Benchmark of full iBOT training steps (`IBOTModel.step`) on any backend.
 * Default: the `bench` configuration — ViT dim 128, depth 4, 4 heads, 4×4
 * patches of 28×28 Fashion-MNIST (49 patches); batch 64; 2 global 28×28 crops
 * + 4 local 12×12 crops; shared head hidden 512 / bottleneck 128 / 1024
 * prototypes. `--config vit-s16` is the paper's ViT-S/16 step (224 px RGB,
 * 2×224 + 10×96 crops, head → 8192), batch 64.
 *
 *   npm run bench                      # human-readable report (wasm on a CPU)
 *   npm run bench -- --backend webgpu  # the same step on WebGPU
 *   npm run bench -- --config vit-s16 --backend webgpu
 *   node dist/bench/step.js --json     # one JSON object
 *   node dist/bench/step.js --steps 8  # timed steps (default 6, median reported)
 *   node dist/bench/step.js --batch 256 --sync-phases   # device time per phase (GPU)
 *   node dist/bench/step.js --scaling  # images/s vs batch size, depth, image size
 *   node dist/bench/step.js --stock    # without our wasm kernels (A/B)
 *   node dist/bench/step.js --threads 1
 *   node dist/bench/step.js --threads 1,2,4   # thread scaling: one process per count, a table
 *   node dist/bench/step.js --out benchmarks/results/x.json   # also save the JSON
 *
 * Besides times it counts the kernels (tfjs ops that run a kernel) of one
 * step: a GPU pays a fixed cost per dispatched kernel, so on small models
 * this count, not FLOPs, sets the step time.
 *
 * FLOP count (analytical, multiply-adds counted as 2, matrix products only):
 *   ViT forward on n images of T = 1 + P tokens (P patches, patch vector q = p²·C):
 *     2·n·P·q·D                                         patch embedding
 *     + depth · n · (2·T·D·(3D + D + 2·hidden) + 4·T²·D)  qkv, proj, MLP; q·kᵀ and p·v over all heads
 *     + 2·P·P₀·D when the grid differs from the stored P₀ (position-embedding resampling)
 *   Head on m tokens: 2·m·(D·h + (nlayers−2)·h² + h·bottleneck) + 2·m·bottleneck·K (prototypes)
 *   The heads run on the [CLS] tokens and the M masked patches only (padded to
 *   M' rows, src/train/patch-rows.ts), not on every patch as the official code does,
 *   and so does the student's last block from its output projection on (every token
 *   is still a key and a value; local crops: their [CLS] alone):
 *   Teacher: ViT(G·B global) + head MLP on all G·B·T tokens (its mean feeds the
 *     centre) + prototypes on G·B + M' + 1 rows (with Sinkhorn-Knopp: whole head on G·B + M').
 *   Student: ViT(G·B global) + ViT(L·B local) + head on G·B + M' rows + head on L·B [CLS].
 *   Backward = 2 × student forward (dX and dW for every product).
 *   Step = teacher + 3 × student forward. Elementwise ops, softmaxes, the loss and
 *   AdamW are not counted (they are memory-bound and small in FLOPs).
 *   M is the mean over the timed steps. For `bench` (paper masks: ~15% of patches)
 *   about 58 GFLOP per step; with the heads and last block on every patch it was 82.9
 *   (`allPatchGflopPerStep` in the JSON, for figures measured before).
 *
 * The 2-D matMul peak is the best of `measureMatMulPeak` (src/backend) at 512²
 * and 1024², before and after the timed steps. On a machine shared with other
 * processes every figure drops; `bestImagesPerSec` (fastest step) is then the
 * closer estimate of an idle machine, and the load average is printed.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, describeBackend, measureMatMulPeak } from '../src/backend';
import type { BackendName } from '../src/backend';
import { registerWasmKernels, setAutoRegisterKernels, wasmKernelsRegistered, kernelsFor, relaxedSimd, WasmBackendLike, webgpuDispatches } from '../src/kernels';
import { IBOTModelConfig } from '../src/train/ibot';
import { PretrainConfig, buildModel } from '../src/train/config';
import { pretrainPreset } from '../src/train/presets';
import { ibotBatch, disposeIBOTBatch } from '../src/augment';
import { loadEmbeddedFashionMnist, toTensor, ImageDataset } from '../src/data';
import { Rng } from '../src/util/rng';
import { median } from '../src/util/stats';
import { paddedRows } from '../src/train/patch-rows';
import { makeDirs } from '../src/util/fs';
import { runJson } from './run-json';

interface Args {
  json: boolean;
  steps: number;
  scaling: boolean;
  stock: boolean;
  threads?: number;
  /** `--threads 1,2,4`: one child process per count (tfjs-wasm sizes its pool once per process). */
  threadList?: number[];
  backend?: BackendName;
  config: string;
  batch?: number;
  syncPhases: boolean;
  out?: string;
}

const USAGE = 'usage: step.js [--backend wasm|webgpu|tensorflow|cpu] [--config bench|vit-s16|<preset>] [--batch N] [--steps N] [--sync-phases] [--json] [--out FILE] [--scaling] [--stock] [--threads N | N,M,…]';

function parseArgs(argv: string[]): Args {
  const a: Args = { json: false, steps: 6, scaling: false, stock: false, config: 'bench', syncPhases: false };
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value (${USAGE})`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--json') a.json = true;
    else if (v === '--scaling') a.scaling = true;
    else if (v === '--stock') a.stock = true;
    else if (v === '--sync-phases') a.syncPhases = true;
    else if (v === '--steps') a.steps = Number(value(++i, v));
    else if (v === '--threads') {
      const list = value(++i, v).split(',').map(Number);
      if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--threads takes a positive integer or a comma list of them (1,2,4)');
      if (list.length > 1) a.threadList = list;
      else a.threads = list[0];
    }
    else if (v === '--batch') a.batch = Number(value(++i, v));
    else if (v === '--backend') a.backend = value(++i, v) as BackendName;
    else if (v === '--config') a.config = value(++i, v);
    else if (v === '--out') a.out = value(++i, v);
    else if (v === '--help' || v === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument '${v}' (${USAGE})`);
  }
  if (!Number.isInteger(a.steps) || a.steps < 1) throw new Error('--steps takes a positive integer (≥ 5 recommended)');
  if (a.threads !== undefined && (!Number.isInteger(a.threads) || a.threads < 1)) throw new Error('--threads takes a positive integer');
  if (a.batch !== undefined && (!Number.isInteger(a.batch) || a.batch < 1)) throw new Error('--batch takes a positive integer');
  return a;
}

/**
 * Analytical FLOPs of a ViT forward (see the header). With `lastRows`, the last block's output
 * projection and MLP run on that many token rows only (`VisionTransformer.forwardRows`).
 */
export function vitForwardFlops(n: number, imgSize: number, c: IBOTModelConfig['vit'], lastRows?: number): number {
  const P = (imgSize / c.patchSize) ** 2;
  const P0 = (c.imgSize / c.patchSize) ** 2;
  const T = P + 1;
  const D = c.embedDim;
  const hidden = Math.round(D * c.mlpRatio);
  const q = c.patchSize ** 2 * c.inChans;
  const block = n * (2 * T * D * (3 * D + D + 2 * hidden) + 4 * T * T * D);
  const last = lastRows === undefined ? block : n * (2 * T * D * 3 * D + 4 * T * T * D) + 2 * lastRows * D * (D + 2 * hidden);
  const pos = P === P0 ? 0 : 2 * P * P0 * D;
  return 2 * n * P * q * D + (c.depth - 1) * block + last + pos;
}

/** Analytical FLOPs of the head MLP on m tokens and of the prototypes on p rows (p = m unless given). */
export function headFlops(m: number, cfg: Pick<IBOTModelConfig, 'vit' | 'head'>, p = m): number {
  const h = cfg.head;
  const D = cfg.vit.embedDim;
  const mlp = h.nlayers === 1 ? D * h.bottleneckDim : D * h.hiddenDim + (h.nlayers - 2) * h.hiddenDim ** 2 + h.hiddenDim * h.bottleneckDim;
  return 2 * m * mlp + 2 * p * h.bottleneckDim * h.outDim;
}

export function stepFlops(cfg: PretrainConfig, B: number, maskedPatches?: number): { teacher: number; studentForward: number; total: number } {
  const m = cfg.model;
  const G = cfg.crops.globalCrops;
  const L = cfg.crops.localCrops;
  const N = (cfg.crops.globalSize / m.vit.patchSize) ** 2;
  const T = N + 1;
  // Without a masked-patch count: the heads on every token, as the official step runs them.
  const rows = maskedPatches === undefined ? G * B * N : paddedRows(Math.round(maskedPatches), G * B * N);
  const sk = m.loss.centering === 'sinkhorn-knopp';
  const teacherHead = maskedPatches === undefined ? headFlops(G * B * T, m) : sk ? headFlops(G * B + rows, m) : headFlops(G * B * T, m, G * B + rows + 1);
  // The student's last block runs on the rows its heads read (and the teacher's, without an EMA centre to average).
  const heads = maskedPatches === undefined ? undefined : G * B + rows;
  const teacher = vitForwardFlops(G * B, cfg.crops.globalSize, m.vit, sk ? heads : undefined) + teacherHead;
  const studentForward =
    vitForwardFlops(G * B, cfg.crops.globalSize, m.vit, heads) +
    (L > 0 ? vitForwardFlops(L * B, cfg.crops.localSize, m.vit, maskedPatches === undefined ? undefined : L * B) : 0) +
    headFlops(G * B + rows + L * B, m);
  return { teacher, studentForward, total: teacher + 3 * studentForward };
}

interface StepTiming {
  augment: number;
  teacher: number;
  student: number;
  optimizer: number;
  total: number;
}

/**
 * B real images at the size and channel count a configuration trains on:
 * Fashion-MNIST drawn at random, resized (bilinear) to the source size that
 * the crops are cut from and repeated over channels for RGB models. The
 * pixels are real, so augmentation does its usual amount of work.
 */
function realBatch(ds: ImageDataset, B: number, rng: Rng, size: number, channels: number): tf.Tensor4D {
  const idx = Array.from({ length: B }, () => rng.randint(0, ds.n - 1));
  return tf.tidy(() => {
    let x = toTensor(ds, idx);
    if (x.shape[1] !== size) x = tf.image.resizeBilinear(x, [size, size]);
    return (channels === x.shape[3] ? x : tf.tile(x, [1, 1, 1, channels])) as tf.Tensor4D;
  });
}

/** The side of the images crops are cut from: 28 for 28 px models, else the global crop size scaled as 256 is to 224. */
function sourceSize(cfg: PretrainConfig): number {
  return cfg.crops.globalSize <= 32 ? Math.max(28, cfg.crops.globalSize) : Math.round((cfg.crops.globalSize * 256) / 224);
}

/**
 * Kernels one call runs (ops that reach a backend kernel; reshapes and
 * identities cost no dispatch on a GPU). On webgpu, kernels that run several
 * programs (ours, and tfjs's SplitV and Unpack: one slice per output) count
 * as the programs they dispatch.
 */
async function countKernels(fn: () => Promise<unknown>): Promise<number> {
  const prof = await tf.profile(async () => {
    await fn();
  });
  const gpu = tf.getBackend() === 'webgpu';
  return prof.kernels
    .filter((k) => !/^(Reshape|Identity|Cast)$/.test(k.name) && !k.name.endsWith('__op') && !k.name.includes('scope'))
    .reduce((n, k) => n + (gpu ? webgpuDispatches(k.name, k.outputShapes.length) : 1), 0);
}

/** Run warm-up + timed steps of one configuration; returns per-step timings and counters. */
async function runSteps(
  cfg: PretrainConfig,
  B: number,
  ds: ImageDataset,
  warmup: number,
  steps: number,
  syncPhases = false,
): Promise<{ timings: StepTiming[]; maxTensors: number; tensorDrift: number; losses: number[]; kernels: { augment: number; step: number }; maskedPatches: number }> {
  const model = buildModel(cfg);
  const rng = new Rng(cfg.seed + 7);
  const timings: StepTiming[] = [];
  const losses: number[] = [];
  const masked: number[] = [];
  let maxTensors = 0;
  let before = 0;
  const size = sourceSize(cfg);
  const C = cfg.model.vit.inChans;
  const batchOpts = { multiCrop: cfg.crops, masking: cfg.masking, patchSize: cfg.model.vit.patchSize, epoch: 1 };
  const sched = { lr: 1e-4, wd: 0.04, momentum: 0.996, epoch: 1 };
  try {
    for (let i = 0; i < warmup + steps; i++) {
      if (i === warmup) before = tf.memory().numTensors;
      const images = realBatch(ds, B, rng, size, C);
      await images.data();
      const t0 = performance.now();
      const batch = ibotBatch(images, batchOpts, rng);
      // Augmentation runs on tfjs ops; wait for it before timing the model.
      await batch.masks.data();
      await batch.global.data();
      const t1 = performance.now();
      const stats = await model.step(batch, sched, i, { syncPhases });
      const t2 = performance.now();
      disposeIBOTBatch(batch);
      images.dispose();
      maxTensors = Math.max(maxTensors, tf.memory().numTensors);
      losses.push(stats.loss);
      if (i >= warmup) {
        masked.push(stats.maskedPatches);
        timings.push({ augment: t1 - t0, teacher: stats.ms.teacher, student: stats.ms.student, optimizer: stats.ms.optimizer, total: t2 - t0 });
      }
    }
    const tensorDrift = tf.memory().numTensors - before;
    // One more step under tf.profile, outside the timings (profiling slows every kernel down).
    const images = realBatch(ds, B, rng, size, C);
    let batch: ReturnType<typeof ibotBatch> | undefined;
    const augment = await countKernels(async () => {
      batch = ibotBatch(images, batchOpts, rng);
    });
    const b = batch as ReturnType<typeof ibotBatch>;
    const step = await countKernels(() => model.step(b, sched, 99));
    disposeIBOTBatch(b);
    images.dispose();
    return { timings, maxTensors, tensorDrift, losses, kernels: { augment, step }, maskedPatches: masked.reduce((a, b) => a + b, 0) / masked.length };
  } finally {
    model.dispose();
  }
}

/** Images/s of teacher-backbone feature extraction ([CLS] of global-size images, batch B), forward only. */
async function featureThroughput(cfg: PretrainConfig, B: number, ds: ImageDataset, reps = 5): Promise<number> {
  const model = buildModel(cfg);
  const rng = new Rng(3);
  const x = realBatch(ds, B, rng, cfg.crops.globalSize, cfg.model.vit.inChans);
  try {
    const run = async (): Promise<void> => {
      const cls = tf.tidy(() => {
        const { tokens } = model.teacher.backbone.forward(x);
        return tf.slice(tokens, [0, 0, 0], [B, 1, -1]);
      });
      await cls.data();
      cls.dispose();
    };
    await run();
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await run();
      ts.push(performance.now() - t0);
    }
    return (B / median(ts)) * 1000;
  } finally {
    x.dispose();
    model.dispose();
  }
}

function loadAverage(): number {
  return os.loadavg()[0];
}

/** Save the result to `--out`; with `--json` print it as one line and return true (no report follows). */
function saveAndPrintJson(result: object, args: Args): boolean {
  if (args.out) {
    makeDirs(path.dirname(args.out));
    fs.writeFileSync(args.out, JSON.stringify(result, null, 1) + '\n');
  }
  if (args.json) console.log(JSON.stringify(result));
  return args.json;
}

/** One row of `--threads N,M,…`: what one child process measured. */
interface ThreadRow {
  threads: number;
  imagesPerSec: number;
  bestImagesPerSec: number;
  achievedGflops: number;
  simd: string;
  loadAverage: number[];
}

/**
 * Thread scaling: this benchmark in a child process per thread count (tfjs-wasm sizes its
 * worker pool once per process), the other flags passed on. Speed-up and efficiency are
 * against the first count of the list.
 */
function threadScaling(args: Args, argv: string[]): void {
  const passOn: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads' || argv[i] === '--out') i++;
    else if (argv[i] !== '--json') passOn.push(argv[i]);
  }
  const rows: ThreadRow[] = [];
  for (const n of args.threadList ?? []) {
    const j = runJson([process.execPath, ...process.execArgv, __filename, ...passOn, '--threads', String(n), '--json']) as unknown as ThreadRow;
    rows.push({ threads: n, imagesPerSec: j.imagesPerSec, bestImagesPerSec: j.bestImagesPerSec, achievedGflops: j.achievedGflops, simd: j.simd, loadAverage: j.loadAverage });
    if (!args.json) console.log(`  ${n} thread${n === 1 ? '' : 's'}: ${j.imagesPerSec.toFixed(1)} images/s`);
  }
  const base = rows[0];
  const table = rows.map((r) => ({ ...r, speedup: r.imagesPerSec / base.imagesPerSec, efficiency: (r.imagesPerSec / base.imagesPerSec) * (base.threads / r.threads) }));
  const result = { config: args.config, node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', logicalCores: os.cpus().length, rows: table };
  if (saveAndPrintJson(result, args)) return;
  console.log(`thread scaling, ${args.config} config — ${result.cpu} (${result.logicalCores} logical cores), Node ${process.version}`);
  console.log('threads  images/s  fastest step  GFLOP/s  speed-up  efficiency  load average');
  for (const r of table) {
    console.log(`${String(r.threads).padStart(7)}  ${r.imagesPerSec.toFixed(1).padStart(8)}  ${r.bestImagesPerSec.toFixed(1).padStart(12)}  ${r.achievedGflops.toFixed(1).padStart(7)}  ${r.speedup.toFixed(2).padStart(8)}  ${(100 * r.efficiency).toFixed(0).padStart(9)}%  ${r.loadAverage.map((x) => x.toFixed(2)).join(' → ')}`);
  }
  console.log(`  SIMD: ${base.simd}; speed-up and efficiency against ${base.threads} thread${base.threads === 1 ? '' : 's'}`);
  if (args.out) console.log(`  saved ${args.out}`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.threadList) {
    threadScaling(args, process.argv.slice(2));
    return;
  }
  const started = performance.now();
  const info = await initBackend({ quiet: true, threads: args.threads, backend: args.backend });
  if (args.stock) setAutoRegisterKernels(false);
  else if (info.name === 'wasm') registerWasmKernels({ threads: args.threads });
  // Our wasm kernels serve only the wasm backend (webgpu has its own GELU and LayerNorm programs, src/kernels/webgpu.ts).
  const ours = info.name === 'wasm' && wasmKernelsRegistered();
  const kernelThreads = ours ? kernelsFor(tf.backend() as unknown as WasmBackendLike).parts : 0;
  // Which SIMD the kernels run: relaxed SIMD (its multiply-add fused into one FMA where the CPU has one) or plain.
  const simd = ours ? (kernelsFor(tf.backend() as unknown as WasmBackendLike).relaxed ? `relaxed SIMD${relaxedSimd().fused ? ', FMA fused' : ', multiply-add unfused'}` : 'plain SIMD') : 'n/a';
  const ds = loadEmbeddedFashionMnist().train;
  // The benchmark's batch (default: the configuration's own, 64 for the paper's ViT-S/16 step).
  const base = pretrainPreset(args.config);
  const B = args.batch ?? (args.config === 'vit-s16' ? 64 : base.batchSize);
  const cfg: PretrainConfig = { ...base, batchSize: B };
  const load0 = loadAverage();

  if (args.scaling) {
    const rows: Array<{ batch: number; depth: number; imgSize: number; imagesPerSec: number; gflops: number }> = [];
    const variants: Array<{ batch: number; depth: number; img: number }> = [
      { batch: 16, depth: 4, img: 28 },
      { batch: 32, depth: 4, img: 28 },
      { batch: 64, depth: 4, img: 28 },
      { batch: 128, depth: 4, img: 28 },
      { batch: 64, depth: 2, img: 28 },
      { batch: 64, depth: 8, img: 28 },
      { batch: 32, depth: 4, img: 56 },
    ];
    for (const v of variants) {
      const local = Math.round((12 * v.img) / 28 / 4) * 4;
      const c: PretrainConfig = {
        ...cfg,
        batchSize: v.batch,
        model: { ...cfg.model, vit: { ...cfg.model.vit, depth: v.depth, imgSize: v.img } },
        crops: { ...cfg.crops, globalSize: v.img, localSize: local },
      };
      const { timings, maskedPatches } = await runSteps(c, v.batch, ds, 1, 3);
      // Fastest of the timed steps: a short table on a shared machine is otherwise mostly noise.
      const ms = Math.min(...timings.map((t) => t.total - t.augment));
      const f = stepFlops(c, v.batch, maskedPatches).total;
      rows.push({ batch: v.batch, depth: v.depth, imgSize: v.img, imagesPerSec: (v.batch / ms) * 1000, gflops: f / ms / 1e6 });
    }
    if (args.json) console.log(JSON.stringify({ backend: describeBackend(info), kernels: ours, kernelThreads, rows }));
    else {
      console.log(`iBOT step scaling — ${describeBackend(info)}, our kernels: ${ours ? `on (${kernelThreads} threads)` : 'off'}`);
      console.log('batch  depth  image  images/s  GFLOP/s   (model step only, augmentation excluded; fastest of 3 steps)');
      for (const r of rows) console.log(`${String(r.batch).padStart(5)}  ${String(r.depth).padStart(5)}  ${String(r.imgSize).padStart(5)}  ${r.imagesPerSec.toFixed(1).padStart(8)}  ${r.gflops.toFixed(1).padStart(7)}`);
    }
    return;
  }

  // Peak of the plain 2-D product, before and after the steps (other processes come and go): the best of the three.
  const big = info.gpu ? 4096 : 1024;
  const peaks = [await measureMatMulPeak(big / 2, 10), await measureMatMulPeak(big, 5)];
  const { timings, maxTensors, tensorDrift, losses, kernels, maskedPatches } = await runSteps(cfg, B, ds, 2, args.steps, args.syncPhases);
  const flops = stepFlops(cfg, B, maskedPatches);
  const med = (k: keyof StepTiming): number => median(timings.map((t) => t[k]));
  const modelMs = median(timings.map((t) => t.total - t.augment));
  const featuresPerSec = await featureThroughput(cfg, B, ds);
  peaks.push(await measureMatMulPeak(big, 5));
  const peak = Math.max(...peaks);
  const rssMB = process.resourceUsage().maxRSS / 1024;
  const G = cfg.crops.globalCrops;
  const L = cfg.crops.localCrops;
  const result = {
    config: args.config,
    crops: `${G}×${cfg.crops.globalSize}² + ${L}×${cfg.crops.localSize}²`,
    backend: describeBackend(info),
    backendName: info.name,
    adapter: info.adapter,
    gpu: info.gpu,
    kernels: ours,
    kernelThreads,
    simd,
    batch: B,
    steps: timings.length,
    syncPhases: args.syncPhases,
    imagesPerSec: (B / med('total')) * 1000,
    imagesPerSecModelOnly: (B / modelMs) * 1000,
    /** From the fastest timed step: the best estimate of an unloaded machine when other processes share the cores. */
    bestImagesPerSec: (B / Math.min(...timings.map((t) => t.total))) * 1000,
    ms: { augment: med('augment'), teacher: med('teacher'), studentFwdBwd: med('student'), optimizer: med('optimizer'), total: med('total') },
    kernelsPerStep: kernels,
    gflopPerStep: flops.total / 1e9,
    allPatchGflopPerStep: stepFlops(cfg, B).total / 1e9,
    maskedPatches,
    achievedGflops: flops.total / modelMs / 1e6,
    matMulPeakGflops: peak,
    peakFraction: flops.total / modelMs / 1e6 / peak,
    featureImagesPerSec: featuresPerSec,
    peakRssMB: rssMB,
    maxTensors,
    tensorDrift,
    finalLoss: losses[losses.length - 1],
    loadAverage: [load0, loadAverage()],
    node: process.version,
    date: new Date().toISOString(),
    seconds: (performance.now() - started) / 1000,
  };
  if (!Number.isFinite(result.finalLoss)) throw new Error(`the training loss is not finite (${result.finalLoss}): the step is broken`);
  if (saveAndPrintJson(result, args)) return;
  const f1 = (x: number): string => x.toFixed(1);
  console.log(`iBOT training step, ${args.config} config (batch ${B}, ${result.crops} crops) — ${result.backend}`);
  if (info.name === 'wasm') console.log(`  our wasm kernels: ${result.kernels ? `on (${kernelThreads} thread${kernelThreads === 1 ? '' : 's'}, ${simd})` : 'off (stock tfjs kernels)'}; Node ${process.version}`);
  console.log(`  images/s (full step, median of ${result.steps}): ${f1(result.imagesPerSec)}   (model only: ${f1(result.imagesPerSecModelOnly)}; fastest step: ${f1(result.bestImagesPerSec)})`);
  console.log(
    `  ms/step: augment ${f1(result.ms.augment)} | teacher ${f1(result.ms.teacher)} | student fwd+bwd ${f1(result.ms.studentFwdBwd)} | optimizer+EMA ${f1(result.ms.optimizer)} | total ${f1(result.ms.total)}` +
      (info.name === 'webgpu' || info.name === 'tensorflow' ? (args.syncPhases ? '  (device time per phase)' : '  (host time: pass --sync-phases for device time per phase)') : ''),
  );
  console.log(`  kernels per step: augmentation ${kernels.augment}, model step ${kernels.step}`);
  console.log(`  heads on [CLS] + ${maskedPatches.toFixed(0)} masked patches of ${G * B * (cfg.crops.globalSize / cfg.model.vit.patchSize) ** 2} (mean per step)`);
  console.log(`  ${result.gflopPerStep.toFixed(1)} GFLOP/step → ${f1(result.achievedGflops)} GFLOP/s achieved (model only) = ${(100 * result.peakFraction).toFixed(0)}% of the 2-D matMul peak ${f1(peak)} GFLOP/s`);
  console.log(`  feature extraction (teacher backbone, forward only): ${f1(featuresPerSec)} images/s`);
  console.log(`  peak RSS ${rssMB.toFixed(0)} MB, max live tensors ${maxTensors} (drift over timed steps: ${tensorDrift})`);
  console.log(`  load average ${load0.toFixed(2)} → ${loadAverage().toFixed(2)} (other processes on the cores inflate every number); ${result.seconds.toFixed(0)} s`);
  if (args.out) console.log(`  saved ${args.out}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
