/**
 * Per-kernel profile of one iBOT training step, with random crops (development aid, not part of
 * `npm run bench`):
 *   node dist/bench/profile.js [--config <preset>] [--stock] [--t1] [--rest]
 * --config picks the recipe (default `bench`, the benchmark's; `fashion-mnist` is what `npm start`
 * trains), --stock keeps tfjs's own kernels, --t1 runs single-threaded, --rest lists every kernel
 * but the products by shape. tf.profile times each kernel synchronously, so the totals exceed a
 * normal step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Crops } from '../src/train/ibot';
import { buildModel } from '../src/train/config';
import { pretrainPreset } from '../src/train/presets';
import { Rng } from '../src/util/rng';
import { tidy } from '../src/util/tidy';
import { initBackend } from '../src/backend';
import { registerWasmKernels, setAutoRegisterKernels } from '../src/kernels';

async function main(): Promise<void> {
  const threads = process.argv.includes('--t1') ? 1 : undefined;
  await initBackend({ quiet: true, threads });
  if (process.argv.includes('--stock')) setAutoRegisterKernels(false);
  else registerWasmKernels({ threads });
  const at = process.argv.indexOf('--config');
  const cfg = pretrainPreset((at > 0 ? process.argv[at + 1] : 'bench') as Parameters<typeof pretrainPreset>[0]);
  const model = buildModel(cfg, 0);
  const B = cfg.batchSize;
  const rng = new Rng(1);
  const { globalCrops: G, localCrops: L, globalSize, localSize } = cfg.crops;
  const C = cfg.model.vit.inChans;
  const N = (globalSize / cfg.model.vit.patchSize) ** 2;
  const crops: Crops = tidy((): Crops => {
    const m = new Float32Array(G * B * N);
    for (let i = 0; i < m.length; i++) m[i] = rng.random() < 0.15 ? 1 : 0;
    return {
      global: tf.randomNormal([G * B, globalSize, globalSize, C], 0, 1, 'float32', 10) as tf.Tensor4D,
      local: L > 0 ? (tf.randomNormal([L * B, localSize, localSize, C], 0, 1, 'float32', 20) as tf.Tensor4D) : null,
      masks: tf.tensor2d(m, [G * B, N]),
    };
  });
  const sched = { lr: 1e-4, wd: 0.04, momentum: 0.996, epoch: 2 };
  for (let i = 0; i < 2; i++) console.log(JSON.stringify((await model.step(crops, sched, i)).ms));
  const prof = await tf.profile(async () => {
    await model.step(crops, sched, 5);
  });
  const by = new Map<string, { ms: number; n: number }>();
  const detail = new Map<string, { ms: number; n: number }>();
  const t0p = performance.now();
  for (const k of prof.kernels) {
    if (k.name.includes('scope') || k.name.endsWith('__op')) continue;
    const ms = k.kernelTimeMs as number;
    const e = by.get(k.name) ?? { ms: 0, n: 0 };
    e.ms += ms; e.n++;
    by.set(k.name, e);
    const key = `${k.name} ${JSON.stringify(k.inputShapes)} ${JSON.stringify(k.extraInfo ?? '')}`;
    const d = detail.get(key) ?? { ms: 0, n: 0 };
    d.ms += ms; d.n++;
    detail.set(key, d);
  }
  let tot = 0;
  for (const e of by.values()) tot += e.ms;
  console.log('total kernel ms (leaf kernels only)', tot.toFixed(0), 'kernel calls', prof.kernels.filter((k) => !(k.name.includes('scope') || k.name.endsWith('__op'))).length, t0p > 0 ? '' : '');
  for (const [k, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30)) console.log(k.padEnd(22), e.ms.toFixed(1).padStart(8), e.n);
  console.log('--- top kernel instances');
  for (const [k, e] of [...detail].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40)) console.log(e.ms.toFixed(1).padStart(8), String(e.n).padStart(4), k);
  if (process.argv.includes('--rest')) {
    // Everything but the products: where the time beside the GEMM goes.
    console.log('--- other kernel instances');
    for (const [k, e] of [...detail].filter(([k]) => !/MatMul/.test(k)).sort((a, b) => b[1].ms - a[1].ms).slice(0, 80)) console.log(e.ms.toFixed(1).padStart(8), String(e.n).padStart(4), k);
  }
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) console.log(JSON.stringify((await model.step(crops, sched, 10 + i)).ms));
  console.log('step ms', ((performance.now() - t0) / 3).toFixed(0));
}
main();
