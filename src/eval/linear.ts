/**
 * Linear classifiers on frozen features: the linear probe (DINO/iBOT
 * `eval_linear.py`: a softmax linear layer trained with SGD, momentum 0.9 and
 * a cosine learning rate, with a small learning-rate × weight-decay sweep
 * picked on held-out train data, as `eval_linear_multi.py` does) and
 * L2-regularised multinomial logistic regression solved to convergence with
 * L-BFGS (sklearn's `LogisticRegression(C=…)` objective; the paper's
 * semi-supervised protocol, run with cyanure in the official code).
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

/** A trained linear classifier: logits = standardise(x) · W + b. */
export interface LinearClassifier {
  /** Row-major [dim, numClasses]. */
  weights: Float32Array;
  /** [numClasses]. */
  bias: Float32Array;
  dim: number;
  numClasses: number;
  /** Per-feature shift and scale applied before W (from the train features), when standardising. */
  mean?: Float32Array;
  scale?: Float32Array;
}

/** Features as a JS array plus its shape: probes read them row by row. */
export interface HostMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** Features on the host (one asynchronous read of a tensor; a host matrix passes through). */
export async function hostMatrix(x: tf.Tensor2D | HostMatrix, what: string): Promise<HostMatrix> {
  if (!(x instanceof tf.Tensor)) return x;
  if (x.rank !== 2) throw new Error(`${what}: features must be 2-D [samples, dim], got shape ${JSON.stringify(x.shape)}`);
  const raw = await x.data();
  return { data: raw instanceof Float32Array ? raw : Float32Array.from(raw), rows: x.shape[0], cols: x.shape[1] };
}

function resolveNumClasses(labels: LabelArray, given: number | undefined, what: string): number {
  let c = given ?? 0;
  if (given === undefined) for (let i = 0; i < labels.length; i++) if (Number.isInteger(labels[i])) c = Math.max(c, labels[i] + 1);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || (c >= 2 && y >= c)) {
      throw new Error(`${what}: label ${y} at index ${i} is not a class index in [0, ${c}); labels must be 0-based integers (or raise numClasses)`);
    }
  }
  if (!Number.isInteger(c) || c < 2) throw new Error(`${what}: need at least 2 classes, got numClasses = ${c}`);
  return c;
}

function checkRows(m: HostMatrix, labels: LabelArray, what: string): void {
  if (m.rows !== labels.length) throw new Error(`${what}: ${m.rows} feature rows but ${labels.length} labels; pass one label per row`);
  if (m.rows === 0) throw new Error(`${what}: no samples`);
}

/** Per-feature mean and 1/std (std floored at 1e-6·max std so constant features stay finite). */
export function standardizer(x: HostMatrix): { mean: Float32Array; scale: Float32Array } {
  const { data, rows, cols } = x;
  const mean = new Float64Array(cols);
  const sq = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const off = i * cols;
    for (let j = 0; j < cols; j++) mean[j] += data[off + j];
  }
  for (let j = 0; j < cols; j++) mean[j] /= rows;
  for (let i = 0; i < rows; i++) {
    const off = i * cols;
    for (let j = 0; j < cols; j++) sq[j] += (data[off + j] - mean[j]) ** 2;
  }
  let maxStd = 0;
  const std = Array.from(sq, (s) => Math.sqrt(s / rows));
  for (const s of std) maxStd = Math.max(maxStd, s);
  const floor = Math.max(maxStd * 1e-6, 1e-12);
  return { mean: Float32Array.from(mean), scale: Float32Array.from(std, (s) => 1 / Math.max(s, floor)) };
}

