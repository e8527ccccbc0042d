/**
 * 2-D maps of embeddings: PCA (linear, exact, shows the dominant directions)
 * and UMAP (non-linear, seeded, shows neighbourhoods/clusters), and a scatter
 * figure coloured by label with the image index and class on hover.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UMAP } from 'umap-js';
import { Rng } from '../util/rng';
import { Figure, Trace, baseLayout, categoryColor } from './figure';
import type { HostImage } from './images';

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

/** The k leading principal directions of the rows (centred), with each one's share of the total variance. */
export async function principalComponents(features: FeatureRows, k: number): Promise<{ components: Float32Array[]; explained: number[]; mean: Float32Array }> {
  const x = asTensor(features);
  try {
    const [n, d] = x.shape;
    if (n < 2) throw new Error(`PCA needs at least 2 rows, got ${n}`);
    const [covT, meanT] = tf.tidy(() => {
      const mean = tf.mean(x, 0, true);
      const xc = tf.sub(x, mean);
      return [tf.div(tf.matMul(xc, xc, true, false), n - 1), tf.reshape(mean, [d])];
    });
    let c: Float64Array;
    let mean: Float32Array;
    try {
      c = Float64Array.from(await covT.data());
      mean = Float32Array.from(await meanT.data());
    } finally {
      tf.dispose([covT, meanT]);
    }
    let trace = 0;
    for (let i = 0; i < d; i++) trace += c[i * d + i];
    const components: Float32Array[] = [];
    const explained: number[] = [];
    for (let j = 0; j < k; j++) {
      const e = j < d ? topEigen(c, d) : { value: 0, vector: new Float64Array(d) };
      // Deflate: the next power iteration finds the next direction.
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) c[a * d + b] -= e.value * e.vector[a] * e.vector[b];
      components.push(Float32Array.from(e.vector));
      explained.push(trace > 0 ? e.value / trace : 0);
    }
    return { components, explained, mean };
  } finally {
    if (x !== features) x.dispose();
  }
}

/** Rows projected on given directions: [n, k] as k columns of length n. */
async function project(features: FeatureRows, components: Float32Array[], mean: Float32Array): Promise<Float32Array[]> {
  const x = asTensor(features);
  try {
    const d = mean.length;
    const proj = tf.tidy(() => tf.matMul(tf.sub(x, tf.tensor2d(mean, [1, d])), tf.tensor2d(components.flatMap((c) => Array.from(c)), [components.length, d]), false, true));
    let p: Float32Array;
    try {
      p = (await proj.data()) as Float32Array;
    } finally {
      proj.dispose();
    }
    const n = x.shape[0];
    const k = components.length;
    return components.map((_, j) => Float32Array.from({ length: n }, (_, i) => p[i * k + j]));
  } finally {
    if (x !== features) x.dispose();
  }
}

/**
 * Principal component analysis to 2-D: centre the rows, take the two leading
 * eigenvectors of the covariance (power iteration with deflation), project.
 */
export async function pca2d(features: FeatureRows): Promise<PcaResult> {
  const { components, explained, mean } = await principalComponents(features, 2);
  const [x, y] = await project(features, components, mean);
  return { x, y, explained: [explained[0], explained[1]], components: [components[0], components[1]] };
}

/**
 * The DINO/DINOv2 picture of patch features: the first three principal
 * components of every patch token of a batch ([B, N, D], N = gh·gw), each
 * scaled to [0, 1] over the batch, as the red, green and blue of a gh×gw image
 * per input. Patches of the same kind of part get the same colour across
 * images. With `patchSize`, every patch becomes a patchSize² block of pixels
 * (nearest neighbour), so the picture lies over the photo it came from at the
 * same size in a figure.
 */
export async function patchPcaImages(patchTokens: tf.Tensor3D, grid: [number, number], opts: { patchSize?: number } = {}): Promise<{ images: HostImage[]; explained: number[] }> {
  const [B, N, D] = patchTokens.shape;
  const [gh, gw] = grid;
  if (gh * gw !== N) throw new Error(`patchPcaImages: ${N} patches do not fill a ${gh}×${gw} grid`);
  const rows = tf.reshape(patchTokens, [B * N, D]) as tf.Tensor2D;
  try {
    const { components, explained, mean } = await principalComponents(rows, 3);
    const cols = await project(rows, components, mean);
    const scaled = cols.map((c) => {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of c) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      return c.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 0.5));
    });
    const P = opts.patchSize ?? 1;
    if (!(Number.isInteger(P) && P >= 1)) throw new Error(`patchPcaImages: patchSize must be a positive integer, got ${opts.patchSize}`);
    const W = gw * P;
    const H = gh * P;
    const images = Array.from({ length: B }, (_, b) => {
      const data = new Float32Array(H * W * 3);
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = Math.floor(y / P) * gw + Math.floor(x / P);
          for (let ch = 0; ch < 3; ch++) data[(y * W + x) * 3 + ch] = scaled[ch][b * N + i];
        }
      }
      return { width: W, height: H, channels: 3 as const, data };
    });
    return { images, explained };
  } finally {
    rows.dispose();
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
