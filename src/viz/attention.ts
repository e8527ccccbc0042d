/**
 * [CLS] → patch self-attention of the last block, per head, as in DINO's
 * `visualize_attention.py`: the row of the [CLS] query in each head's
 * attention matrix, reshaped to the patch grid and laid over the image.
 * The threshold option keeps, per head, the patches holding the top `mass`
 * (DINO: 60%) of that head's attention and shows them as a mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Figure } from './figure';
import { HostImage, ImagePanel, imageGridFigure } from './images';

/**
 * Per-head [CLS] attention over the patches of image `index`, from the
 * attention probabilities [B, heads, 1+N, 1+N] that `VisionTransformer.forward`
 * returns with `attentionOf`. Each map has N entries (row-major patch grid)
 * and sums to 1 − (attention of [CLS] to itself).
 */
export async function clsAttentionMaps(attention: tf.Tensor4D, index: number): Promise<Float32Array[]> {
  const [B, H, N1, N1b] = attention.shape;
  if (N1 !== N1b) throw new Error(`clsAttentionMaps: expected square attention [B, heads, 1+N, 1+N], got [${attention.shape}]`);
  if (!(Number.isInteger(index) && index >= 0 && index < B)) throw new Error(`clsAttentionMaps: image ${index} is outside the batch of ${B}`);
  const rows = tf.tidy(() => tf.slice(attention, [index, 0, 0, 1], [1, H, 1, N1 - 1]));
  let v: Float32Array;
  try {
    v = (await rows.data()) as Float32Array;
  } finally {
    rows.dispose();
  }
  const N = N1 - 1;
  return Array.from({ length: H }, (_, h) => v.slice(h * N, (h + 1) * N));
}

/**
 * DINO's attention threshold: sort the map ascending, normalise to sum 1,
 * and keep the entries whose cumulative sum exceeds 1 − mass. The kept set is
 * the smallest set of top patches holding at least `mass` of the attention.
 * Returns 1 for kept patches.
 */
export function attentionMassMask(att: ArrayLike<number>, mass = 0.6): Uint8Array {
  if (!(mass > 0 && mass <= 1)) throw new Error(`attentionMassMask: mass must be in (0, 1], got ${mass}`);
  const n = att.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => att[a] - att[b] || a - b);
  let total = 0;
  for (let i = 0; i < n; i++) total += att[i];
  const out = new Uint8Array(n);
  if (!(total > 0)) return out;
  let cum = 0;
  for (const i of order) {
    cum += att[i] / total;
    if (cum > 1 - mass) out[i] = 1;
  }
  return out;
}

export interface AttentionItem {
  image: HostImage;
  /** One map per head, N = gridH·gridW values each. */
  maps: ArrayLike<number>[];
  /** Row label (e.g. the class). */
  label?: string;
}

export interface AttentionFigureOptions {
  patchSize: number;
  /** Show DINO's thresholded masks keeping this attention mass (e.g. 0.6) instead of the raw maps. */
  threshold?: number;
  /** Add a panel with the mean over heads. Default true. */
  mean?: boolean;
  title?: string;
  cellSize?: number;
}

/** Low attention: dark and nearly opaque; high: bright and see-through, so the attended parts stay visible. */
const HEAT: Array<[number, string]> = [
  [0, 'rgba(10,10,60,0.85)'],
  [0.35, 'rgba(90,20,140,0.6)'],
  [0.7, 'rgba(230,80,40,0.35)'],
  [1, 'rgba(255,230,0,0.2)'],
];

/** Thresholded view: patches outside the kept set are darkened (1 = discarded). */
const DISCARD: Array<[number, string]> = [
  [0, 'rgba(0,0,0,0)'],
  [1, 'rgba(20,30,110,0.8)'],
];

/**
 * One row per image: the image, then each head's [CLS] attention over it
 * (normalised per map to its maximum), optionally the mean over heads; with
 * `threshold`, each head shows the patches holding that share of its mass.
 */
export function attentionMapsFigure(items: AttentionItem[], opts: AttentionFigureOptions): Figure {
  if (items.length === 0) throw new Error('attentionMapsFigure: no images');
  const heads = items[0].maps.length;
  const withMean = opts.mean ?? true;
  const panels: ImagePanel[] = [];
  for (const item of items) {
    if (item.maps.length !== heads) throw new Error(`attentionMapsFigure: every image needs ${heads} head maps, got ${item.maps.length}`);
    const grid: [number, number] = [item.image.height / opts.patchSize, item.image.width / opts.patchSize];
    const N = grid[0] * grid[1];
    if (!Number.isInteger(grid[0]) || !Number.isInteger(grid[1])) throw new Error(`attentionMapsFigure: image size is not a multiple of patch size ${opts.patchSize}`);
    panels.push({ image: item.image, title: item.label ?? 'image' });
    const maps: Array<{ title: string; values: ArrayLike<number> }> = item.maps.map((m, h) => ({ title: `head ${h + 1}`, values: m }));
    if (withMean) {
      const mean = new Float32Array(N);
      for (const m of item.maps) for (let i = 0; i < N; i++) mean[i] += m[i] / heads;
      maps.push({ title: 'mean of heads', values: mean });
    }
    for (const m of maps) {
      if (m.values.length !== N) throw new Error(`attentionMapsFigure: a map has ${m.values.length} values for ${N} patches`);
      if (opts.threshold !== undefined) {
        const kept = attentionMassMask(m.values, opts.threshold);
        const keptCount = kept.reduce((a, b) => a + b, 0);
        panels.push({
          image: item.image,
          title: `${m.title}<br>${keptCount}/${N} patches`,
          overlay: { values: kept.map((k) => 1 - k), grid, patchSize: opts.patchSize, colorscale: DISCARD, label: 'discarded' },
        });
      } else {
        // Min–max per map, as DINO's saved attention images: even a nearly uniform head shows its preferences.
        let min = Infinity;
        let max = -Infinity;
        for (let i = 0; i < N; i++) {
          min = Math.min(min, m.values[i]);
          max = Math.max(max, m.values[i]);
        }
        const span = max - min;
        const scaled = Array.from({ length: N }, (_, i) => (span > 0 ? (m.values[i] - min) / span : 0));
        panels.push({ image: item.image, title: m.title, overlay: { values: scaled, grid, patchSize: opts.patchSize, colorscale: HEAT, label: 'attention (min–max scaled)' } });
      }
    }
  }
  const cols = 1 + heads + (withMean ? 1 : 0);
  return imageGridFigure(panels, {
    cols,
    cellSize: opts.cellSize ?? 120,
    title:
      opts.title ??
      (opts.threshold !== undefined
        ? `[CLS] attention of the last block: the fewest patches holding ${Math.round(opts.threshold * 100)}% of each head's attention (rest darkened)`
        : '[CLS] attention of the last block, per head'),
  });
}
