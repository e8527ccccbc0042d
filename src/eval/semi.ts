/**
 * Semi-supervised evaluation, as in the iBOT paper (after SimCLRv2's 1% and
 * 10% ImageNet label splits): only a class-balanced, seeded subset of the
 * train labels is used, and accuracy is measured on the full test set.
 *
 * - Frozen features: L2-regularised logistic regression (the paper's "LR";
 *   official features are L2-normalised) and weighted k-NN, fitted on the
 *   labelled subset only.
 * - Fine-tuning: the backbone plus the first layer of the projection head
 *   (the official `--finetune_head_layer 1`: Linear → GELU → a new linear
 *   classifier) or a fresh linear head, trained end to end with AdamW and a
 *   cosine learning rate, on the labelled subset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, classCounts, labelSubset, subset } from '../data/dataset';
import { VisionTransformer } from '../model/vit';
import { IBOTHead } from '../model/head';
import { Param, ParamSet, init } from '../model/params';
import { gelu, linear } from '../model/layers';
import { AdamW, Grads } from '../train/optim';
import { Rng } from '../util/rng';
import { ProgressBar } from '../util/progress';
import { knnClassify } from './knn';
import { LogisticEvalOptions, LogisticResult, logisticRegression } from './logistic';
import { accuracy, hostMatrix } from './classifier';
import { modelInput } from './features';
import type { LabelArray } from './metrics';

/** The paper's label fractions. */
export const SEMI_FRACTIONS: readonly number[] = [0.01, 0.1];

/** Indices of the class-balanced labelled subset for each fraction (see `labelSubset` for rounding). */
export function semiSplits(labels: LabelArray, fractions: readonly number[] = SEMI_FRACTIONS, seed = 0, numClasses?: number): Int32Array[] {
  return fractions.map((f) => labelSubset(labels, { fraction: f }, seed, numClasses));
}

export interface SemiOptions {
  /** Label fractions. Default [0.01, 0.1]. */
  fractions?: number[];
  /** Seed of the label subsets (and of the C-selection split). Default 0. */
  seed?: number;
  /** Logistic regression settings; default Cs [1, 10, 100, 1000] on L2-normalised features, C picked on 25% of the subset. */
  logistic?: LogisticEvalOptions;
  /** k-NN neighbours (capped at the subset size). Default 20. */
  k?: number;
  /** k-NN temperature. Default 0.07. */
  temperature?: number;
  numClasses?: number;
}

export interface SemiResult {
  protocol: 'semi';
  fraction: number;
  /** Labelled train images used. */
  numLabelled: number;
  /** Labelled images of each class. */
  perClass: number[];
  numTest: number;
  logistic: LogisticResult;
  knn: { k: number; temperature: number; top1: number; top5: number };
  /** End-to-end fine-tuning on the same subset, when run. */
  finetune?: FineTuneResult;
}

export const SEMI_DEFAULT_CS: readonly number[] = [1, 10, 100, 1000];

/**
 * Logistic regression and k-NN on frozen features, fitted on each labelled
 * subset and scored on all test features. Inputs are not disposed.
 */
