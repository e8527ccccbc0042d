/** `ibotlab pretrain`: train, checkpoint, log, then a quick k-NN of the teacher. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadDataset, loadEmbeddedFashionMnist } from '../data/registry';
import { ImageDataset, subset } from '../data/dataset';
import { PretrainConfig, pretrainPreset } from '../train/presets';
import { Pretrainer } from '../train/pretrain';
import { ProgressBar, formatDuration } from '../util/progress';
import { extractFeatures } from '../eval/features';
import { knnClassify } from '../eval/knn';
import { VisionTransformer } from '../model/vit';
import { resolveNormalize } from '../augment/multicrop';

export interface PretrainArgs {
  dataset: string;
  dataPath?: string;
  preset: string;
  epochs?: number;
  minutes?: number;
  out: string;
  resume: boolean;
  batchSize?: number;
  lr?: number;
  seed?: number;
  checkpointEvery?: number;
  eval: boolean;
  /** Train on the first N training images only (smoke runs). */
  subset?: number;
}

/** Train and test splits for pretraining and the closing k-NN. */
export async function loadSplits(dataset: string, dataPath?: string): Promise<{ train: ImageDataset; test: ImageDataset }> {
  if (dataset === 'fashion-mnist-embedded') return loadEmbeddedFashionMnist({ path: dataPath });
  const [train, test] = await Promise.all([loadDataset(dataset, { split: 'train', path: dataPath }), loadDataset(dataset, { split: 'test', path: dataPath })]);
  return { train, test };
}

export interface KnnSummary {
  k: number;
  temperature: number;
  top1: number;
  top5: number;
  numTrain: number;
  numTest: number;
}

/** Weighted k-NN (k=20, T=0.07) on the teacher's [CLS] features, as the paper reports. */
export async function knnOfBackbone(backbone: VisionTransformer, cfg: PretrainConfig, train: ImageDataset, test: ImageDataset, progress = true): Promise<KnnSummary> {
  const norm = resolveNormalize(cfg.crops.normalize, train.channels);
  const fopts = { normalize: true, mean: norm?.mean, std: norm?.std, progress };
  const ftr = extractFeatures(backbone, train, fopts);
  const fte = extractFeatures(backbone, test, fopts);
  try {
    const r = await knnClassify(ftr, train.labels, fte, { k: 20, temperature: 0.07, testLabels: test.labels, numClasses: train.numClasses, normalize: false });
    return { k: 20, temperature: 0.07, top1: r.top1 as number, top5: r.top5 as number, numTrain: train.n, numTest: test.n };
  } finally {
    tf.dispose([ftr, fte]);
  }
}

export async function runPretrain(a: PretrainArgs): Promise<number> {
  const overrides: Partial<PretrainConfig> = { dataset: a.dataset };
  if (a.epochs !== undefined) overrides.epochs = a.epochs;
  if (a.batchSize !== undefined) overrides.batchSize = a.batchSize;
  if (a.lr !== undefined) overrides.lr = a.lr;
  if (a.seed !== undefined) overrides.seed = a.seed;
  const cfg = pretrainPreset(a.preset, overrides);
  process.stderr.write(`loading ${a.dataset}…\n`);
  const splits = await loadSplits(a.dataset, a.dataPath);
  const test = splits.test;
  const train = a.subset ? subset(splits.train, Array.from({ length: Math.min(a.subset, splits.train.n) }, (_, i) => i)) : splits.train;
  const trainer = new Pretrainer(cfg, train, {
    outDir: a.out,
    resume: a.resume,
    minutes: a.minutes,
    checkpointEvery: a.checkpointEvery,
  });
  let bar: ProgressBar | undefined;
  try {
    for await (const ev of trainer.run()) {
      switch (ev.type) {
        case 'start':
          process.stderr.write(
            `${ev.resumedFrom ? `resuming at step ${ev.resumedFrom}; ` : ''}pretraining ${ev.config.preset} on ${train.name} (${train.n} images): ` +
              `${ev.totalSteps} steps = ${ev.epochs.toFixed(2)} epochs of ${ev.itersPerEpoch}, batch ${ev.config.batchSize} → ${a.out}\n`,
          );
          bar = new ProgressBar(ev.totalSteps, { label: 'pretrain' });
          break;
        case 'step': {
          const s = ev.stats;
          bar?.update(
            ev.step,
            `ep ${ev.epoch.toFixed(2)} loss ${s.loss.toFixed(3)} (cls ${s.clsLoss.toFixed(2)} mim ${s.patchLoss.toFixed(2)}) ` +
              `lr ${ev.lr.toExponential(1)} H ${s.teacherEntropy.toFixed(2)}/${s.teacherMeanEntropy.toFixed(2)} ${ev.imagesPerSec.toFixed(0)} img/s`,
          );
          break;
        }
        case 'done':
          bar?.done(`${ev.finished ? 'finished' : 'stopped'} at step ${ev.step}/${ev.totalSteps} after ${formatDuration(ev.elapsedSec)} of training`);
          break;
        default:
          break;
      }
    }
    if (a.eval && trainer.model) {
      process.stderr.write('k-NN evaluation of the teacher ([CLS], k=20, T=0.07)…\n');
      const r = await knnOfBackbone(trainer.model.teacher.backbone, trainer.config, train, test);
      const line = `k-NN (k=20, T=0.07) on ${test.name}: top-1 ${r.top1.toFixed(2)}%  top-5 ${r.top5.toFixed(2)}%  (train ${r.numTrain}, test ${r.numTest})`;
      console.log(line);
      fs.writeFileSync(path.join(a.out, 'knn.json'), JSON.stringify({ ...r, step: trainer.step }, null, 1));
    }
    return 0;
  } finally {
    trainer.dispose();
  }
}
