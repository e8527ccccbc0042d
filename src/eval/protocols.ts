/**
 * Every evaluation protocol of the paper on one set of frozen features, in
 * one call: weighted k-NN, the linear probe, logistic regression, the
 * semi-supervised 1% / 10% protocols and unsupervised classification. The
 * CLI and notebooks both go through `evaluateFeatures`, so a checkpoint, a
 * randomly initialised model and raw pixels are compared on equal terms.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset } from '../data/dataset';
import { NormalizeConfig } from '../data/normalize';
import { VisionTransformer } from '../model/vit';
import { extractFeatures, pixelFeatures, type FeatureSet } from './features';
import { DINO_KNN_KS, knnClassify, knnClassifyMulti } from './knn';
import { LinearProbeOptions, LinearProbeResult, linearProbe } from './linear';
import { LogisticEvalOptions, LogisticResult, logisticRegression } from './logistic';
import { SemiOptions, SemiResult, FineTuneResult, semiSupervised } from './semi';
import { ClusterResult, KMeansClusteringOptions, headClustering, kmeansClustering } from './cluster';
import type { LabelArray } from './metrics';

export interface KnnEvalResult {
  protocol: 'knn';
  temperature: number;
  /** One entry per k, ascending. */
  entries: Array<{ k: number; top1: number; top5: number }>;
  numTrain: number;
  numTest: number;
  seconds: number;
}

/** Any protocol's result; `protocol` tells them apart. */
export type EvalResult = KnnEvalResult | LinearProbeResult | LogisticResult | SemiResult | ClusterResult | FineTuneResult;

/** Results of one feature source (a checkpoint, random init, pixels…). */
export interface EvalReport {
  /** Name of the feature source, e.g. 'pixels', 'random', 'runs/fashion-mnist'. */
  features: string;
  dataset?: string;
  results: EvalResult[];
}

export interface KnnEvalOptions {
  /** Default DINO's [10, 20, 100, 200] (those above the train size are dropped). */
  ks?: number[];
  /** Default 0.07. */
  temperature?: number;
  numClasses?: number;
}

/** Weighted k-NN (DINO/iBOT `eval_knn.py`) for several k. Inputs are not disposed. */
export async function knnEvaluation(
  trainFeatures: tf.Tensor2D,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D,
  testLabels: LabelArray,
  options: KnnEvalOptions = {},
): Promise<KnnEvalResult> {
  const t0 = Date.now();
  const nTrain = trainFeatures.shape[0];
  const temperature = options.temperature ?? 0.07;
  let ks = (options.ks ?? [...DINO_KNN_KS]).filter((k) => k <= nTrain);
  if (ks.length === 0) ks = [nTrain];
  ks = [...new Set(ks)].sort((a, b) => a - b);
  const rs = await knnClassifyMulti(trainFeatures, trainLabels, testFeatures, ks, { temperature, testLabels, numClasses: options.numClasses });
  return {
    protocol: 'knn',
    temperature,
    entries: rs.map((r) => ({ k: r.k, top1: r.top1 as number, top5: r.top5 as number })),
    numTrain: nTrain,
    numTest: testFeatures.shape[0],
    seconds: (Date.now() - t0) / 1000,
  };
}

export type { FeatureSet } from './features';

export interface BackboneKnnResult {
  k: number;
  temperature: number;
  top1: number;
  top5: number;
  numTrain: number;
  numTest: number;
}

/**
 * The number the paper reports after pretraining: weighted k-NN (k = 20,
 * T = 0.07) on a backbone's L2-normalised [CLS] features. What `ibotlab
 * pretrain` prints at the end and the notebooks track during training.
 */
export async function backboneKnn(
  backbone: VisionTransformer,
  train: ImageDataset,
  test: ImageDataset,
  opts: { normalize?: NormalizeConfig | null; k?: number; temperature?: number; progress?: boolean } = {},
): Promise<BackboneKnnResult> {
  const fopts = { normalize: true, mean: opts.normalize?.mean, std: opts.normalize?.std, progress: opts.progress };
  return knnOfFeatures(extractFeatures(backbone, train, fopts), extractFeatures(backbone, test, fopts), train, test, opts);
}