export async function semiSupervised(
  trainFeatures: tf.Tensor2D,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D,
  testLabels: LabelArray,
  options: SemiOptions = {},
): Promise<SemiResult[]> {
  const fractions = options.fractions ?? [...SEMI_FRACTIONS];
  const seed = options.seed ?? 0;
  let numClasses = options.numClasses ?? 0;
  if (options.numClasses === undefined) for (let i = 0; i < trainLabels.length; i++) numClasses = Math.max(numClasses, trainLabels[i] + 1);
  const splits = semiSplits(trainLabels, fractions, seed, numClasses);
  const trainRaw = await trainFeatures.data();
  const test = await hostMatrix(testFeatures, 'semiSupervised');
  const dim = trainFeatures.shape[1];
  const results: SemiResult[] = [];
  for (let i = 0; i < splits.length; i++) {
    const idx = splits[i];
    const rows = new Float32Array(idx.length * dim);
    for (let r = 0; r < idx.length; r++) rows.set(trainRaw.subarray(idx[r] * dim, (idx[r] + 1) * dim) as Float32Array, r * dim);
    const labels = Int32Array.from(idx, (j) => trainLabels[j]);
    const logistic = await logisticRegression({ data: rows, rows: idx.length, cols: dim }, labels, test, testLabels, {
      Cs: [...SEMI_DEFAULT_CS],
      preprocess: 'l2',
      valFraction: 0.25,
      seed,
      ...options.logistic,
      numClasses,
    });
    const k = Math.min(options.k ?? 20, idx.length);
    const temperature = options.temperature ?? 0.07;
    const sub = tf.tensor2d(rows, [idx.length, dim]);
    let knn;
    try {
      knn = await knnClassify(sub, labels, testFeatures, { k, temperature, numClasses, testLabels });
    } finally {
      sub.dispose();
    }
    results.push({
      protocol: 'semi' as const,
      fraction: fractions[i],
      numLabelled: idx.length,
      perClass: classCounts(labels, numClasses),
      numTest: testLabels.length,
      logistic,
      knn: { k, temperature, top1: knn.top1 as number, top5: knn.top5 as number },
    });
  }
  return results;
}

// ---------------------------------------------------------------------------
// End-to-end fine-tuning on a labelled subset.
// ---------------------------------------------------------------------------

export interface FineTuneOptions {
  /**
   * 'headLayer': backbone → the projection head's first layer (pretrained) → GELU → new linear
   * classifier (official `finetune_head_layer 1`; needs `projectionHead`). 'linear': backbone → new
   * linear classifier. Default 'headLayer' when a head is given, else 'linear'.
   */
  head?: 'headLayer' | 'linear';
  /** The pretrained iBOT head whose first MLP layer starts the classifier. */
  projectionHead?: IBOTHead;
  /** Default 10. */
  epochs?: number;
  /** Default 64. */
  batchSize?: number;
  /** Peak AdamW learning rate (cosine to 1e-6 after 1 epoch of linear warm-up). Default 1e-4. */
  lr?: number;
  /** AdamW weight decay (none on biases and norms). Default 0.05 (DeiT, the official recipe's base). */
  weightDecay?: number;
  /** Stop after this many optimiser steps (for quick checks). Default: all epochs. */
  maxSteps?: number;
  /** Pixel normalisation used in pretraining (`resolveNormalize`). */
  mean?: number[];
  std?: number[];
  /** Resize images to this side first (a pretrained ViT's input size). Default: as they are. */
  imageSize?: number;
  seed?: number;
  /** Measure the mean train loss over the labelled set before and after (eval mode). Default true. */
  measureTrainLoss?: boolean;
  /** Show a progress bar on stderr. */
  progress?: boolean;
}

export interface FineTuneResult {
  protocol: 'finetune';
  head: 'headLayer' | 'linear';
  /** Label fraction of the train set used (set by `semiFineTune`). */
  fraction?: number;
  /** Test top-1 after fine-tuning, percent. */
  top1: number;
  numTrain: number;
  numTest: number;
  steps: number;
  epochs: number;
  lr: number;
  weightDecay: number;
  /** Training loss of each step (train mode, on its mini-batch). */
  losses: number[];
  /** Mean cross-entropy on the whole labelled set in eval mode, before and after; only with measureTrainLoss. */
  trainLossBefore?: number;
  trainLossAfter?: number;
  seconds: number;
}

/** A copy of a backbone (same config and weights) that can be trained without touching the original. */
export function cloneBackbone(backbone: VisionTransformer): VisionTransformer {
  const copy = new VisionTransformer({ ...backbone.config });
  copy.params.copyFrom(backbone.params);
  return copy;
}

/** The classifier on top of the [CLS] token. */
class ClassifierHead {
  readonly params = new ParamSet();
  readonly hidden: boolean;
  /** GELU after the head layer; a one-layer projection head has none (official ClassProjHead). */
  private readonly act: boolean;

