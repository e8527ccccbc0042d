/**
 * 2-D maps of embeddings: PCA (linear, exact, shows the dominant directions)
 * and UMAP (non-linear, seeded, shows neighbourhoods/clusters), and a scatter
 * figure coloured by label with the image index and class on hover.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UMAP } from 'umap-js';
import { Rng } from '../util/rng';
import { Figure, Trace, baseLayout, categoryColor } from './figure';

/** Rows of features: a [n, d] tensor (not disposed) or nested arrays. */
export type FeatureRows = tf.Tensor2D | number[][];

/** n points in 2-D. */
export interface Projection2D {
  x: Float32Array;
  y: Float32Array;
}

export interface PcaResult extends Projection2D {
  /** Fraction of the total variance along each of the two components. */
  explained: [number, number];
  /** The two unit principal directions, each of length d. */
  components: [Float32Array, Float32Array];
}

function asTensor(x: FeatureRows): tf.Tensor2D {
  if (x instanceof tf.Tensor) return x;
  if (!Array.isArray(x) || x.length === 0) throw new Error('projection: no feature rows');
  return tf.tensor2d(x);
}

/** Leading eigenvector of a symmetric PSD matrix c [d·d] by power iteration (deterministic start). */
function topEigen(c: Float64Array, d: number): { value: number; vector: Float64Array } {
  let v = new Float64Array(d);
  // Start from the largest-variance coordinate plus a little of every direction: never orthogonal to
  // the top eigenvector unless that has no weight on any coordinate, which cannot happen.
  let best = 0;
  for (let i = 1; i < d; i++) if (c[i * d + i] > c[best * d + best]) best = i;
  for (let i = 0; i < d; i++) v[i] = (i === best ? 1 : 0) + 1e-3 * Math.cos(i + 1);
  let value = 0;
  for (let it = 0; it < 1000; it++) {
    const w = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += c[i * d + j] * v[j];
      w[i] = s;
    }
    let norm = 0;
    for (let i = 0; i < d; i++) norm += w[i] * w[i];
    norm = Math.sqrt(norm);
    if (norm === 0) return { value: 0, vector: v };
    let diff = 0;
    for (let i = 0; i < d; i++) {
      w[i] /= norm;
      diff += Math.abs(w[i] - v[i]);
    }
    v = w;
    const converged = Math.abs(norm - value) <= 1e-10 * Math.max(1, norm) && diff < 1e-9;
    value = norm;
    if (converged) break;
  }
  // Sign convention: the largest-magnitude entry is positive, so results do not flip between runs.
  let k = 0;
  for (let i = 1; i < d; i++) if (Math.abs(v[i]) > Math.abs(v[k])) k = i;
  if (v[k] < 0) for (let i = 0; i < d; i++) v[i] = -v[i];
  return { value, vector: v };
}

/**
 * Principal component analysis to 2-D: centre the rows, take the two leading
 * eigenvectors of the covariance (power iteration with deflation), project.
 */
export async function pca2d(features: FeatureRows): Promise<PcaResult> {
  const x = asTensor(features);
  try {
    const [n, d] = x.shape;
    if (n < 2) throw new Error(`pca2d: need at least 2 rows, got ${n}`);
    const cov = tf.tidy(() => {
      const xc = tf.sub(x, tf.mean(x, 0, true));
      return tf.div(tf.matMul(xc, xc, true, false), n - 1);
    });
    let c: Float64Array;
    try {
      c = Float64Array.from(await cov.data());
    } finally {
      cov.dispose();
    }
    let trace = 0;
    for (let i = 0; i < d; i++) trace += c[i * d + i];
    const e1 = topEigen(c, d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) c[i * d + j] -= e1.value * e1.vector[i] * e1.vector[j];
    const e2 = d > 1 ? topEigen(c, d) : { value: 0, vector: new Float64Array(d) };
    const comps: [Float32Array, Float32Array] = [Float32Array.from(e1.vector), Float32Array.from(e2.vector)];
    const proj = tf.tidy(() => {
      const xc = tf.sub(x, tf.mean(x, 0, true));
      const w = tf.tensor2d([...comps[0], ...comps[1]], [2, d]);
      return tf.matMul(xc, w, false, true);
    });
    let p: Float32Array;
    try {
      p = (await proj.data()) as Float32Array;
    } finally {
      proj.dispose();
    }
    const xs = new Float32Array(n);
    const ys = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = p[2 * i];
      ys[i] = p[2 * i + 1];
    }
    return {
      x: xs,
      y: ys,
      explained: [trace > 0 ? e1.value / trace : 0, trace > 0 ? e2.value / trace : 0],
      components: comps,
    };
  } finally {
    if (x !== features) x.dispose();
  }
}