function applyStandardizer(x: HostMatrix, mean?: Float32Array, scale?: Float32Array): HostMatrix {
  if (!mean || !scale) return x;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < x.rows; i++) {
    const off = i * x.cols;
    for (let j = 0; j < x.cols; j++) out[off + j] = (x.data[off + j] - mean[j]) * scale[j];
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

function gatherRows(x: HostMatrix, idx: ArrayLike<number>): HostMatrix {
  const out = new Float32Array(idx.length * x.cols);
  for (let r = 0; r < idx.length; r++) out.set(x.data.subarray(idx[r] * x.cols, (idx[r] + 1) * x.cols), r * x.cols);
  return { data: out, rows: idx.length, cols: x.cols };
}

function gatherLabels(labels: LabelArray, idx: ArrayLike<number>): Int32Array {
  return Int32Array.from({ length: idx.length }, (_, r) => labels[idx[r]]);
}

/** Predicted class per row (ties to the lowest class). The features tensor is not disposed. */
export async function predictLinear(clf: LinearClassifier, x: tf.Tensor2D): Promise<Int32Array> {
  const m = await hostMatrix(x, 'predictLinear');
  if (m.cols !== clf.dim) throw new Error(`predictLinear: features have dim ${m.cols} but the classifier was trained on dim ${clf.dim}`);
  return predictHost(clf, m);
}

async function predictHost(clf: LinearClassifier, m: HostMatrix): Promise<Int32Array> {
  const xs = applyStandardizer(m, clf.mean, clf.scale);
  const pred = tf.tidy(() => {
    const logits = tf.add(tf.matMul(tf.tensor2d(xs.data, [xs.rows, xs.cols]), tf.tensor2d(clf.weights, [clf.dim, clf.numClasses])), tf.tensor1d(clf.bias));
    return tf.argMax(logits, 1);
  });
  try {
    return Int32Array.from(await pred.data());
  } finally {
    pred.dispose();
  }
}

/** Percentage of `predictions` equal to `labels`. */
export function accuracy(predictions: LabelArray, labels: LabelArray): number {
  if (predictions.length !== labels.length) throw new Error(`accuracy: ${predictions.length} predictions for ${labels.length} labels`);
  if (labels.length === 0) return 0;
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) ok++;
  return (100 * ok) / labels.length;
}

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

/** Train and test features on the host, checked against their labels and against each other. */
async function hostTrainTest(
  trainFeatures: tf.Tensor2D | HostMatrix,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D | HostMatrix,
  testLabels: LabelArray,
  who: string,
): Promise<{ tr: HostMatrix; te: HostMatrix }> {
  const tr = await hostMatrix(trainFeatures, who);
  const te = await hostMatrix(testFeatures, who);
  checkRows(tr, trainLabels, `${who} (train)`);
  checkRows(te, testLabels, `${who} (test)`);
  if (tr.cols !== te.cols) throw new Error(`${who}: train features have dim ${tr.cols} but test features have dim ${te.cols}`);
  return { tr, te };
}

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

// ---------------------------------------------------------------------------
// Multinomial logistic regression with L2, solved by L-BFGS.
// ---------------------------------------------------------------------------

export interface LogisticRegressionOptions {
  /** Inverse regularisation strength, as sklearn: minimise mean CE + ‖W‖²/(2·C·n). Default 1. */
  C?: number;
  /** L-BFGS iterations at most. Default 500. */
  maxIter?: number;
  /** Stop when max |∂f/∂θ| ≤ tol (scipy's `gtol`; sklearn's default 1e-4 is loose for L2-normalised features, whose gradients are ~√dim smaller). Default 1e-5. */
  tol?: number;
  /** L-BFGS memory. Default 10 (scipy's `maxcor`). */
  history?: number;
  /** Unpenalised intercept per class (sklearn default true). */
  fitIntercept?: boolean;
  /** Number of classes; default 1 + the largest label. */
  numClasses?: number;
  /** Initial weights [dim·numClasses] then bias (warm start), e.g. from a neighbouring C. */
  init?: Float64Array;
}

export interface LogisticModel extends LinearClassifier {
  C: number;
  /** Objective value at the solution (mean CE + penalty). */
  loss: number;
  /** max |gradient| at the solution. */
  gradMax: number;
  iterations: number;
  /** Objective and gradient evaluations. */
  evaluations: number;
  /** Why it stopped: gradient small enough, iteration cap, or no further decrease possible in float32. */
  stop: 'gtol' | 'maxIter' | 'noProgress';
  /** Parameters as one vector (weights then bias), for warm starts. */
  theta: Float64Array;
}

/**
 * Objective and gradient of the L2-regularised multinomial logistic loss on
 * fixed data, evaluated on the tf backend (X, Xᵀ and Y uploaded once).
 */
class LogisticObjective {
  readonly n: number;
  readonly d: number;
  readonly c: number;
  private readonly x: tf.Tensor2D;
  private readonly xT: tf.Tensor2D;
  private readonly y: tf.Tensor2D;
  private readonly l2: number;
  private readonly intercept: boolean;
  evaluations = 0;