  constructor(kind: 'headLayer' | 'linear', dim: number, numClasses: number, seed: number, projection?: IBOTHead) {
    let inDim = dim;
    this.hidden = kind === 'headLayer';
    this.act = (projection?.config.nlayers ?? 0) > 1;
    if (kind === 'headLayer') {
      if (!projection) throw new Error("fineTune: head 'headLayer' needs the pretrained projectionHead; pass it or use head: 'linear'");
      const w = projection.params.get('mlp.0.weight');
      const b = projection.params.get('mlp.0.bias');
      if (w.shape[0] !== dim) throw new Error(`fineTune: the projection head takes dim ${w.shape[0]} but the backbone gives ${dim}`);
      inDim = w.shape[1] as number;
      this.params.add('fc.weight', tf.clone(w), 'linear', [inDim, dim]);
      this.params.add('fc.bias', tf.clone(b), 'same', [inDim]);
    }
    // timm's classifier init: truncated normal(0.02) weights, zero bias.
    this.params.add('cls.weight', init.truncNormal([inDim, numClasses], 0.02, seed), 'linear', [numClasses, inDim]);
    this.params.add('cls.bias', init.zeros([numClasses]), 'same', [numClasses]);
  }

  forward(cls: tf.Tensor2D): tf.Tensor2D {
    let h = cls;
    if (this.hidden) {
      h = linear(h, this.params.get('fc.weight') as tf.Tensor2D, this.params.get('fc.bias') as tf.Tensor1D);
      if (this.act) h = gelu(h);
    }
    return linear(h, this.params.get('cls.weight') as tf.Tensor2D, this.params.get('cls.bias') as tf.Tensor1D);
  }
}

function meanCrossEntropy(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), logits.shape[1]);
  return tf.mean(tf.sub(tf.logSumExp(logits, 1), tf.sum(tf.mul(logits, onehot), 1))) as tf.Scalar;
}

function clsOf(backbone: VisionTransformer, x: tf.Tensor4D, training: boolean, seed: number): tf.Tensor2D {
  const { tokens } = backbone.forward(x, { training, seed });
  const [B, , D] = tokens.shape;
  return tf.reshape(tf.slice(tokens, [0, 0, 0], [B, 1, D]), [B, D]) as tf.Tensor2D;
}

/** Logits of every image in eval mode, as a host array, and the mean CE against its labels. */
async function evaluateAll(backbone: VisionTransformer, head: ClassifierHead, ds: ImageDataset, batchSize: number, input: { mean?: number[]; std?: number[]; imageSize?: number }): Promise<{ predictions: Int32Array; loss: number }> {
  const predictions = new Int32Array(ds.n);
  let lossSum = 0;
  for (let start = 0; start < ds.n; start += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, ds.n - start) }, (_, i) => start + i);
    const labels = Int32Array.from(idx, (i) => ds.labels[i]);
    const [pred, loss] = tf.tidy(() => {
      const logits = head.forward(clsOf(backbone, modelInput(ds, idx, { ...input, channels: backbone.config.inChans }), false, 0));
      return [tf.argMax(logits, 1), tf.mul(meanCrossEntropy(logits, labels), idx.length)];
    });
    try {
      predictions.set(await pred.data(), start);
      lossSum += (await loss.data())[0];
    } finally {
      tf.dispose([pred, loss]);
    }
  }
  return { predictions, loss: lossSum / Math.max(ds.n, 1) };
}

/**
 * Fine-tune a copy of `backbone` (the original is untouched) with a
 * classifier on its [CLS] token on the labelled `train` images; report test
 * top-1. No augmentation: the subsets are small and the runs short.
 */
