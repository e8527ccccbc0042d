/**
 * Weighted k-nearest-neighbour classification of frozen features, the
 * protocol of DINO's `eval_knn.py` that iBOT reports: cosine similarity
 * between L2-normalised test and train features, the k most similar train
 * samples each vote `exp(sim / T)` for their class, the prediction is the
 * class with the largest summed vote.
 *
 * Test features are processed in chunks so that the [chunk, Ntrain]
 * similarity matrix bounds memory (60k train x 256 test = 61 MB of float32).
 * The top-k is computed once with the largest k and every requested k reads
 * a prefix of the same sorted neighbour list, as DINO's loop over
 * `nb_knn` would give with one top-k per k.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LabelArray } from './metrics';

/** Options shared by {@link knnClassify} and {@link knnClassifyMulti}. */
export interface KnnBaseOptions {
  /** Softmax-like temperature T of the vote weights exp(sim / T). DINO/iBOT default 0.07. */
  temperature?: number;
  /** Number of classes; default 1 + the largest train label. */
  numClasses?: number;
  /** Test rows per similarity matMul. Default 256 (memory ≈ 4·chunkSize·Ntrain bytes). */
  chunkSize?: number;
  /** Test labels; when given, top-1/top-5 accuracies are returned. */
  testLabels?: LabelArray;
  /**
   * L2-normalise both feature sets first (torch `F.normalize`, eps 1e-12).
   * Default true; DINO normalises at extraction time, so pass false for
   * features that already have unit norm to skip a copy of the train set.
   */
  normalize?: boolean;
  /** Also return the per-class vote sums. Default false. */
  returnVotes?: boolean;
}

export interface KnnOptions extends KnnBaseOptions {
  /** Neighbours. Default 20, the value iBOT and DINO report. */
  k?: number;
}

export interface KnnResult {
  /** The k this result is for. */
  k: number;
  /** Predicted class per test sample (ties go to the lowest class index). */
  predictions: Int32Array;
  /** Row-major [numTest, numClasses] vote sums Σ exp(sim/T); only with `returnVotes`. */
  votes?: Float32Array;
  /** Top-1 accuracy in percent (as DINO reports it); only with `testLabels`. */
  top1?: number;
  /** Top-5 accuracy in percent (classes ranked by vote, first min(5, k) count); only with `testLabels`. */
  top5?: number;
}

/** DINO's `nb_knn` default. */
export const DINO_KNN_KS: readonly number[] = [10, 20, 100, 200];

function checkLabels(labels: LabelArray, n: number, numClasses: number, what: string): void {
  if (labels.length !== n) {
    throw new Error(`knn: ${what} has ${labels.length} entries for ${n} feature rows; pass one label per row`);
  }
  for (let i = 0; i < n; i++) {
    const v = labels[i];
    if (!Number.isInteger(v) || v < 0 || v >= numClasses) {
      throw new Error(`knn: ${what}[${i}] = ${v} is not a class index in [0, ${numClasses}); labels must be 0-based integers (or raise numClasses)`);
    }
  }
}

/** x / max(‖x‖₂, 1e-12) row-wise, as torch.nn.functional.normalize. */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.sum(tf.square(x), 1, true));
    return tf.div(x, tf.maximum(norm, 1e-12)) as tf.Tensor2D;
  });
}

/**
 * Weighted k-NN for several k in one pass over the test set (one top-k with
 * the largest k). Results are in the order of `ks`.
 */