export interface UmapOptions {
  /** Seed of UMAP's random initialisation and sampling. Default 0. */
  seed?: number;
  /** Neighbourhood size (umap default 15). */
  nNeighbors?: number;
  /** Minimum distance between embedded points (umap default 0.1). */
  minDist?: number;
  /** Optimisation epochs (umap-js default: 500 for < 10k points, else 200). */
  nEpochs?: number;
}

/** UMAP to 2-D with umap-js, reproducible for a given seed. */
export async function umap2d(features: FeatureRows, opts: UmapOptions = {}): Promise<Projection2D> {
  const rows = features instanceof tf.Tensor ? ((await features.array()) as number[][]) : features;
  const n = rows.length;
  if (n < 3) throw new Error(`umap2d: need at least 3 rows, got ${n}`);
  const rng = new Rng(opts.seed ?? 0);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: Math.min(opts.nNeighbors ?? 15, n - 1),
    minDist: opts.minDist ?? 0.1,
    nEpochs: opts.nEpochs,
    random: () => rng.random(),
  });
  const emb = umap.fit(rows);
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  emb.forEach((p, i) => {
    x[i] = p[0];
    y[i] = p[1];
  });
  return { x, y };
}

export interface ProjectionFigureInput {
  points: Projection2D;
  labels: ArrayLike<number>;
  classNames?: string[];
  /** Image index of each point (for hover); default 0..n−1. */
  indices?: ArrayLike<number>;
  title?: string;
  xTitle?: string;
  yTitle?: string;
  width?: number;
  height?: number;
  /** Marker size. Default 5. */
  markerSize?: number;
}

/** Scatter of 2-D points, one trace (and legend entry) per label; hover shows image index and class. */
export function projectionFigure(input: ProjectionFigureInput): Figure {
  const { points, labels } = input;
  const n = points.x.length;
  if (points.y.length !== n || labels.length !== n) {
    throw new Error(`projectionFigure: ${n} x, ${points.y.length} y and ${labels.length} labels; pass one label per point`);
  }
  const classes = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  const data: Trace[] = classes.map((c) => {
    const xs: number[] = [];
    const ys: number[] = [];
    const text: string[] = [];
    const name = input.classNames?.[c] ?? `class ${c}`;
    for (let i = 0; i < n; i++) {
      if (labels[i] !== c) continue;
      xs.push(points.x[i]);
      ys.push(points.y[i]);
      text.push(`image ${input.indices ? input.indices[i] : i}<br>${name}`);
    }
    return {
      type: 'scatter',
      mode: 'markers',
      x: xs,
      y: ys,
      text,
      name,
      hovertemplate: '%{text}<extra></extra>',
      marker: { size: input.markerSize ?? 5, color: categoryColor(c), opacity: 0.8 },
    };
  });
  return {
    data,
    layout: baseLayout(input.title ?? '2-D projection of [CLS] embeddings', {
      width: input.width ?? 720,
      height: input.height ?? 560,
      showlegend: true,
      legend: { itemsizing: 'constant' },
      xaxis: { title: { text: input.xTitle ?? '' }, zeroline: false, gridcolor: '#eeeeee' },
      yaxis: { title: { text: input.yTitle ?? '' }, zeroline: false, gridcolor: '#eeeeee' },
    }),
  };
}
