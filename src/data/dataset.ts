/**
 * The in-memory image dataset every ibotlab reader produces, and the pure
 * index helpers around it (subsets, stratified splits, label subsets for the
 * semi-supervised 1% / 10% protocols, mini-batch index streams).
 *
 * Pixels stay uint8 in memory (a 60k Fashion-MNIST train set is 47 MB as
 * bytes, 188 MB as float32); only the batch being used is turned into a
 * float tensor by `toTensor`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';

export interface ImageDataset {
  /** Human-readable name, e.g. 'fashion-mnist/train'. */
  name: string;
  /** N*H*W*C bytes, row-major NHWC (image, row, column, channel). */
  images: Uint8Array;
  /** N class indices in [0, numClasses). */
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames?: string[];
}

/** Throws a descriptive error if the dataset's arrays and shape disagree. */
export function assertDataset(ds: ImageDataset): void {
  const where = `dataset '${ds.name}'`;
  for (const k of ['n', 'height', 'width', 'channels', 'numClasses'] as const) {
    if (!Number.isInteger(ds[k]) || ds[k] < 0) {
      throw new Error(`${where}: ${k} must be a non-negative integer, got ${ds[k]}`);
    }
  }
  const expected = ds.n * ds.height * ds.width * ds.channels;
  if (ds.images.length !== expected) {
    throw new Error(
      `${where}: images has ${ds.images.length} bytes but n*height*width*channels = ` +
        `${ds.n}*${ds.height}*${ds.width}*${ds.channels} = ${expected}`,
    );
  }
  if (ds.labels.length !== ds.n) {
    throw new Error(`${where}: labels has ${ds.labels.length} entries but n = ${ds.n}`);
  }
  for (let i = 0; i < ds.n; i++) {
    const y = ds.labels[i];
    if (y < 0 || y >= ds.numClasses) {
      throw new Error(`${where}: label ${y} at index ${i} is outside [0, ${ds.numClasses})`);
    }
  }
  if (ds.classNames !== undefined && ds.classNames.length !== ds.numClasses) {
    throw new Error(
      `${where}: classNames has ${ds.classNames.length} names but numClasses = ${ds.numClasses}`,
    );
  }
}

function checkIndex(ds: ImageDataset, idx: number, pos: number): void {
  if (!Number.isInteger(idx) || idx < 0 || idx >= ds.n) {
    throw new Error(`index ${idx} (position ${pos}) is out of range for dataset '${ds.name}' with ${ds.n} images`);
  }
}

/**
 * Images as a float32 tensor [B, H, W, C] with values in [0, 1] (pixel/255).
 * `indices` picks and orders the batch; without it, the whole dataset.
 * The caller owns (and must dispose) the returned tensor.
 */
export function toTensor(ds: ImageDataset, indices?: ArrayLike<number>): tf.Tensor4D {
  const per = ds.height * ds.width * ds.channels;
  const b = indices === undefined ? ds.n : indices.length;
  // Building the float buffer on the JS side costs one allocation and no
  // intermediate tensors, so nothing needs tidying.
  const out = new Float32Array(b * per);
  const scale = 1 / 255;
  for (let i = 0; i < b; i++) {
    const src = indices === undefined ? i : indices[i];
    if (indices !== undefined) checkIndex(ds, src, i);
    const off = src * per;
    const dst = i * per;
    for (let j = 0; j < per; j++) out[dst + j] = ds.images[off + j] * scale;
  }
  return tf.tensor4d(out, [b, ds.height, ds.width, ds.channels], 'float32');
}

/** A new dataset holding copies of the listed images, in the listed order. */
export function subset(ds: ImageDataset, indices: ArrayLike<number>, name: string = ds.name): ImageDataset {
  const per = ds.height * ds.width * ds.channels;
  const images = new Uint8Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i];
    checkIndex(ds, src, i);
    images.set(ds.images.subarray(src * per, (src + 1) * per), i * per);
    labels[i] = ds.labels[src];
  }
  const out: ImageDataset = {
    name,
    images,
    labels,
    n: indices.length,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    numClasses: ds.numClasses,
  };
  if (ds.classNames) out.classNames = ds.classNames.slice();
  return out;
}

/** Number of examples of each class 0..numClasses-1. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new Error(`label ${y} at index ${i} is outside [0, ${numClasses})`);
    }
    counts[y]++;
  }
  return counts;
}

/** Indices of each class, ascending within a class. */
function indicesByClass(labels: ArrayLike<number>, numClasses: number): number[][] {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses) {
      throw new Error(`label ${y} at index ${i} is outside [0, ${numClasses})`);
    }
    byClass[y].push(i);
  }
  return byClass;
}

function inferNumClasses(labels: ArrayLike<number>): number {
  let max = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > max) max = labels[i];
  return max + 1;
}

function sortedInt32(xs: number[]): Int32Array {
  return Int32Array.from(xs).sort();
}

export interface IndexSplit {
  /** Ascending indices of the larger part. */
  train: Int32Array;
  /** Ascending indices of the held-out part. */
  test: Int32Array;
}

