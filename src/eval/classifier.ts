/**
 * Linear classifiers on frozen features, the part the linear probe and
 * logistic regression share: features read to the host once, labels checked,
 * standardisation, row subsets, prediction and accuracy.
 */
import * as tf from '@tensorflow/tfjs-core';
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

export function resolveNumClasses(labels: LabelArray, given: number | undefined, what: string): number {
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

export function checkRows(m: HostMatrix, labels: LabelArray, what: string): void {
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

export function applyStandardizer(x: HostMatrix, mean?: Float32Array, scale?: Float32Array): HostMatrix {
  if (!mean || !scale) return x;
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < x.rows; i++) {
    const off = i * x.cols;
    for (let j = 0; j < x.cols; j++) out[off + j] = (x.data[off + j] - mean[j]) * scale[j];
  }
  return { data: out, rows: x.rows, cols: x.cols };
}

export function gatherRows(x: HostMatrix, idx: ArrayLike<number>): HostMatrix {
  const out = new Float32Array(idx.length * x.cols);
  for (let r = 0; r < idx.length; r++) out.set(x.data.subarray(idx[r] * x.cols, (idx[r] + 1) * x.cols), r * x.cols);
  return { data: out, rows: idx.length, cols: x.cols };
}

export function gatherLabels(labels: LabelArray, idx: ArrayLike<number>): Int32Array {
  return Int32Array.from({ length: idx.length }, (_, r) => labels[idx[r]]);
}

/** Predicted class per row (ties to the lowest class). The features tensor is not disposed. */
export async function predictLinear(clf: LinearClassifier, x: tf.Tensor2D): Promise<Int32Array> {
  const m = await hostMatrix(x, 'predictLinear');
  if (m.cols !== clf.dim) throw new Error(`predictLinear: features have dim ${m.cols} but the classifier was trained on dim ${clf.dim}`);
  return predictHost(clf, m);
}

export async function predictHost(clf: LinearClassifier, m: HostMatrix): Promise<Int32Array> {
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

/** Train and test features on the host, checked against their labels and against each other. */
export async function hostTrainTest(
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

