/**
 * Clustering and classification metrics on plain label arrays, matching
 * scikit-learn 1.2 (`normalized_mutual_info_score`, `adjusted_rand_score`,
 * `fowlkes_mallows_score`) and scipy's `linear_sum_assignment` for the
 * Hungarian-matched accuracy, including their edge cases. No tensors: these
 * run once per evaluation on at most a few hundred thousand integers.
 *
 * Labels may be any finite numbers (they are grouped by value, as
 * `np.unique` does); `labels` is the ground truth, `clusters` the prediction.
 */
import { munkres } from 'munkres';

/** A label vector: `number[]`, `Int32Array`, or any other array of numbers. */
export type LabelArray = ArrayLike<number>;

/** Label-vs-cluster counts; rows and columns in ascending value order, as sklearn's `contingency_matrix`. */
export interface Contingency {
  /** Distinct values of `labels`, ascending (the rows). */
  classes: number[];
  /** Distinct values of `clusters`, ascending (the columns). */
  clusters: number[];
  /** `counts[i][j]` = number of samples with label `classes[i]` and cluster `clusters[j]`. */
  counts: number[][];
  /** Number of samples. */
  n: number;
}

/** How NMI divides mutual information by the two entropies (sklearn's `average_method`). */
export type NmiAverage = 'arithmetic' | 'geometric' | 'min' | 'max';

/** The metrics the iBOT paper reports for unsupervised classification (plus purity). */
export interface ClusterMetrics {
  /** Normalised mutual information, arithmetic normalisation (sklearn default). */
  nmi: number;
  /** Adjusted Rand index. */
  ari: number;
  /** Fowlkes-Mallows index. */
  fmi: number;
  /** Accuracy after the best one-to-one cluster-to-label matching (fraction in [0, 1]). */
  acc: number;
  /** Fraction of samples whose cluster's majority label is their label. */
  purity: number;
}

function checkPair(labels: LabelArray, clusters: LabelArray, what: string): void {
  if (labels.length !== clusters.length) {
    throw new Error(
      `${what}: labels has ${labels.length} entries but clusters has ${clusters.length}; pass one cluster id per labelled sample`,
    );
  }
}

function distinctSorted(xs: LabelArray, what: string): { values: number[]; index: Map<number, number> } {
  const seen = new Set<number>();
  for (let i = 0; i < xs.length; i++) {
    const v = xs[i];
    if (!Number.isFinite(v)) {
      throw new Error(`${what}[${i}] is ${v}; labels must be finite numbers (integers as a rule)`);
    }
    seen.add(v);
  }
  const values = [...seen].sort((a, b) => a - b);
  const index = new Map<number, number>();
  values.forEach((v, i) => index.set(v, i));
  return { values, index };
}

/** Counts of each (label, cluster) pair; the table every metric here derives from. */
export function contingencyMatrix(labels: LabelArray, clusters: LabelArray): Contingency {
  checkPair(labels, clusters, 'contingencyMatrix');
  const rows = distinctSorted(labels, 'labels');
  const cols = distinctSorted(clusters, 'clusters');
  const counts = rows.values.map(() => new Array<number>(cols.values.length).fill(0));
  for (let i = 0; i < labels.length; i++) {
    counts[rows.index.get(labels[i]) as number][cols.index.get(clusters[i]) as number] += 1;
  }
  return { classes: rows.values, clusters: cols.values, counts, n: labels.length };
}

/**
 * Classification confusion matrix, `m[true][predicted]` (sklearn's
 * `confusion_matrix` orientation), for integer classes `0..numClasses-1`.
 * `numClasses` defaults to 1 + the largest value seen.
 */
export function confusionMatrix(labels: LabelArray, predictions: LabelArray, numClasses?: number): number[][] {
  checkPair(labels, predictions, 'confusionMatrix');
  let c = numClasses ?? 0;
  if (numClasses === undefined) {
    for (let i = 0; i < labels.length; i++) c = Math.max(c, labels[i] + 1, predictions[i] + 1);
  }
  if (!Number.isInteger(c) || c < 0) throw new Error(`confusionMatrix: numClasses must be a non-negative integer, got ${c}`);
  const m = Array.from({ length: c }, () => new Array<number>(c).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i];
    const p = predictions[i];
    for (const [v, name] of [
      [t, 'labels'],
      [p, 'predictions'],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v >= c) {
        throw new Error(`confusionMatrix: ${name}[${i}] = ${v} is not a class index in [0, ${c}); pass numClasses or fix the labels`);
      }
    }
    m[t][p] += 1;
  }
  return m;
}