/**
 * Class-balanced (stratified) split of indices. For every class c (in order
 * 0..K-1) the class's indices are shuffled with `rng` and the first
 * `Math.round(n_c * testFraction)` go to `test`, the rest to `train`.
 * Both outputs are sorted ascending, so the data order does not depend on the
 * shuffle (batch order is randomised separately by `batches`).
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  testFraction: number,
  rng: Rng,
  numClasses: number = inferNumClasses(labels),
): IndexSplit {
  if (!(testFraction >= 0 && testFraction <= 1)) {
    throw new Error(`testFraction must be in [0, 1], got ${testFraction}`);
  }
  const train: number[] = [];
  const test: number[] = [];
  for (const idx of indicesByClass(labels, numClasses)) {
    rng.shuffle(idx);
    const k = Math.round(idx.length * testFraction);
    for (let i = 0; i < idx.length; i++) (i < k ? test : train).push(idx[i]);
  }
  return { train: sortedInt32(train), test: sortedInt32(test) };
}

/**
 * Train / validation split of a dataset, stratified by class (see
 * `stratifiedSplit` for the rounding: per class, round(n_c * valFraction)
 * images go to `val`). Returns copies; names get '/train' and '/val' suffixes.
 */
export function split(
  ds: ImageDataset,
  valFraction: number,
  rng: Rng,
): { train: ImageDataset; val: ImageDataset } {
  const s = stratifiedSplit(ds.labels, valFraction, rng, ds.numClasses);
  return {
    train: subset(ds, s.train, `${ds.name}/train`),
    val: subset(ds, s.test, `${ds.name}/val`),
  };
}

export interface BatchOptions {
  /** Skip the last batch when it is smaller than batchSize. Default false. */
  dropLast?: boolean;
}

/**
 * Mini-batch index stream over 0..n-1: one pass (an epoch). With an `rng`
 * the order is a fresh permutation drawn from it; with `null`/undefined it
 * is sequential.
 */
export function* batches(
  n: number,
  batchSize: number,
  rng?: Rng | null,
  opts: BatchOptions = {},
): Generator<Int32Array, void, undefined> {
  if (!Number.isInteger(n) || n < 0) throw new Error(`batches: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batches: batchSize must be a positive integer, got ${batchSize}`);
  }
  const order = rng ? Int32Array.from(rng.permutation(n)) : Int32Array.from({ length: n }, (_, i) => i);
  const dropLast = opts.dropLast ?? false;
  for (let start = 0; start < n; start += batchSize) {
    const end = Math.min(start + batchSize, n);
    if (dropLast && end - start < batchSize) break;
    yield order.slice(start, end);
  }
}

/** Number of batches `batches(n, batchSize, ..., {dropLast})` yields. */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** How many labelled examples to keep: a fraction of the whole set, or a count per class. */
export type LabelSubsetSpec = { fraction: number } | { perClass: number };

/**
 * Class-balanced labelled subset for the semi-supervised protocols (e.g. the
 * 1% and 10% label splits): the SAME number of indices from every class.
 *
 * Rounding: with `{ fraction }`, perClass = max(1, Math.round(fraction * N / K))
 * where N = labels.length and K = numClasses (Math.round: halves round up).
 * So Fashion-MNIST train (60,000, K=10) gives 60 per class at 1% and 600 at
 * 10%; the embedded 8,000-image train split gives 8 and 80. A class with
 * fewer than perClass examples is an error (the subset could not be balanced).
 *
 * Selection: `new Rng(seed)`; for each class c = 0..K-1 in order, its indices
 * (ascending) are shuffled and the first perClass kept. Every class consumes
 * the same random draws whatever perClass is, so for one seed the 1% subset is
 * contained in the 10% subset. Returns the indices sorted ascending.
 */
export function labelSubset(
  labels: ArrayLike<number>,
  spec: LabelSubsetSpec,
  seed: number,
  numClasses: number = inferNumClasses(labels),
): Int32Array {
  if (numClasses < 1) throw new Error('labelSubset: no labels');
  let perClass: number;
  if ('fraction' in spec) {
    if (!(spec.fraction > 0 && spec.fraction <= 1)) {
      throw new Error(`labelSubset: fraction must be in (0, 1], got ${spec.fraction}`);
    }
    perClass = Math.max(1, Math.round((spec.fraction * labels.length) / numClasses));
  } else {
    perClass = spec.perClass;
    if (!Number.isInteger(perClass) || perClass < 1) {
      throw new Error(`labelSubset: perClass must be a positive integer, got ${perClass}`);
    }
  }
  const rng = new Rng(seed);
  const keep: number[] = [];
  const byClass = indicesByClass(labels, numClasses);
  byClass.forEach((idx, c) => {
    if (idx.length < perClass) {
      throw new Error(
        `labelSubset: class ${c} has only ${idx.length} examples but ${perClass} per class were requested; ` +
          'ask for a smaller fraction/perClass',
      );
    }
    rng.shuffle(idx);
    for (let i = 0; i < perClass; i++) keep.push(idx[i]);
  });
  return sortedInt32(keep);
}
