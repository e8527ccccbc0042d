/**
 * The linear probe (DINO/iBOT `eval_linear.py`): a softmax linear layer on
 * frozen features trained with SGD, momentum 0.9 and a cosine learning rate,
 * with a small learning-rate × weight-decay sweep picked on held-out train
 * data, as `eval_linear_multi.py` does.
 *
 * Gradients are written out instead of taken by autodiff: for a linear
 * softmax model the weight gradient is Xᵀ(P − Y)/n, computed as a plain
 * matMul with a transposed copy of X made once. Autodiff would produce a
 * transposed matMul on the large operand, which is several times slower on
 * wasm. All sweep settings are trained together as the columns of one wide
 * weight matrix, so the sweep costs about as much as a single run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { stratifiedSplit } from '../data/dataset';
import { Rng } from '../util/rng';
import type { LabelArray } from './metrics';
import { HostMatrix, LinearClassifier, accuracy, applyStandardizer, checkRows, gatherLabels, gatherRows, hostMatrix, hostTrainTest, predictHost, resolveNumClasses, standardizer } from './classifier';

// ---------------------------------------------------------------------------
// Linear probe: mini-batch SGD / AdamW, several settings trained at once.
// ---------------------------------------------------------------------------

/** One (learning rate, weight decay) setting of the linear probe. */
export interface LinearSetting {
  lr: number;
  weightDecay: number;
}

export interface LinearTrainOptions {
  /**
   * 'sgd' (default): SGD with momentum and L2 weight decay added to the
   * gradient, as DINO/iBOT `eval_linear.py`. 'adamw': Adam with decoupled
   * weight decay (β 0.9/0.999, ε 1e-8).
   */
  optimizer?: 'sgd' | 'adamw';
  /** Passes over the data. Default 30 (the official 100 epochs are for ImageNet with augmentation). */
  epochs?: number;
  /** Default 256 (the official 1024 over 8 GPUs, scaled to a small data set). */
  batchSize?: number;
  /** SGD momentum. Default 0.9 (official). */
  momentum?: number;
  /** Standardise features with the train mean/std first (default true) so one lr grid suits every feature source. */
  standardize?: boolean;
  /** Shuffling and initialisation seed. Default 0. */
  seed?: number;
  /** Number of classes; default 1 + the largest label. */
  numClasses?: number;
}

/**
 * Train one softmax linear classifier per setting on the same mini-batches
 * (init N(0, 0.01²), bias 0, as DINO's `LinearClassifier`; cosine learning
 * rate from lr to 0 over all steps). No weight decay on the bias.
 */