function rowSums(ct: Contingency): number[] {
  return ct.counts.map((r) => r.reduce((a, b) => a + b, 0));
}

function colSums(ct: Contingency): number[] {
  const s = new Array<number>(ct.clusters.length).fill(0);
  for (const r of ct.counts) for (let j = 0; j < r.length; j++) s[j] += r[j];
  return s;
}

/** Shannon entropy (nats) of a labelling, as sklearn's `entropy` (empty input gives 1.0 there too). */
export function entropy(labels: LabelArray): number {
  if (labels.length === 0) return 1.0;
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
  if (counts.size === 1) return 0.0;
  const n = labels.length;
  const logN = Math.log(n);
  let h = 0;
  // log(a/b) as log(a) - log(b), for the same rounding as sklearn.
  for (const c of counts.values()) h -= (c / n) * (Math.log(c) - logN);
  return h;
}

function mutualInfoFromContingency(ct: Contingency): number {
  const pi = rowSums(ct);
  const pj = colSums(ct);
  // A single class or a single cluster has zero entropy, so zero MI.
  if (pi.length === 1 || pj.length === 1) return 0.0;
  const n = ct.n;
  const logN = Math.log(n);
  let mi = 0;
  for (let i = 0; i < pi.length; i++) {
    for (let j = 0; j < pj.length; j++) {
      const nij = ct.counts[i][j];
      if (nij === 0) continue;
      const p = nij / n;
      // sklearn's form: log(n_ij/n) + log(n^2/(a_i b_j)) split into logs of counts.
      const logOuter = -Math.log(pi[i] * pj[j]) + logN + logN;
      const term = p * (Math.log(nij) - logN) + p * logOuter;
      // sklearn zeroes terms below float64 eps before summing.
      if (Math.abs(term) >= Number.EPSILON) mi += term;
    }
  }
  return Math.max(mi, 0);
}

/** Mutual information (nats) between two labellings, sklearn's `mutual_info_score`. */
export function mutualInfo(labels: LabelArray, clusters: LabelArray): number {
  return mutualInfoFromContingency(contingencyMatrix(labels, clusters));
}

/**
 * Normalised mutual information, sklearn's `normalized_mutual_info_score`
 * (default `average` = 'arithmetic': MI / mean(H(labels), H(clusters))).
 * Both labellings a single group (or both empty) is a perfect match: 1.
 */
export function nmi(labels: LabelArray, clusters: LabelArray, average: NmiAverage = 'arithmetic'): number {
  const ct = contingencyMatrix(labels, clusters);
  const nc = ct.classes.length;
  const nk = ct.clusters.length;
  if ((nc === 1 && nk === 1) || (nc === 0 && nk === 0)) return 1.0;
  const mi = mutualInfoFromContingency(ct);
  // Not the single-cluster case, so zero MI means no shared information whatever the normaliser.
  if (mi === 0) return 0.0;
  const hTrue = entropy(labels);
  const hPred = entropy(clusters);
  let norm: number;
  switch (average) {
    case 'arithmetic':
      norm = (hTrue + hPred) / 2;
      break;
    case 'geometric':
      norm = Math.sqrt(hTrue * hPred);
      break;
    case 'min':
      norm = Math.min(hTrue, hPred);
      break;
    case 'max':
      norm = Math.max(hTrue, hPred);
      break;
    default:
      throw new Error(`nmi: average must be 'arithmetic', 'geometric', 'min' or 'max', got '${String(average)}'`);
  }
  return mi / norm;
}

/**
 * Pair counts over ordered pairs of distinct samples, sklearn's
 * `pair_confusion_matrix`: [[tn, fp], [fn, tp]]. BigInt because ARI
 * multiplies two of them (n^4 overflows 2^53 from n ≈ 10^4).
 */
