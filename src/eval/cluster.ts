/**
 * Unsupervised classification: how well clusters found without labels match
 * the classes. Two sources of cluster assignments:
 *
 * - the argmax of the teacher head's [CLS] output over its prototypes, the
 *   official `unsup_cls.py` protocol (the paper pretrains with as many
 *   prototypes as classes for it; with more prototypes than classes the
 *   unmatched ones count as errors in ACC);
 * - k-means on the frozen features with k = number of classes (k-means++,
 *   several restarts, lowest inertia).
 *
 * Reported: NMI, ARI, FMI, Hungarian-matched accuracy, purity and the
 * confusion matrix of true classes against their matched clusters.
 */
import * as tf from '@tensorflow/tfjs-core';
import { IBOTHead } from '../model/head';
import { kmeans } from './kmeans';
import { l2NormalizeRows } from './knn';
import { ClusterMetrics, LabelArray, clusterMetrics, matchClusters } from './metrics';

export type ClusterMethod = 'kmeans' | 'head-argmax';

export interface ClusterResult {
  protocol: 'cluster';
  method: ClusterMethod;
  /** Samples clustered. */
  n: number;
  numClasses: number;
  /** Distinct clusters that received at least one sample. */
  numClusters: number;
  /** NMI, ARI, FMI, ACC, purity as fractions in [0, 1] (sklearn's scale). */
  metrics: ClusterMetrics;
  /**
   * [numClasses][numClasses]: row = true class, column j = the cluster matched to class j
   * (Hungarian matching), so the diagonal holds the correctly clustered samples.
   */
  confusion: number[][];
  /** Per true class, samples that fell in clusters matched to no class (more clusters than classes). */
  unmatched: number[];
  /** Cluster id matched to each class, or -1 when no cluster was matched to it. */
  clusterOfClass: number[];
  classNames?: string[];
  /** k-means only: inertia of the best restart. */
  inertia?: number;
  seconds: number;
}

export interface ClusterEvalOptions {
  /** Default: 1 + the largest label. */
  numClasses?: number;
  classNames?: string[];
}

/** Metrics and matched confusion matrix of cluster `assignments` against class `labels`. */
export function evaluateClusters(labels: LabelArray, assignments: LabelArray, method: ClusterMethod, options: ClusterEvalOptions = {}): ClusterResult {
  const t0 = Date.now();
  if (labels.length !== assignments.length) throw new Error(`evaluateClusters: ${labels.length} labels but ${assignments.length} assignments`);
  if (labels.length === 0) throw new Error('evaluateClusters: no samples');
  let numClasses = options.numClasses ?? 0;
  if (options.numClasses === undefined) for (let i = 0; i < labels.length; i++) numClasses = Math.max(numClasses, labels[i] + 1);
  for (let i = 0; i < labels.length; i++) {
    if (!Number.isInteger(labels[i]) || labels[i] < 0 || labels[i] >= numClasses) {
      throw new Error(`evaluateClusters: label ${labels[i]} at index ${i} is not a class index in [0, ${numClasses})`);
    }
  }
  const metrics = clusterMetrics(labels, assignments);
  const { mapping } = matchClusters(labels, assignments);
  const clusterOfClass = new Array<number>(numClasses).fill(-1);
  for (const [cluster, cls] of mapping) clusterOfClass[cls] = cluster;
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  const unmatched = new Array<number>(numClasses).fill(0);
  const used = new Set<number>();
  for (let i = 0; i < labels.length; i++) {
    used.add(assignments[i]);
    const matched = mapping.get(assignments[i]);
    if (matched === undefined) unmatched[labels[i]]++;
    else confusion[labels[i]][matched]++;
  }
  const result: ClusterResult = {
    protocol: 'cluster',
    method,
    n: labels.length,
    numClasses,
    numClusters: used.size,
    metrics,
    confusion,
    unmatched,
    clusterOfClass,
    seconds: (Date.now() - t0) / 1000,
  };
  if (options.classNames) result.classNames = options.classNames.slice();
  return result;
}

/**
 * The prototype each [CLS] token is assigned to by the head: argmax of
 * `head.forwardCls` (the official `output.max(dim=1)[1]`). `cls` are the
 * backbone's [CLS] tokens after the final norm, not L2-normalised.
 */
export async function headAssignments(head: IBOTHead, cls: tf.Tensor2D, batchSize = 1024): Promise<Int32Array> {
  const [n, d] = cls.shape;
  if (d !== head.config.inDim) throw new Error(`headAssignments: features have dim ${d} but the head takes ${head.config.inDim}; pass the raw [CLS] tokens`);
  const out = new Int32Array(n);
  const raw = await cls.data();
  for (let start = 0; start < n; start += batchSize) {
    const rows = Math.min(batchSize, n - start);
    const a = tf.tidy(() => tf.argMax(head.forwardCls(tf.tensor2d(raw.subarray(start * d, (start + rows) * d) as Float32Array, [rows, d])), 1));
    try {
      out.set(await a.data(), start);
    } finally {
      a.dispose();
    }
  }
  return out;
}

/** Unsupervised classification by the head's argmax (official `unsup_cls`). Inputs are not disposed. */
export async function headClustering(head: IBOTHead, cls: tf.Tensor2D, labels: LabelArray, options: ClusterEvalOptions = {}): Promise<ClusterResult> {
  const t0 = Date.now();
  const r = evaluateClusters(labels, await headAssignments(head, cls), 'head-argmax', options);
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

export interface KMeansClusteringOptions extends ClusterEvalOptions {
  /** Clusters; default the number of classes. */
  k?: number;
  /** Restarts. Default 10 (sklearn). */
  nInit?: number;
  seed?: number;
  /** L2-normalise features first (cosine geometry, as k-NN uses). Default true. */
  normalize?: boolean;
}

/** k-means on the features (k = classes by default), scored against the labels. Inputs are not disposed. */
export async function kmeansClustering(features: tf.Tensor2D, labels: LabelArray, options: KMeansClusteringOptions = {}): Promise<ClusterResult> {
  const t0 = Date.now();
  let numClasses = options.numClasses ?? 0;
  if (options.numClasses === undefined) for (let i = 0; i < labels.length; i++) numClasses = Math.max(numClasses, labels[i] + 1);
  if (features.shape[0] !== labels.length) throw new Error(`kmeansClustering: ${features.shape[0]} feature rows but ${labels.length} labels`);
  const x = options.normalize ?? true ? l2NormalizeRows(features) : features;
  try {
    const km = await kmeans(x, { k: options.k ?? numClasses, nInit: options.nInit ?? 10, seed: options.seed ?? 0 });
    const r = evaluateClusters(labels, km.assignments, 'kmeans', { ...options, numClasses });
    r.inertia = km.inertia;
    r.seconds = (Date.now() - t0) / 1000;
    return r;
  } finally {
    if (x !== features) x.dispose();
  }
}