export async function fineTune(backbone: VisionTransformer, train: ImageDataset, test: ImageDataset, options: FineTuneOptions = {}): Promise<FineTuneResult> {
  const t0 = Date.now();
  const kind = options.head ?? (options.projectionHead ? 'headLayer' : 'linear');
  const epochs = options.epochs ?? 10;
  const batchSize = options.batchSize ?? 64;
  const lr = options.lr ?? 1e-4;
  const weightDecay = options.weightDecay ?? 0.05;
  const seed = options.seed ?? 0;
  const input = { mean: options.mean, std: options.std, imageSize: options.imageSize };
  if (train.n === 0) throw new Error('fineTune: the train set is empty');
  if (train.numClasses !== test.numClasses) throw new Error(`fineTune: train has ${train.numClasses} classes but test has ${test.numClasses}`);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`fineTune: epochs must be a positive integer, got ${epochs}`);
  const rng = new Rng(seed);
  const model = cloneBackbone(backbone);
  const head = new ClassifierHead(kind, backbone.config.embedDim, train.numClasses, rng.seed(), options.projectionHead);
  const params: Param[] = [
    ...model.params.trainable().map((p) => ({ ...p, name: `backbone.${p.name}` })),
    ...head.params.params.map((p) => ({ ...p, name: `head.${p.name}` })),
  ];
  const optimizer = new AdamW(params);
  const byVar = new Map(params.map((p) => [p.variable.name, p.name]));
  const vars = params.map((p) => p.variable);
  const itersPerEpoch = Math.ceil(train.n / batchSize);
  const total = Math.min(epochs * itersPerEpoch, options.maxSteps ?? Infinity);
  const warmup = Math.min(itersPerEpoch, Math.floor(total / 2));
  const measure = options.measureTrainLoss ?? true;
  const bar = options.progress ? new ProgressBar(total, { label: 'finetune' }) : undefined;
  const losses: number[] = [];
  try {
    const before = measure ? (await evaluateAll(model, head, train, 256, input)).loss : undefined;
    let step = 0;
    for (let e = 0; e < epochs && step < total; e++) {
      const order = rng.permutation(train.n);
      for (let start = 0; start < train.n && step < total; start += batchSize) {
        const idx = Int32Array.from(order.slice(start, start + batchSize));
        const labels = Int32Array.from(idx, (i) => train.labels[i]);
        // Warm-up then half a cosine to 1e-6, as DeiT's scheduler.
        const rate = step < warmup ? (lr * (step + 1)) / warmup : 1e-6 + 0.5 * (lr - 1e-6) * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, total - warmup)));
        const x = modelInput(train, idx, { ...input, channels: model.config.inChans });
        const stepSeed = rng.seed();
        const { value, grads } = tf.variableGrads(() => meanCrossEntropy(head.forward(clsOf(model, x, true, stepSeed)), labels), vars);
        x.dispose();
        const named: Grads = new Map();
        for (const [vn, g] of Object.entries(grads)) named.set(byVar.get(vn) as string, g);
        optimizer.step(named, rate, weightDecay);
        tf.dispose(Object.values(grads));
        try {
          losses.push((await value.data())[0]);
        } finally {
          value.dispose();
        }
        step++;
        bar?.update(step, `loss ${losses[losses.length - 1].toFixed(3)}`);
      }
    }
    bar?.done();
    const after = measure ? (await evaluateAll(model, head, train, 256, input)).loss : undefined;
    const { predictions } = await evaluateAll(model, head, test, 256, input);
    const result: FineTuneResult = {
      protocol: 'finetune',
      head: kind,
      top1: accuracy(predictions, test.labels),
      numTrain: train.n,
      numTest: test.n,
      steps: step,
      epochs,
      lr,
      weightDecay,
      losses,
      seconds: 0,
    };
    if (measure) {
      result.trainLossBefore = before;
      result.trainLossAfter = after;
    }
    result.seconds = (Date.now() - t0) / 1000;
    return result;
  } finally {
    optimizer.dispose();
    model.dispose();
    head.params.dispose();
  }
}

/** Fine-tune on the class-balanced `fraction` subset of `train` (default 10%), score on all of `test`. */
export async function semiFineTune(
  backbone: VisionTransformer,
  train: ImageDataset,
  test: ImageDataset,
  fraction = 0.1,
  options: FineTuneOptions = {},
): Promise<FineTuneResult> {
  const idx = labelSubset(train.labels, { fraction }, options.seed ?? 0, train.numClasses);
  const labelled = subset(train, idx, `${train.name}/${Math.round(fraction * 1000) / 10}%`);
  return { ...(await fineTune(backbone, labelled, test, options)), fraction };
}