/** The same k-NN on flattened, L2-normalised pixels: the baseline a representation must beat. */
export async function pixelKnn(train: ImageDataset, test: ImageDataset, opts: { k?: number; temperature?: number } = {}): Promise<BackboneKnnResult> {
  return knnOfFeatures(pixelFeatures(train, { normalize: true }), pixelFeatures(test, { normalize: true }), train, test, opts);
}

/** Weighted k-NN of L2-normalised features; disposes them. */
async function knnOfFeatures(
  ftr: tf.Tensor2D,
  fte: tf.Tensor2D,
  train: ImageDataset,
  test: ImageDataset,
  opts: { k?: number; temperature?: number },
): Promise<BackboneKnnResult> {
  const k = opts.k ?? 20;
  const temperature = opts.temperature ?? 0.07;
  try {
    const r = await knnClassify(ftr, train.labels, fte, { k, temperature, testLabels: test.labels, numClasses: train.numClasses, normalize: false });
    return { k, temperature, top1: r.top1 as number, top5: r.top5 as number, numTrain: train.n, numTest: test.n };
  } finally {
    tf.dispose([ftr, fte]);
  }
}

export type ProtocolName = 'knn' | 'linear' | 'logistic' | 'semi' | 'cluster';
export const ALL_PROTOCOLS: readonly ProtocolName[] = ['knn', 'linear', 'logistic', 'semi', 'cluster'];

export interface EvaluateOptions {
  /** Which protocols; default all. */
  protocols?: readonly ProtocolName[];
  /** One seed for every random choice (splits, init, k-means). Default 0. */
  seed?: number;
  knn?: KnnEvalOptions;
  linear?: LinearProbeOptions;
  /** Default: Cs [1, 10, 100, 1000] on L2-normalised features (official), C picked on 20% of train. */
  logistic?: LogisticEvalOptions;
  semi?: SemiOptions;
  kmeans?: KMeansClusteringOptions;
  /** Called before each protocol (e.g. to print what is running). */
  onProtocol?: (name: ProtocolName) => void;
  /** Called after each protocol with its wall-clock seconds. */
  onProtocolDone?: (name: ProtocolName, seconds: number) => void;
}

/** Run the chosen protocols on one feature set. */
export async function evaluateFeatures(fs: FeatureSet, options: EvaluateOptions = {}): Promise<EvalReport> {
  const protocols = options.protocols ?? ALL_PROTOCOLS;
  const seed = options.seed ?? 0;
  const C = fs.numClasses;
  const results: EvalResult[] = [];
  for (const p of protocols) {
    options.onProtocol?.(p);
    const t0 = Date.now();
    switch (p) {
      case 'knn':
        results.push(await knnEvaluation(fs.train, fs.trainLabels, fs.test, fs.testLabels, { numClasses: C, ...options.knn }));
        break;
      case 'linear':
        results.push(await linearProbe(fs.linearTrain ?? fs.train, fs.trainLabels, fs.linearTest ?? fs.test, fs.testLabels, { seed, numClasses: C, ...options.linear }));
        break;
      case 'logistic':
        results.push(
          await logisticRegression(fs.train, fs.trainLabels, fs.test, fs.testLabels, { Cs: [1, 10, 100, 1000], preprocess: 'l2', seed, numClasses: C, ...options.logistic }),
        );
        break;
      case 'semi':
        results.push(...(await semiSupervised(fs.train, fs.trainLabels, fs.test, fs.testLabels, { seed, numClasses: C, ...options.semi })));
        break;
      case 'cluster':
        if (fs.head) results.push(await headClustering(fs.head, fs.test, fs.testLabels, { numClasses: C, classNames: fs.classNames }));
        results.push(await kmeansClustering(fs.test, fs.testLabels, { seed, numClasses: C, classNames: fs.classNames, ...options.kmeans }));
        break;
      default:
        throw new Error(`unknown protocol '${String(p)}'; choose from ${ALL_PROTOCOLS.join(', ')}`);
    }
    options.onProtocolDone?.(p, (Date.now() - t0) / 1000);
  }
  return { features: fs.name, results };
}