export async function trainLinearClassifiers(
  features: tf.Tensor2D | HostMatrix,
  labels: LabelArray,
  settings: readonly LinearSetting[],
  options: LinearTrainOptions = {},
): Promise<LinearClassifier[]> {
  const x = await hostMatrix(features, 'trainLinearClassifiers');
  checkRows(x, labels, 'trainLinearClassifiers');
  const C = resolveNumClasses(labels, options.numClasses, 'trainLinearClassifiers');
  const epochs = options.epochs ?? 30;
  const batchSize = options.batchSize ?? 256;
  const momentum = options.momentum ?? 0.9;
  const optimizer = options.optimizer ?? 'sgd';
  const standardize = options.standardize ?? true;
  if (settings.length === 0) throw new Error('trainLinearClassifiers: pass at least one {lr, weightDecay} setting');
  for (const s of settings) {
    if (!(s.lr > 0) || !(s.weightDecay >= 0)) throw new Error(`trainLinearClassifiers: need lr > 0 and weightDecay >= 0, got ${JSON.stringify(s)}`);
  }
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`trainLinearClassifiers: epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`trainLinearClassifiers: batchSize must be a positive integer, got ${batchSize}`);
  if (optimizer !== 'sgd' && optimizer !== 'adamw') throw new Error(`trainLinearClassifiers: optimizer must be 'sgd' or 'adamw', got '${String(optimizer)}'`);

  const norm = standardize ? standardizer(x) : undefined;
  const xs = applyStandardizer(x, norm?.mean, norm?.scale);
  const { rows: n, cols: d } = xs;
  const S = settings.length;
  const K = S * C;
  const rng = new Rng(options.seed ?? 0);
  const lrRow = tf.tensor2d(Float32Array.from({ length: K }, (_, k) => settings[Math.floor(k / C)].lr), [1, K]);
  const wdRow = tf.tensor2d(Float32Array.from({ length: K }, (_, k) => settings[Math.floor(k / C)].weightDecay), [1, K]);
  let W: tf.Tensor = tf.randomNormal([d, K], 0, 0.01, 'float32', rng.seed());
  let b: tf.Tensor = tf.zeros([1, K]);
  // SGD: velocities; AdamW: first and second moments of W and b.
  let mW: tf.Tensor = tf.zerosLike(W);
  let mb: tf.Tensor = tf.zerosLike(b);
  let vW: tf.Tensor = tf.zerosLike(W);
  let vb: tf.Tensor = tf.zerosLike(b);
  const stepsPerEpoch = Math.ceil(n / batchSize);
  const total = epochs * stepsPerEpoch;
  const yb = new Float32Array(batchSize * K);
  let t = 0;
  try {
    for (let e = 0; e < epochs; e++) {
      const order = rng.permutation(n);
      for (let start = 0; start < n; start += batchSize) {
        const B = Math.min(batchSize, n - start);
        const idx = order.slice(start, start + B);
        const batch = gatherRows(xs, idx);
        const y = yb.subarray(0, B * K);
        y.fill(0);
        for (let r = 0; r < B; r++) for (let s = 0; s < S; s++) y[r * K + s * C + labels[idx[r]]] = 1;
        const cos = 0.5 * (1 + Math.cos((Math.PI * t) / total));
        t++;
        const next = tf.tidy(() => {
          const xb = tf.tensor2d(batch.data, [B, d]);
          const logits = tf.add(tf.matMul(xb, W as tf.Tensor2D), b);
          const p = tf.reshape(tf.softmax(tf.reshape(logits, [B, S, C])), [B, K]);
          const r = tf.div(tf.sub(p, tf.tensor2d(y, [B, K])), B);
          // Xᵀ(P − Y)/B with an explicitly transposed batch: a plain matMul.
          const gW = tf.matMul(tf.transpose(xb), r);
          const gb = tf.sum(r, 0, true);
          const lr = tf.mul(lrRow, cos);
          if (optimizer === 'sgd') {
            const g = tf.add(gW, tf.mul(wdRow, W));
            const nmW = tf.add(tf.mul(mW, momentum), g);
            const nmb = tf.add(tf.mul(mb, momentum), gb);
            return { W: tf.sub(W, tf.mul(lr, nmW)), b: tf.sub(b, tf.mul(lr, nmb)), mW: nmW, mb: nmb, vW, vb };
          }
          const [b1, b2, eps] = [0.9, 0.999, 1e-8];
          const bc1 = 1 - b1 ** t;
          const bc2 = 1 - b2 ** t;
          const nmW = tf.add(tf.mul(mW, b1), tf.mul(gW, 1 - b1));
          const nmb = tf.add(tf.mul(mb, b1), tf.mul(gb, 1 - b1));
          const nvW = tf.add(tf.mul(vW, b2), tf.mul(tf.square(gW), 1 - b2));
          const nvb = tf.add(tf.mul(vb, b2), tf.mul(tf.square(gb), 1 - b2));
          const upd = (m: tf.Tensor, v: tf.Tensor): tf.Tensor => tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
          const decayed = tf.mul(W, tf.sub(1, tf.mul(lr, wdRow)));
          return { W: tf.sub(decayed, tf.mul(lr, upd(nmW, nvW))), b: tf.sub(b, tf.mul(lr, upd(nmb, nvb))), mW: nmW, mb: nmb, vW: nvW, vb: nvb };
        });
        const old = [W, b, mW, mb, vW, vb].filter((o) => !Object.values(next).includes(o));
        tf.dispose(old);
        ({ W, b, mW, mb, vW, vb } = next);
      }
    }
    const wAll = (await W.data()) as Float32Array;
    const bAll = (await b.data()) as Float32Array;
    return settings.map((_, s) => {
      const weights = new Float32Array(d * C);
      for (let j = 0; j < d; j++) weights.set(wAll.subarray(j * K + s * C, j * K + (s + 1) * C), j * C);
      const clf: LinearClassifier = { weights, bias: bAll.slice(s * C, (s + 1) * C), dim: d, numClasses: C };
      if (norm) {
        clf.mean = norm.mean;
        clf.scale = norm.scale;
      }
      return clf;
    });
  } finally {
    tf.dispose([W, b, mW, mb, vW, vb, lrRow, wdRow]);
  }
}

/** A sweep entry: a setting and its accuracy on the held-out part of the train features. */
export interface SweepEntry extends LinearSetting {
  /** Top-1 on the validation split, percent. */
  valTop1: number;
}

export interface LinearProbeOptions extends LinearTrainOptions {
  /** Learning rates to sweep. Default [0.003, 0.01, 0.03, 0.1, 0.3] (per batch of 256, standardised features). */
  lrs?: number[];
  /** Weight decays to sweep. Default [0, 1e-4, 1e-3]. */
  weightDecays?: number[];
  /** Stratified held-out fraction of the train features used to pick the setting. Default 0.1. */
  valFraction?: number;
}

export interface LinearProbeResult {
  protocol: 'linear';
  /** Test top-1 of the classifier retrained on all train features with the best setting, percent. */
  top1: number;
  /** The setting picked on validation (highest valTop1; ties to the earlier one in sweep order). */
  best: SweepEntry;
  /** Every setting, in sweep order (lr-major). */
  sweep: SweepEntry[];
  optimizer: 'sgd' | 'adamw';
  epochs: number;
  batchSize: number;
  standardize: boolean;
  numTrain: number;
  numVal: number;
  numTest: number;
  seconds: number;
}

export const LINEAR_DEFAULT_LRS: readonly number[] = [0.003, 0.01, 0.03, 0.1, 0.3];
export const LINEAR_DEFAULT_WDS: readonly number[] = [0, 1e-4, 1e-3];

/**
 * The linear probe: sweep lr × weight decay on a stratified, seeded hold-out
 * of the train features, retrain the best setting on all of them, report
 * test top-1. Inputs are not disposed.
 */
export async function linearProbe(
  trainFeatures: tf.Tensor2D | HostMatrix,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D | HostMatrix,
  testLabels: LabelArray,
  options: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  const t0 = Date.now();
  const lrs = options.lrs ?? [...LINEAR_DEFAULT_LRS];
  const wds = options.weightDecays ?? [...LINEAR_DEFAULT_WDS];
  const valFraction = options.valFraction ?? 0.1;
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`linearProbe: valFraction must be in (0, 1), got ${valFraction}`);
  const { tr, te } = await hostTrainTest(trainFeatures, trainLabels, testFeatures, testLabels, 'linearProbe');
  const C = resolveNumClasses(trainLabels, options.numClasses, 'linearProbe');
  const seed = options.seed ?? 0;
  const split = stratifiedSplit(trainLabels, valFraction, new Rng(seed + 1), C);
  if (split.test.length === 0) throw new Error('linearProbe: the validation split is empty; raise valFraction');
  const settings: LinearSetting[] = [];
  for (const lr of lrs) for (const weightDecay of wds) settings.push({ lr, weightDecay });
  const opts = { ...options, numClasses: C };
  const clfs = await trainLinearClassifiers(gatherRows(tr, split.train), gatherLabels(trainLabels, split.train), settings, opts);
  const val = gatherRows(tr, split.test);
  const valLabels = gatherLabels(trainLabels, split.test);
  const sweep: SweepEntry[] = [];
  for (let i = 0; i < settings.length; i++) sweep.push({ ...settings[i], valTop1: accuracy(await predictHost(clfs[i], val), valLabels) });
  let best = sweep[0];
  for (const e of sweep) if (e.valTop1 > best.valTop1) best = e;
  const [final] = await trainLinearClassifiers(tr, trainLabels, [best], opts);
  const top1 = accuracy(await predictHost(final, te), testLabels);
  return {
    protocol: 'linear',
    top1,
    best,
    sweep,
    optimizer: options.optimizer ?? 'sgd',
    epochs: options.epochs ?? 30,
    batchSize: options.batchSize ?? 256,
    standardize: options.standardize ?? true,
    numTrain: tr.rows,
    numVal: split.test.length,
    numTest: te.rows,
    seconds: (Date.now() - t0) / 1000,
  };
}

