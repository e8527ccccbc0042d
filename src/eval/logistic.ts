/**
 * L2-regularised multinomial logistic regression on frozen features, solved
 * to convergence with L-BFGS: sklearn's `LogisticRegression(C=…)` objective,
 * the paper's semi-supervised protocol (run with cyanure in the official
 * code). The objective and its gradient are evaluated on the tf backend; the
 * L-BFGS bookkeeping runs on the host in float64.
 */
import * as tf from '@tensorflow/tfjs-core';
import { stratifiedSplit } from '../data/dataset';
import { Rng } from '../util/rng';
import type { LabelArray } from './metrics';
import { HostMatrix, LinearClassifier, accuracy, applyStandardizer, checkRows, gatherLabels, gatherRows, hostMatrix, hostTrainTest, predictHost, resolveNumClasses, standardizer } from './classifier';

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