  constructor(x: HostMatrix, labels: LabelArray, c: number, C: number, intercept: boolean) {
    this.n = x.rows;
    this.d = x.cols;
    this.c = c;
    this.l2 = 1 / (C * x.rows);
    this.intercept = intercept;
    const onehot = new Float32Array(x.rows * c);
    for (let i = 0; i < x.rows; i++) onehot[i * c + labels[i]] = 1;
    this.x = tf.tensor2d(x.data, [x.rows, x.cols]);
    this.xT = tf.transpose(this.x);
    this.y = tf.tensor2d(onehot, [x.rows, c]);
  }

  get size(): number {
    return this.d * this.c + (this.intercept ? this.c : 0);
  }

  /** f(θ) and ∇f(θ); θ = [W row-major (d×c), b (c)]. Sums in float64 on the host. */
  async evaluate(theta: Float64Array): Promise<{ f: number; g: Float64Array }> {
    this.evaluations++;
    const { n, d, c } = this;
    const wSize = d * c;
    const out = tf.tidy(() => {
      const W = tf.tensor2d(Float32Array.from(theta.subarray(0, wSize)), [d, c]);
      let logits = tf.matMul(this.x, W);
      if (this.intercept) logits = tf.add(logits, tf.tensor1d(Float32Array.from(theta.subarray(wSize, wSize + c))));
      const lse = tf.logSumExp(logits, 1);
      // Per-sample CE = logsumexp − logit of the true class.
      const ce = tf.sub(lse, tf.sum(tf.mul(logits, this.y), 1));
      const r = tf.div(tf.sub(tf.exp(tf.sub(logits, tf.reshape(lse, [n, 1]))), this.y), n);
      const gW = tf.reshape(tf.matMul(this.xT, r), [-1]);
      const parts = [ce, gW];
      if (this.intercept) parts.push(tf.sum(r, 0));
      return tf.concat(parts);
    });
    let v: Float32Array;
    try {
      v = (await out.data()) as Float32Array;
    } finally {
      out.dispose();
    }
    let f = 0;
    for (let i = 0; i < n; i++) f += v[i];
    f /= n;
    const g = new Float64Array(this.size);
    let pen = 0;
    for (let k = 0; k < wSize; k++) {
      const w = theta[k];
      pen += w * w;
      g[k] = v[n + k] + this.l2 * w;
    }
    for (let k = wSize; k < this.size; k++) g[k] = v[n + k];
    return { f: f + 0.5 * this.l2 * pen, g };
  }

