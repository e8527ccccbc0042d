/**
 * The GPU path, tested without a GPU: WebGPU (Dawn) on a software Vulkan
 * adapter (Mesa's llvmpipe; `.ci/run` installs it from bookworm-backports).
 * Runs on webgpu are compared with the same seeds on wasm. Tensors never
 * cross backends (moving data off webgpu needs a synchronous read, which
 * Node's WebGPU cannot do): each side's results are plain arrays.
 *
 * Tolerances: both backends compute in float32 but sum in different orders
 * (tiled GPU reductions vs. sequential or SIMD-lane sums), so each op differs
 * by a few ulps (~1e-7 relative), and a training step chains thousands of
 * ops; the measured gaps after 3 steps are ~1e-5 relative. The bounds below
 * (1e-3 relative on losses and features) leave room for that and still catch
 * any real divergence, which shows up at 1e-1 and above.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { subset } from '../src/data/dataset';
import { pretrainPreset } from '../src/train/presets';
import { buildModel } from '../src/train/config';
import { Pretrainer } from '../src/train/pretrain';
import { loadRun } from '../src/train/checkpoint';
import { ibotBatch, disposeIBOTBatch } from '../src/augment/batch';
import { adjustHue, rgbToGrayscale } from '../src/augment/crop-ops';
import { extractFeatures } from '../src/eval/features';
import { knnClassify } from '../src/eval/knn';
import { Rng } from '../src/util/rng';
import { REFERENCE_DIR, clippedAdamW, erf, relL2 } from './helpers';
import { gelu, layerNorm } from '../src/model/layers';
import { attention, packedAttention } from '../src/model/attention';
import { registerWebGPUKernels, unregisterWebGPUKernels, webgpuDispatches } from '../src/kernels';

const repo = path.resolve(__dirname, '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');

/** Whether a WebGPU adapter (software is fine) can be set up here; the reason when not. */
function webgpuAvailable(): string | undefined {
  const r = spawnSync(process.execPath, [cli, 'info', '--backend', 'webgpu'], { cwd: repo, encoding: 'utf8', timeout: 120_000 });
  return r.status === 0 ? undefined : (r.stderr.split('\n').find((l) => l.startsWith('ibotlab:')) ?? r.stderr).trim();
}
const unavailable = webgpuAvailable();
// In CI the software adapter is installed by .ci/run: its absence is a failure, not a skip.
const skip = unavailable && !process.env.CI ? `no WebGPU adapter: ${unavailable}` : false;

const relErr = relL2;

interface RunResult {
  losses: number[];
  tensorCounts: number[];
  features: Float32Array;
  knnPredictions: Int32Array;
  knnTop1: number;
  resumedLosses: number[];
  resumedWeights: Float32Array;
  uninterruptedWeights: Float32Array;
}