export function pairConfusionMatrix(labels: LabelArray, clusters: LabelArray): [[bigint, bigint], [bigint, bigint]] {
  const ct = contingencyMatrix(labels, clusters);
  const nC = rowSums(ct);
  const nK = colSums(ct);
  const n = BigInt(ct.n);
  let sumSquares = 0n;
  let dotK = 0n;
  let dotC = 0n;
  for (let i = 0; i < nC.length; i++) {
    for (let j = 0; j < nK.length; j++) {
      const v = BigInt(ct.counts[i][j]);
      if (v === 0n) continue;
      sumSquares += v * v;
      dotK += v * BigInt(nK[j]);
      dotC += v * BigInt(nC[i]);
    }
  }
  const tp = sumSquares - n;
  const fp = dotK - sumSquares;
  const fn = dotC - sumSquares;
  const tn = n * n - fp - fn - sumSquares;
  return [
    [tn, fp],
    [fn, tp],
  ];
}

/** Adjusted Rand index, sklearn's `adjusted_rand_score` (1 for identical partitions, ~0 for independent ones). */
export function ari(labels: LabelArray, clusters: LabelArray): number {
  const [[tn, fp], [fn, tp]] = pairConfusionMatrix(labels, clusters);
  if (fn === 0n && fp === 0n) return 1.0;
  // Same roundings as Python's `2.0 * int / int`: each big integer is rounded to a double once.
  const num = Number(tp * tn - fn * fp);
  const den = Number((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn));
  return (2.0 * num) / den;
}

/** Fowlkes-Mallows index, sklearn's `fowlkes_mallows_score` (0 when no pair is co-clustered in both). */
export function fmi(labels: LabelArray, clusters: LabelArray): number {
  const ct = contingencyMatrix(labels, clusters);
  const n = ct.n;
  let ss = 0;
  for (const r of ct.counts) for (const v of r) ss += v * v;
  const tk = ss - n;
  if (tk === 0) return 0.0;
  const pk = colSums(ct).reduce((a, b) => a + b * b, 0) - n;
  const qk = rowSums(ct).reduce((a, b) => a + b * b, 0) - n;
  return Math.sqrt(tk / pk) * Math.sqrt(tk / qk);
}

/** Result of matching clusters one-to-one to labels. */
export interface ClusterMatching {
  /** Cluster value → matched label value; clusters left over (more clusters than labels) are absent. */
  mapping: Map<number, number>;
  /** Samples whose cluster is matched to their own label. */
  matched: number;
  /** Number of samples. */
  n: number;
}

/**
 * Best one-to-one assignment of clusters to labels maximising the number of
 * agreeing samples (scipy `linear_sum_assignment(-contingency)`). The counts
 * may be rectangular: with more clusters than labels the extra clusters stay
 * unmatched and count as errors, and vice versa.
 */
export function matchClusters(labels: LabelArray, clusters: LabelArray): ClusterMatching {
  const ct = contingencyMatrix(labels, clusters);
  const mapping = new Map<number, number>();
  if (ct.n === 0) return { mapping, matched: 0, n: 0 };
  // munkres minimises cost; negated counts make it maximise agreement. The
  // optimum's value is unique even when several assignments reach it.
  const pairs = munkres(ct.counts.map((r) => r.map((v) => -v)));
  let matched = 0;
  for (const [i, j] of pairs) {
    mapping.set(ct.clusters[j], ct.classes[i]);
    matched += ct.counts[i][j];
  }
  return { mapping, matched, n: ct.n };
}

/** Accuracy after Hungarian matching of clusters to labels (fraction in [0, 1]). */
export function hungarianAccuracy(labels: LabelArray, clusters: LabelArray): number {
  if (labels.length === 0) throw new Error('hungarianAccuracy: no samples; pass at least one label');
  const m = matchClusters(labels, clusters);
  return m.matched / m.n;
}

/** Purity: each cluster votes for its majority label; fraction of samples carrying that label. */
export function purity(labels: LabelArray, clusters: LabelArray): number {
  if (labels.length === 0) throw new Error('purity: no samples; pass at least one label');
  const ct = contingencyMatrix(labels, clusters);
  let s = 0;
  for (let j = 0; j < ct.clusters.length; j++) {
    let best = 0;
    for (let i = 0; i < ct.classes.length; i++) best = Math.max(best, ct.counts[i][j]);
    s += best;
  }
  return s / ct.n;
}

/** NMI, ARI, FMI, Hungarian accuracy and purity in one call. */
export function clusterMetrics(labels: LabelArray, clusters: LabelArray): ClusterMetrics {
  return {
    nmi: nmi(labels, clusters),
    ari: ari(labels, clusters),
    fmi: fmi(labels, clusters),
    acc: hungarianAccuracy(labels, clusters),
    purity: purity(labels, clusters),
  };
}