export async function knnClassifyMulti(
  trainFeatures: tf.Tensor2D,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D,
  ks: readonly number[],
  options: KnnBaseOptions = {},
): Promise<KnnResult[]> {
  const temperature = options.temperature ?? 0.07;
  const chunkSize = options.chunkSize ?? 256;
  const normalize = options.normalize ?? true;
  if (trainFeatures.rank !== 2 || testFeatures.rank !== 2) {
    throw new Error(`knn: features must be 2-D [samples, dim], got train ${JSON.stringify(trainFeatures.shape)} and test ${JSON.stringify(testFeatures.shape)}`);
  }
  const [nTrain, dim] = trainFeatures.shape;
  const [nTest, dimTest] = testFeatures.shape;
  if (dim !== dimTest) throw new Error(`knn: train features have dim ${dim} but test features have dim ${dimTest}; extract both with the same model`);
  if (nTrain === 0) throw new Error('knn: no train features');
  if (ks.length === 0) throw new Error('knn: pass at least one k');
  for (const k of ks) {
    if (!Number.isInteger(k) || k < 1 || k > nTrain) throw new Error(`knn: k = ${k} must be an integer in [1, ${nTrain}] (the number of train samples)`);
  }
  if (!(temperature > 0)) throw new Error(`knn: temperature must be > 0, got ${temperature}`);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`knn: chunkSize must be a positive integer, got ${chunkSize}`);
  let numClasses = options.numClasses ?? 0;
  if (options.numClasses === undefined) for (let i = 0; i < trainLabels.length; i++) numClasses = Math.max(numClasses, trainLabels[i] + 1);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`knn: numClasses must be a positive integer, got ${numClasses}`);
  checkLabels(trainLabels, nTrain, numClasses, 'trainLabels');
  const testLabels = options.testLabels;
  if (testLabels) checkLabels(testLabels, nTest, numClasses, 'testLabels');

  const maxK = Math.max(...ks);
  const labels = Int32Array.from(trainLabels);
  // Vote rows are only kept when asked for (50k test x 1000 classes x 4 ks would be 800 MB).
  const votes = options.returnVotes ? ks.map(() => new Float32Array(nTest * numClasses)) : null;
  const predictions = ks.map(() => new Int32Array(nTest));
  const top1 = ks.map(() => 0);
  const top5 = ks.map(() => 0);
  const acc = new Float32Array(numClasses);
  // Read the test set once and upload chunk by chunk: tf.slice on the wasm
  // backend re-reads the whole input tensor for every slice.
  const rawTest = await testFeatures.data();
  const testData = rawTest instanceof Float32Array ? rawTest : Float32Array.from(rawTest);
  // [dim, Ntrain]: wasm's matMul is several times faster untransposed than with transposeB.
  const trainT = tf.tidy(() => {
    const tr = tf.cast(trainFeatures, 'float32') as tf.Tensor2D;
    return tf.transpose(normalize ? l2NormalizeRows(tr) : tr) as tf.Tensor2D;
  });
  const sum = new Float64Array(numClasses);
  try {
    for (let start = 0; start < nTest; start += chunkSize) {
      const rows = Math.min(chunkSize, nTest - start);
      const [valT, idxT] = tf.tidy(() => {
        let q: tf.Tensor2D = tf.tensor2d(testData.subarray(start * dim, (start + rows) * dim), [rows, dim]);
        if (normalize) q = l2NormalizeRows(q);
        const sim = tf.matMul(q, trainT);
        const { values, indices } = tf.topk(sim, maxK, true);
        return [values, indices];
      });
      let sims: Float32Array;
      let idx: Int32Array;
      try {
        sims = (await valT.data()) as Float32Array;
        idx = (await idxT.data()) as Int32Array;
      } finally {
        valT.dispose();
        idxT.dispose();
      }
      for (let r = 0; r < rows; r++) {
        const t = start + r;
        const base = r * maxK;
        ks.forEach((k, ki) => {
          sum.fill(0);
          for (let j = 0; j < k; j++) sum[labels[idx[base + j]]] += Math.exp(sims[base + j] / temperature);
          // Rounded to float32 like the reference's vote tensor, so predictions and votes agree.
          acc.set(sum);
          if (votes) votes[ki].set(acc, t * numClasses);
          let best = 0;
          for (let c = 1; c < numClasses; c++) if (acc[c] > acc[best]) best = c;
          predictions[ki][t] = best;
          if (testLabels) {
            const y = testLabels[t];
            // Rank of the true class in a descending sort that keeps lower class indices first on ties.
            const vy = acc[y];
            let rank = 0;
            for (let c = 0; c < numClasses; c++) if (acc[c] > vy || (acc[c] === vy && c < y)) rank++;
            if (rank === 0) top1[ki]++;
            if (rank < Math.min(5, k)) top5[ki]++;
          }
        });
      }
    }
  } finally {
    trainT.dispose();
  }

  return ks.map((k, ki) => {
    const result: KnnResult = { k, predictions: predictions[ki] };
    if (votes) result.votes = votes[ki];
    if (testLabels) {
      result.top1 = nTest > 0 ? (100 * top1[ki]) / nTest : 0;
      result.top5 = nTest > 0 ? (100 * top5[ki]) / nTest : 0;
    }
    return result;
  });
}

/** Weighted k-NN with one k (default 20). */
export async function knnClassify(
  trainFeatures: tf.Tensor2D,
  trainLabels: LabelArray,
  testFeatures: tf.Tensor2D,
  options: KnnOptions = {},
): Promise<KnnResult> {
  const { k = 20, ...rest } = options;
  return (await knnClassifyMulti(trainFeatures, trainLabels, testFeatures, [k], rest))[0];
}

/** For every row, the `k` most similar other rows by cosine similarity, most similar first. */
export async function nearestNeighbours(features: tf.Tensor2D, k: number): Promise<Array<Array<{ index: number; similarity: number }>>> {
  const n = features.shape[0];
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new Error(`nearestNeighbours: k = ${k} must be an integer in [1, ${n - 1}] (the other rows)`);
  const { values, indices } = tf.tidy(() => {
    const z = l2NormalizeRows(features);
    // Each row's own similarity (1) pushed below every other, so it is never its own neighbour.
    const sims = tf.sub(tf.matMul(z, z, false, true), tf.mul(tf.eye(n), 3));
    return tf.topk(sims, k, true);
  });
  try {
    const v = await values.data();
    const ix = await indices.data();
    return Array.from({ length: n }, (_, i) => Array.from({ length: k }, (_, j) => ({ index: ix[i * k + j], similarity: v[i * k + j] })));
  } finally {
    tf.dispose([values, indices]);
  }
}