/** A few pretraining steps, a checkpoint and resume, features and k-NN of the teacher: everything as plain arrays. */
async function runOn(backend: 'wasm' | 'webgpu'): Promise<RunResult> {
  await initBackend({ backend, quiet: true });
  const all = loadEmbeddedFashionMnist();
  const train = subset(all.train, Array.from({ length: 64 }, (_, i) => i), 'fm-64');
  const test = subset(all.test, Array.from({ length: 40 }, (_, i) => i), 'fm-test-40');
  const cfg = pretrainPreset('tiny');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ibotlab-${backend}-`));
  const steps = 4;
  const losses: number[] = [];
  const tensorCounts: number[] = [];
  const full = new Pretrainer(cfg, train, { outDir: path.join(dir, 'full'), totalSteps: steps, checkpointEvery: 2 });
  for await (const ev of full.run()) {
    if (ev.type === 'step') {
      losses.push(ev.stats.loss);
      tensorCounts.push(tf.memory().numTensors);
    }
  }
  const teacherWeights = async (t: Pretrainer): Promise<Float32Array> =>
    (await t.model!.teacher.backbone.params.get('blocks.1.mlp.fc2.weight').data()) as Float32Array;
  const uninterruptedWeights = await teacherWeights(full);
  full.dispose();

  // Stop after 2 steps, resume from the checkpoint: the same run.
  const part = new Pretrainer(cfg, train, { outDir: path.join(dir, 'part'), totalSteps: steps, checkpointEvery: 2, stopAfter: 2 });
  for await (const _ of part.run()) void _;
  part.dispose();
  const resumed = new Pretrainer(cfg, train, { outDir: path.join(dir, 'part'), resume: true, checkpointEvery: 2 });
  const resumedLosses: number[] = [];
  for await (const ev of resumed.run()) if (ev.type === 'step') resumedLosses.push(ev.stats.loss);
  const resumedWeights = await teacherWeights(resumed);
  resumed.dispose();

  const run = loadRun(path.join(dir, 'full'));
  const opts = { normalize: true, mean: run.normalize?.mean, std: run.normalize?.std };
  const ftr = extractFeatures(run.model.teacher.backbone, train, opts);
  const fte = extractFeatures(run.model.teacher.backbone, test, opts);
  const knn = await knnClassify(ftr, train.labels, fte, { k: 5, testLabels: test.labels, normalize: false });
  const features = (await fte.data()) as Float32Array;
  tf.dispose([ftr, fte]);
  run.model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  return { losses, tensorCounts, features, knnPredictions: knn.predictions, knnTop1: knn.top1 as number, resumedLosses, resumedWeights, uninterruptedWeights };
}

describe('WebGPU (software adapter) against wasm', { skip }, () => {
  let cpu: RunResult;
  let gpu: RunResult;
  before(async () => {
    cpu = await runOn('wasm');
    gpu = await runOn('webgpu');
  });

  it('pretraining steps match wasm, with a flat tensor count', async () => {
    assert.equal(gpu.losses.length, 4);
    for (let i = 0; i < gpu.losses.length; i++) {
      assert.ok(Number.isFinite(gpu.losses[i]));
      assert.ok(Math.abs(gpu.losses[i] - cpu.losses[i]) <= 1e-3 * Math.abs(cpu.losses[i]), `step ${i + 1}: webgpu ${gpu.losses[i]} vs wasm ${cpu.losses[i]}`);
    }
    // Optimizer moments appear with a group's first gradient: the prototypes' after the 2-step
    // freeze (half an epoch of 4 batches). From then on nothing accumulates.
    assert.equal(gpu.tensorCounts[3], gpu.tensorCounts[2]);
    // On webgpu AdamW keeps one element → clipping-factor index per parameter group with a
    // gradient (decay, no decay, then the prototypes): 2, then 3 more tensors than on wasm.
    assert.deepEqual(gpu.tensorCounts.map((n, i) => n - cpu.tensorCounts[i]), [2, 2, 3, 3]);
  });

  it('a checkpoint written on webgpu resumes there exactly as the uninterrupted run', async () => {
    assert.equal(gpu.resumedLosses.length, 2);
    assert.deepEqual(gpu.resumedLosses, gpu.losses.slice(2));
    assert.deepEqual(Array.from(gpu.resumedWeights), Array.from(gpu.uninterruptedWeights));
  });

  it('feature extraction and k-NN match wasm', async () => {
    assert.ok(relErr(gpu.features, cpu.features) < 1e-3, `features differ by ${relErr(gpu.features, cpu.features)}`);
    // A flipped prediction needs two neighbours within ~1e-5 of each other: at most one of 40.
    const differ = gpu.knnPredictions.filter((p, i) => p !== cpu.knnPredictions[i]).length;
    assert.ok(differ <= 1, `${differ} k-NN predictions differ`);
    assert.ok(Math.abs(gpu.knnTop1 - cpu.knnTop1) <= 2.5);
  });
});

describe('WebGPU: the reference fixtures and the dispatch limits', { skip }, () => {
  it('npx ibotlab verify-reference --backend webgpu passes every fixture', async () => {
    const r = spawnSync(process.execPath, [cli, 'verify-reference', REFERENCE_DIR, '--backend', 'webgpu'], { cwd: repo, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /backend: webgpu/);
    assert.match(r.stdout, /reference: (\d+)\/\1 passed/);
  });

  it('colour ops on more pixels than a matMul grid allows (65,535 workgroups) run and match wasm', async () => {
    // 48 images of 224² = 2.4M pixels: as a [pixels, 3] matMul this needs > 65,535 workgroups in one dimension.
    const make = (): tf.Tensor4D => tf.randomUniform([48, 224, 224, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const sample = async (): Promise<number[]> => {
      const x = make();
      const g = rgbToGrayscale(x);
      const h = adjustHue(x, Array.from({ length: 48 }, (_, i) => (i % 7) / 20 - 0.15));
      const v = [...(await g.slice([47, 223, 0, 0], [1, 1, 8, 1]).data()), ...(await h.slice([47, 223, 0, 0], [1, 1, 4, 3]).data())];
      tf.dispose([x, g, h]);
      return v;
    };
    await initBackend({ backend: 'wasm', quiet: true });
    const onCpu = await sample();
    await initBackend({ backend: 'webgpu', quiet: true });
    const onGpu = await sample();
    assert.ok(relErr(onGpu, onCpu) < 1e-5, `${onGpu} vs ${onCpu}`);
  });

  it("every preset's step at a GPU batch size stays within the device's dispatch limits", async () => {
    await initBackend({ backend: 'webgpu', quiet: true });
    // A dry run: each program's dispatch grid is checked as tfjs would, and nothing is executed, so
    // the paper's ViT-S/16 step at batch 64 costs no compute on the software adapter.
    const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown; makeTensorInfo: (s: number[], d: string) => unknown };
    const original = backend.runWebGPUProgram;
    const maxDim = 65535;
    const over: string[] = [];
    tf.env().set('WEBGPU_CPU_FORWARD', false);
    backend.runWebGPUProgram = function (program: unknown, inputs: unknown, dtype: unknown, uniforms: unknown, output: unknown) {
      const p = program as { dispatch: number[]; dispatchLayout: { y?: number[]; z?: number[] }; outputShape: number[]; constructor: { name: string } };
      const d = p.dispatch;
      const grid2d = p.dispatchLayout.y !== undefined || p.dispatchLayout.z !== undefined;
      if (d[1] > maxDim || d[2] > maxDim || (d[0] > maxDim && grid2d)) over.push(`${p.constructor.name} → [${p.outputShape}] grid [${d}]`);
      return output ?? backend.makeTensorInfo(p.outputShape, dtype as string);
    };
    try {
      for (const [name, batch] of [['vit-s16', 64], ['fashion-mnist-gpu', 1024], ['bench', 1024], ['cifar10', 512]] as const) {
        const cfg = pretrainPreset(name, { batchSize: batch });
        const model = buildModel(cfg);
        const size = cfg.crops.globalSize <= 32 ? cfg.crops.globalSize : 256;
        const images = tf.zeros([batch, size, size, cfg.model.vit.inChans]) as tf.Tensor4D;
        const crops = ibotBatch(images, { multiCrop: cfg.crops, masking: cfg.masking, patchSize: cfg.model.vit.patchSize, epoch: 1 }, new Rng(1));
        // The dry run writes nothing, so the statistics read at the end is never awaited.
        void model.step(crops, { lr: 1e-4, wd: 0.04, momentum: 0.996, epoch: 1 }).catch(() => undefined);
        disposeIBOTBatch(crops);
        images.dispose();
        model.dispose();
      }
    } finally {
      backend.runWebGPUProgram = original;
      tf.env().set('WEBGPU_CPU_FORWARD', true);
    }
    assert.deepEqual(over, []);
  });
});

/** GPU dispatches of a profiled run: kernels that run several programs count those, not their records. */
function dispatchesOf(prof: Awaited<ReturnType<typeof tf.profile>>): number {
  return prof.kernels.filter((k) => !['Reshape', 'Identity'].includes(k.name)).reduce((n, k) => n + webgpuDispatches(k.name, k.outputShapes.length), 0);
}

/** `run` with our WebGPU programs, then with tfjs's own ops in their place. */
async function withAndWithoutPrograms<T>(run: () => Promise<T>): Promise<[T, T]> {
  const ours = await run();
  unregisterWebGPUKernels();
  try {
    return [ours, await run()];
  } finally {
    registerWebGPUKernels();
  }
}

describe('WebGPU: the GELU and LayerNorm programs', { skip }, () => {
  it('match a float64 reference and the plain-op path in values and gradients, in fewer dispatches', async () => {
    await initBackend({ backend: 'webgpu', quiet: true });
    // Odd sizes: 37 rows of 24 (not a workgroup multiple), values wide enough to reach erf's tails.
    const M = 37;
    const D = 24;
    const rng = new Rng(3);
    const arr = (n: number, mean: number, sd: number): Float32Array => Float32Array.from({ length: n }, () => mean + sd * rng.normal());
    const x = arr(M * D, 0.5, 2);
    const g = arr(D, 1, 0.3);
    const b = arr(D, 0, 0.3);
    const r = arr(M * D, 0, 1);
    const run = async (): Promise<{ values: Float32Array[]; dispatches: number }> => {
      const [xt, gt, bt, rt] = [tf.tensor2d(x, [M, D]), tf.tensor1d(g), tf.tensor1d(b), tf.tensor2d(r, [M, D])];
      const lossLn = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor): tf.Scalar => tf.sum(tf.mul(layerNorm(xi as tf.Tensor2D, gi as tf.Tensor1D, bi as tf.Tensor1D), rt));
      const lossGelu = (xi: tf.Tensor): tf.Scalar => tf.sum(tf.mul(gelu(xi), rt));
      const outs = [layerNorm(xt, gt, bt), gelu(xt), ...tf.grads(lossLn)([xt, gt, bt]), tf.grad(lossGelu)(xt)];
      const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
      const n0 = tf.memory().numTensors;
      const prof = await tf.profile(async () => {
        const gs = [...tf.grads(lossLn)([xt, gt, bt]), tf.grad(lossGelu)(xt)];
        await gs[0].data();
        tf.dispose(gs);
      });
      assert.equal(tf.memory().numTensors, n0, 'no tensor left behind');
      tf.dispose([...outs, xt, gt, bt, rt]);
      return { values, dispatches: dispatchesOf(prof) };
    };
    const [fused, plain] = await withAndWithoutPrograms(run);
    // float64 reference: LayerNorm (eps 1e-6) and x·Φ(x), and their gradients of Σ r·f
    const Phi = (v: number): number => 0.5 * (1 + erf(v / Math.SQRT2));
    const want: number[][] = [[], [], new Array(M * D).fill(0), new Array(D).fill(0), new Array(D).fill(0), []];
    for (let i = 0; i < M; i++) {
      const row = Array.from(x.subarray(i * D, (i + 1) * D));
      const mean = row.reduce((p, v) => p + v, 0) / D;
      const rstd = 1 / Math.sqrt(row.reduce((p, v) => p + (v - mean) ** 2, 0) / D + 1e-6);
      const xh = row.map((v) => (v - mean) * rstd);
      const dxh = xh.map((_, j) => r[i * D + j] * g[j]);
      const m1 = dxh.reduce((p, v) => p + v, 0) / D;
      const m2 = dxh.reduce((p, v, j) => p + v * xh[j], 0) / D;
      for (let j = 0; j < D; j++) {
        want[0].push(xh[j] * g[j] + b[j]);
        want[2][i * D + j] = rstd * (dxh[j] - m1 - xh[j] * m2);
        want[3][j] += r[i * D + j] * xh[j];
        want[4][j] += r[i * D + j];
      }
    }
    for (let i = 0; i < M * D; i++) {
      const v = x[i];
      want[1].push(v * Phi(v));
      want[5].push(r[i] * (Phi(v) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI)));
    }
    const names = ['LayerNorm', 'GELU', 'LayerNorm dx', 'dγ', 'dβ', 'GELU dx'];
    names.forEach((name, i) => {
      // erf to 1.5e-7 (tfjs's own WebGPU Erf has the same form) and float32 rounding
      assert.ok(relErr(fused.values[i], want[i]) < 2e-6, `${name}: ${relErr(fused.values[i], want[i])} from float64`);
      assert.ok(relErr(fused.values[i], plain.values[i]) < 2e-6, `${name}: ${relErr(fused.values[i], plain.values[i])} from the plain ops`);
    });
    assert.ok(fused.dispatches < plain.dispatches - 20, `${fused.dispatches} dispatches with the programs, ${plain.dispatches} without`);
  });
});

describe('WebGPU: q, k, v heads straight from the stacked qkv rows', { skip }, () => {
  it('packed attention (two batches) and single-batch attention with probabilities match the split-and-transpose path, values and gradients, in fewer dispatches', async () => {
    await initBackend({ backend: 'webgpu', quiet: true });
    const D = 16;
    const H = 2;
    const batches = [{ images: 3, tokens: 5 }, { images: 2, tokens: 3 }];
    const rows = 21;
    const rng = new Rng(5);
    const arr = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal());
    const [x, qkvW, projW, projB, r] = [arr(rows * D), arr(D * 3 * D), arr(D * D), arr(D), arr(rows * D)];
    const run = async (): Promise<{ values: Float32Array[]; dispatches: number }> => {
      const [xt, qw, pw, pb, rt] = [tf.tensor2d(x, [rows, D]), tf.tensor2d(qkvW, [D, 3 * D]), tf.tensor2d(projW, [D, D]), tf.tensor1d(projB), tf.tensor2d(r, [rows, D])];
      const loss = (xi: tf.Tensor, qi: tf.Tensor): tf.Scalar => tf.sum(tf.mul(packedAttention(xi as tf.Tensor2D, { qkvW: qi as tf.Tensor2D, projW: pw, projB: pb }, batches, H).out, rt));
      const outs = tf.tidy(() => {
        const single = attention(tf.slice(xt, [0, 0], [15, D]), { qkvW: qw, projW: pw, projB: pb }, 3, 5, H, true);
        return [packedAttention(xt, { qkvW: qw, projW: pw, projB: pb }, batches, H).out, single.out, single.probs as tf.Tensor, ...tf.grads(loss)([xt, qw])];
      });
      const values = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
      const prof = await tf.profile(async () => {
        const gs = tf.grads(loss)([xt, qw]);
        await gs[0].data();
        tf.dispose(gs);
      });
      tf.dispose([...outs, xt, qw, pw, pb, rt]);
      return { values, dispatches: dispatchesOf(prof) };
    };
    const n0 = tf.memory().numTensors;
    const [ours, plain] = await withAndWithoutPrograms(run);
    assert.equal(tf.memory().numTensors, n0, 'no tensor left behind');
    ['packed out', 'single out', 'probabilities', 'dx', 'dW qkv'].forEach((name, i) => {
      assert.ok(relErr(ours.values[i], plain.values[i]) < 1e-6, `${name}: ${relErr(ours.values[i], plain.values[i])}`);
    });
    assert.ok(ours.dispatches < plain.dispatches - 10, `${ours.dispatches} dispatches with the heads programs, ${plain.dispatches} without`);
  });
});

describe('WebGPU: clipping factors spread over the flat gradient', { skip }, () => {
  it('AdamW with per-parameter factors (one gather per group here) updates as with clipped gradients', async () => {
    await initBackend({ backend: 'webgpu', quiet: true });
    const n0 = tf.memory().numTensors;
    const [folded, clipped] = [await clippedAdamW(true), await clippedAdamW(false)];
    assert.equal(tf.memory().numTensors, n0, 'no tensor left behind');
    assert.ok(relErr(folded, clipped) < 1e-6, `${folded} vs ${clipped}`);
  });
});

describe('no synchronous reads on GPU paths', () => {
  it('src/, bench/ and the notebooks never call dataSync, arraySync or bufferSync (WebGPU in Node cannot)', async () => {
    const offenders: string[] = [];
    const walk = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const files = [...walk(path.join(repo, 'src')), ...walk(path.join(repo, 'bench')), ...walk(path.join(repo, 'notebooks'))].filter((f) => /\.(ts|ipynb)$/.test(f));
    for (const f of files) {
      fs.readFileSync(f, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, '').replace(/^\s*\*.*$/, '');
          if (/\.(dataSync|arraySync|bufferSync)\s*\(/.test(code)) offenders.push(`${path.relative(repo, f)}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(offenders, []);
  });
});