  dispose(): void {
    tf.dispose([this.x, this.xT, this.y]);
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * Fit multinomial logistic regression with L2 regularisation:
 * minimise (1/n) Σ −log softmax(W·xᵢ + b)[yᵢ] + ‖W‖²/(2·C·n), the objective
 * sklearn's `LogisticRegression(C, multi_class='multinomial')` minimises
 * (its C·Σ CE + ½‖W‖², divided by C·n). L-BFGS with a backtracking Armijo
 * line search; the objective is convex, so curvature pairs stay positive.
 */
export async function fitLogisticRegression(features: tf.Tensor2D | HostMatrix, labels: LabelArray, options: LogisticRegressionOptions = {}): Promise<LogisticModel> {
  const x = await hostMatrix(features, 'fitLogisticRegression');
  checkRows(x, labels, 'fitLogisticRegression');
  const c = resolveNumClasses(labels, options.numClasses, 'fitLogisticRegression');
  const C = options.C ?? 1;
  const maxIter = options.maxIter ?? 500;
  const tol = options.tol ?? 1e-5;
  const m = options.history ?? 10;
  const intercept = options.fitIntercept ?? true;
  if (!(C > 0)) throw new Error(`fitLogisticRegression: C must be > 0, got ${C}`);
  if (!Number.isInteger(maxIter) || maxIter < 0) throw new Error(`fitLogisticRegression: maxIter must be a non-negative integer, got ${maxIter}`);
  if (!(tol >= 0)) throw new Error(`fitLogisticRegression: tol must be >= 0, got ${tol}`);
  const obj = new LogisticObjective(x, labels, c, C, intercept);
  try {
    const size = obj.size;
    let theta: Float64Array = new Float64Array(size);
    if (options.init) {
      if (options.init.length !== size) throw new Error(`fitLogisticRegression: init has ${options.init.length} entries, expected ${size}`);
      theta.set(options.init);
    }
    let { f, g } = await obj.evaluate(theta);
    const S: Float64Array[] = [];
    const Y: Float64Array[] = [];
    const rho: number[] = [];
    let iterations = 0;
    let stop: LogisticModel['stop'] = 'maxIter';
    while (true) {
      if (maxAbs(g) <= tol) {
        stop = 'gtol';
        break;
      }
      if (iterations >= maxIter) break;
      // Two-loop recursion: direction = −H·g.
      const q = Float64Array.from(g);
      const alpha = new Array<number>(S.length);
      for (let i = S.length - 1; i >= 0; i--) {
        alpha[i] = rho[i] * dot(S[i], q);
        for (let k = 0; k < size; k++) q[k] -= alpha[i] * Y[i][k];
      }
      const gamma = S.length ? dot(S[S.length - 1], Y[Y.length - 1]) / dot(Y[Y.length - 1], Y[Y.length - 1]) : 1 / Math.max(Math.sqrt(dot(g, g)), 1e-12);
      for (let k = 0; k < size; k++) q[k] *= gamma;
      for (let i = 0; i < S.length; i++) {
        const beta = rho[i] * dot(Y[i], q);
        for (let k = 0; k < size; k++) q[k] += (alpha[i] - beta) * S[i][k];
      }
      const dir = q.map((v) => -v);
      let slope = dot(g, dir);
      if (!(slope < 0)) {
        // Not a descent direction (numerical trouble): restart from steepest descent.
        S.length = Y.length = rho.length = 0;
        for (let k = 0; k < size; k++) dir[k] = -g[k] / Math.max(Math.sqrt(dot(g, g)), 1e-12);
        slope = dot(g, dir);
      }
      let step = 1;
      let accepted: { f: number; g: Float64Array; theta: Float64Array } | null = null;
      for (let ls = 0; ls < 40; ls++) {
        const cand = new Float64Array(size);
        for (let k = 0; k < size; k++) cand[k] = theta[k] + step * dir[k];
        const ev = await obj.evaluate(cand);
        if (Number.isFinite(ev.f) && ev.f <= f + 1e-4 * step * slope) {
          accepted = { ...ev, theta: cand };
          break;
        }
        step *= 0.5;
      }
      iterations++;
      if (!accepted) {
        // The float32 objective cannot resolve a further decrease: as close to the optimum as it gets.
        stop = 'noProgress';
        break;
      }
      const s = new Float64Array(size);
      const y = new Float64Array(size);
      for (let k = 0; k < size; k++) {
        s[k] = accepted.theta[k] - theta[k];
        y[k] = accepted.g[k] - g[k];
      }
      const sy = dot(s, y);
      if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
        S.push(s);
        Y.push(y);
        rho.push(1 / sy);
        if (S.length > m) {
          S.shift();
          Y.shift();
          rho.shift();
        }
      }
      const fPrev = f;
      ({ f, g, theta } = accepted);
      // scipy's ftol test at float32 resolution: relative decrease below what float32 sums can see.
      if ((fPrev - f) / Math.max(Math.abs(fPrev), Math.abs(f), 1) <= 1e-10) {
        stop = maxAbs(g) <= tol ? 'gtol' : 'noProgress';
        break;
      }
    }
    const { d } = obj;
    const weights = Float32Array.from(theta.subarray(0, d * c));
    const bias = intercept ? Float32Array.from(theta.subarray(d * c)) : new Float32Array(c);
    return { weights, bias, dim: d, numClasses: c, C, loss: f, gradMax: maxAbs(g), iterations, evaluations: obj.evaluations, stop, theta };
  } finally {
    obj.dispose();
  }
}

export interface LogisticResult {
  protocol: 'logistic';
  /** Feature preprocessing applied before fitting. */
  preprocess: 'none' | 'l2' | 'standardize';
  /** One entry per C, in the order given. */
  entries: Array<{ C: number; top1: number; iterations: number; stop: LogisticModel['stop']; valTop1?: number }>;
  /** The C picked on the validation split; the first C when there is no validation (never chosen on test). */
  selectedC: number;
  /** How selectedC was chosen: on held-out train data, or the first C (one C given, or too few labels to hold out). */
  selection: 'validation' | 'first';
  /** Test top-1 of the selected C (refit on all train features), percent. */
  top1: number;
  numTrain: number;
  numTest: number;
  seconds: number;
}

export interface LogisticEvalOptions extends Omit<LogisticRegressionOptions, 'C' | 'init'> {
  /** Inverse regularisation strengths to fit. Default [1]. */
  Cs?: number[];
  /** 'l2' (official: features L2-normalised), 'standardize' (train mean/std), or 'none' (default). */
  preprocess?: 'none' | 'l2' | 'standardize';
  /**
   * Pick C on a stratified held-out fraction of the train features (then refit on all).
   * Default 0.2; unused with one C, or when rounding leaves nothing to hold out.
   */
  valFraction?: number;
  /** Seed of the validation split. Default 0. */
  seed?: number;
}

function preprocessHost(x: HostMatrix, how: 'none' | 'l2' | 'standardize', norm?: { mean: Float32Array; scale: Float32Array }): HostMatrix {
  if (how === 'standardize') return applyStandardizer(x, norm?.mean, norm?.scale);
  if (how === 'none') return x;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < x.rows; i++) {
    const off = i * x.cols;
    let s = 0;
    for (let j = 0; j < x.cols; j++) s += x.data[off + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < x.cols; j++) out[off + j] = x.data[off + j] * inv;
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

/**
 * Logistic regression evaluation: fit on train features for each C (warm
 * started from the previous C), report test top-1 for each, and the top-1
 * of the C chosen on a held-out part of train. Inputs are not disposed.
 */
export async function logisticRegression(
  trainFeatures: tf.Tensor2D | HostMatrix,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D | HostMatrix,
  testLabels: LabelArray,
  options: LogisticEvalOptions = {},
): Promise<LogisticResult> {
  const t0 = Date.now();
  const Cs = options.Cs ?? [1];
  if (Cs.length === 0) throw new Error('logisticRegression: pass at least one C');
  const how = options.preprocess ?? 'none';
  const { tr: trRaw, te: teRaw } = await hostTrainTest(trainFeatures, trainLabels, testFeatures, testLabels, 'logisticRegression');
  const numClasses = resolveNumClasses(trainLabels, options.numClasses, 'logisticRegression');
  const norm = how === 'standardize' ? standardizer(trRaw) : undefined;
  const tr = preprocessHost(trRaw, how, norm);
  const te = preprocessHost(teRaw, how, norm);
  const fitOpts = { ...options, numClasses };
  const valFraction = options.valFraction ?? (Cs.length > 1 ? 0.2 : 0);
  let valTop1: number[] | undefined;
  const split = valFraction > 0 && Cs.length > 1 ? stratifiedSplit(trainLabels, valFraction, new Rng(options.seed ?? 0), numClasses) : undefined;
  // Too few labels to hold any out (e.g. 1 per class): no selection, the first C is used.
  if (split && split.test.length > 0 && split.train.length > 0) {
    const fit = gatherRows(tr, split.train);
    const fitLabels = gatherLabels(trainLabels, split.train);
    const val = gatherRows(tr, split.test);
    const valLabels = gatherLabels(trainLabels, split.test);
    let init: Float64Array | undefined;
    valTop1 = [];
    for (const C of Cs) {
      const m = await fitLogisticRegression(fit, fitLabels, { ...fitOpts, C, init });
      init = m.theta;
      valTop1.push(accuracy(await predictHost(m, val), valLabels));
    }
  }
  let init: Float64Array | undefined;
  const entries: LogisticResult['entries'] = [];
  for (let i = 0; i < Cs.length; i++) {
    const C = Cs[i];
    const m = await fitLogisticRegression(tr, trainLabels, { ...fitOpts, C, init });
    init = m.theta;
    const e: LogisticResult['entries'][number] = { C, top1: accuracy(await predictHost(m, te), testLabels), iterations: m.iterations, stop: m.stop };
    if (valTop1) e.valTop1 = valTop1[i];
    entries.push(e);
  }
  let sel = 0;
  if (valTop1) for (let i = 1; i < Cs.length; i++) if (valTop1[i] > valTop1[sel]) sel = i;
  return {
    protocol: 'logistic',
    preprocess: how,
    entries,
    selection: valTop1 ? 'validation' : 'first',
    selectedC: Cs[sel],
    top1: entries[sel].top1,
    numTrain: tr.rows,
    numTest: te.rows,
    seconds: (Date.now() - t0) / 1000,
  };
}
