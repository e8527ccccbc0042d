/**
 * Patch masks for iBOT's masked image modeling (MIM).
 *
 * Semantics follow the official `ImageFolderMask` (bytedance/ibot, loader.py),
 * which in turn follows BEiT's blockwise masking generator:
 *
 * - For every crop a prediction ratio r is drawn (`samplePredRatio`), then
 *   `r * H * W` patches of the H x W patch grid are targeted.
 * - `'block'`: rectangles are added one at a time. Each rectangle has an area
 *   drawn uniformly between `minBlockPatches` and the number of patches still
 *   missing, and a log-uniform aspect ratio in `predAspectRatio`. A candidate
 *   is accepted only if it adds at least one new patch and no more than the
 *   number still missing; after `maxAttempts` (10) failed candidates the mask
 *   is returned as is. So the mask never exceeds the target and usually lands
 *   a little under it.
 * - `'rand'`: exactly `floor(r * H * W)` patches chosen uniformly (official
 *   `int(high)`, i.e. truncation, not rounding).
 *
 * Which images get masked: there is no separate "mask this image?" flag in the
 * official code. With the paper's recipe `--pred_ratio 0 0.3 --pred_ratio_var
 * 0 0.2`, `get_pred_ratio` draws one candidate per list entry (0, and
 * uniform(0.1, 0.5)) and picks one of them uniformly, so each crop is
 * independently unmasked with probability 1/2 and otherwise masked at
 * 30% +- 20%. That is the "half of the images" of the paper, decided per crop.
 *
 * The official loader also draws masks for local crops but the training loop
 * only uses `masks[:global_crops_number]`; here only global crops get masks
 * (local crops are never masked, so there is nothing to return for them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';
import { roundHalfEven } from '../util/round';

export type PredShape = 'block' | 'rand';

export interface MaskingConfig {
  /**
   * `'block'` (BEiT blockwise, iBOT default) or `'rand'` (uniform random
   * patches). Official `--pred_shape`, default `'block'`.
   */
  predShape: PredShape;
  /**
   * Mean prediction ratio, or a list of them of which one is picked uniformly
   * per crop. Default `[0, 0.3]`: the paper's ViT recipe (README
   * `--pred_ratio 0 0.3`); the argparse default is `0.3`.
   */
  predRatio: number | number[];
  /**
   * Half-width of the uniform jitter around each `predRatio` entry (0 = none);
   * a single number applies to every entry. Default `[0, 0.2]` (README
   * `--pred_ratio_var 0 0.2`); the argparse default is `0`.
   */
  predRatioVar: number | number[];
  /** Aspect-ratio range of each block, sampled log-uniformly. Official `(0.3, 1/0.3)`. */
  predAspectRatio: [number, number];
  /** No masking (ratio 0) for epochs `< predStartEpoch`. Official default 0 (50 for Swin). */
  predStartEpoch: number;
  /**
   * Smallest block area in patches. `undefined` means the official
   * `(min(H, W) // 3) ** 2` (16 on a 14x14 grid, as BEiT's min_num_patches;
   * 4 on a 7x7 grid).
   */
  minBlockPatches?: number;
  /** Candidate blocks tried before giving up on adding one. Official 10. */
  maxAttempts: number;
}

export const DEFAULT_MASKING: Readonly<MaskingConfig> = Object.freeze({
  predShape: 'block' as PredShape,
  predRatio: [0, 0.3],
  predRatioVar: [0, 0.2],
  predAspectRatio: [0.3, 1 / 0.3] as [number, number],
  predStartEpoch: 0,
  minBlockPatches: undefined,
  maxAttempts: 10,
});

/** Fills in defaults and validates; throws with a hint on bad values. */
export function maskingConfig(overrides: Partial<MaskingConfig> = {}): MaskingConfig {
  const cfg: MaskingConfig = {
    ...DEFAULT_MASKING,
    predRatio: Array.isArray(DEFAULT_MASKING.predRatio) ? [...DEFAULT_MASKING.predRatio] : DEFAULT_MASKING.predRatio,
    predRatioVar: Array.isArray(DEFAULT_MASKING.predRatioVar)
      ? [...DEFAULT_MASKING.predRatioVar]
      : DEFAULT_MASKING.predRatioVar,
    predAspectRatio: [...DEFAULT_MASKING.predAspectRatio],
    ...overrides,
  };
  validateMaskingConfig(cfg);
  return cfg;
}

function validateMaskingConfig(cfg: MaskingConfig): void {
  if (cfg.predShape !== 'block' && cfg.predShape !== 'rand') {
    throw new Error(`masking: predShape must be 'block' or 'rand', got ${String(cfg.predShape)}`);
  }
  const ratios = Array.isArray(cfg.predRatio) ? cfg.predRatio : [cfg.predRatio];
  const vars = Array.isArray(cfg.predRatioVar) ? cfg.predRatioVar : ratios.map(() => cfg.predRatioVar as number);
  if (ratios.length === 0) throw new Error('masking: predRatio must not be an empty list; use 0 to disable masking');
  if (vars.length !== ratios.length) {
    throw new Error(
      `masking: predRatioVar has ${vars.length} entries but predRatio has ${ratios.length}; ` +
        'give one variance per ratio or a single number',
    );
  }
  ratios.forEach((r, i) => {
    const v = vars[i];
    if (!(r >= 0 && r <= 1)) throw new Error(`masking: predRatio entries must be in [0, 1], got ${r}`);
    if (!(v >= 0)) throw new Error(`masking: predRatioVar entries must be >= 0, got ${v}`);
    // Same assertion as the official code: the jittered ratio must stay >= 0.
    if (v > r) throw new Error(`masking: predRatioVar ${v} exceeds predRatio ${r}; the ratio would go negative`);
    if (r + v > 1) throw new Error(`masking: predRatio ${r} + predRatioVar ${v} exceeds 1`);
  });
  const [a0, a1] = cfg.predAspectRatio;
  if (!(a0 > 0 && a1 > 0)) throw new Error(`masking: predAspectRatio must be positive, got [${a0}, ${a1}]`);
  if (!Number.isInteger(cfg.predStartEpoch) || cfg.predStartEpoch < 0) {
    throw new Error(`masking: predStartEpoch must be a non-negative integer, got ${cfg.predStartEpoch}`);
  }
  if (cfg.minBlockPatches !== undefined && !(cfg.minBlockPatches >= 0)) {
    throw new Error(`masking: minBlockPatches must be >= 0, got ${cfg.minBlockPatches}`);
  }
  if (!Number.isInteger(cfg.maxAttempts) || cfg.maxAttempts < 1) {
    throw new Error(`masking: maxAttempts must be a positive integer, got ${cfg.maxAttempts}`);
  }
}

/**
 * One crop's prediction ratio, as the official `get_pred_ratio`: 0 before
 * `predStartEpoch`; otherwise every list entry is jittered (uniform in
 * [r - var, r + var] when var > 0) and one of them is picked uniformly.
 */
export function samplePredRatio(cfg: MaskingConfig, rng: Rng, epoch = Infinity): number {
  if (epoch < cfg.predStartEpoch) return 0;
  if (Array.isArray(cfg.predRatio)) {
    const vars = Array.isArray(cfg.predRatioVar) ? cfg.predRatioVar : cfg.predRatio.map(() => cfg.predRatioVar as number);
    // Every entry is drawn before choosing, as the official code does; it
    // only changes how the stream is consumed, not the distribution.
    const candidates = cfg.predRatio.map((r, i) => (vars[i] > 0 ? rng.uniform(r - vars[i], r + vars[i]) : r));
    return candidates[rng.randint(0, candidates.length - 1)];
  }
  const v = Array.isArray(cfg.predRatioVar) ? cfg.predRatioVar[0] : cfg.predRatioVar;
  return v > 0 ? rng.uniform(cfg.predRatio - v, cfg.predRatio + v) : cfg.predRatio;
}

/** A rectangle of patches: rows [top, top + height), columns [left, left + width). */
export interface MaskBlock {
  top: number;
  left: number;
  height: number;
  width: number;
}

export interface BlockMaskOptions {
  /** Log-uniform aspect-ratio range (height / width). Default [0.3, 1/0.3]. */
  aspectRatio?: [number, number];
  /** Smallest block area; default (min(H, W) // 3) ** 2. */
  minBlockPatches?: number;
  /** Default 10. */
  maxAttempts?: number;
}

/** Official minimum block area for an H x W grid. */
export function defaultMinBlockPatches(gridH: number, gridW: number): number {
  const s = Math.floor(Math.min(gridH, gridW) / 3);
  return s * s;
}

function checkGrid(gridH: number, gridW: number): void {
  if (!Number.isInteger(gridH) || !Number.isInteger(gridW) || gridH < 1 || gridW < 1) {
    throw new Error(`masking: patch grid must be positive integers, got ${gridH}x${gridW}`);
  }
}

/**
 * Blockwise mask with the list of accepted blocks (in order). `target` is the
 * (possibly fractional) number of patches to mask, `ratio * H * W`. The mask
 * is row-major over the grid, 1 = masked. Blocks may overlap; the mask is
 * their union and counts at most `floor(target)` patches.
 */
export function blockMaskWithBlocks(
  gridH: number,
  gridW: number,
  target: number,
  rng: Rng,
  opts: BlockMaskOptions = {},
): { mask: Uint8Array; blocks: MaskBlock[] } {
  checkGrid(gridH, gridW);
  const [ar0, ar1] = opts.aspectRatio ?? DEFAULT_MASKING.predAspectRatio;
  const logAr0 = Math.log(ar0);
  const logAr1 = Math.log(ar1);
  const low = opts.minBlockPatches ?? defaultMinBlockPatches(gridH, gridW);
  const maxAttempts = opts.maxAttempts ?? DEFAULT_MASKING.maxAttempts;
  const mask = new Uint8Array(gridH * gridW);
  const blocks: MaskBlock[] = [];
  let count = 0;
  while (count < target) {
    const remaining = target - count;
    let added = 0;
    for (let attempt = 0; attempt < maxAttempts && added === 0; attempt++) {
      // As Python's random.uniform: also valid (and used) when remaining < low,
      // which is how the last, small blocks get proposed.
      const area = rng.uniform(low, remaining);
      const aspect = Math.exp(rng.uniform(logAr0, logAr1));
      const h = roundHalfEven(Math.sqrt(area * aspect));
      const w = roundHalfEven(Math.sqrt(area / aspect));
      // Strict inequality as in the official code: a block never spans the grid.
      if (!(w < gridW && h < gridH)) continue;
      const top = rng.randint(0, gridH - h);
      const left = rng.randint(0, gridW - w);
      let already = 0;
      for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) already += mask[i * gridW + j];
      const fresh = h * w - already;
      if (fresh > 0 && fresh <= remaining) {
        for (let i = top; i < top + h; i++) for (let j = left; j < left + w; j++) mask[i * gridW + j] = 1;
        added = fresh;
        blocks.push({ top, left, height: h, width: w });
      }
    }
    if (added === 0) break;
    count += added;
  }
  return { mask, blocks };
}

/** Blockwise mask only (see `blockMaskWithBlocks`). */
export function blockMask(gridH: number, gridW: number, target: number, rng: Rng, opts: BlockMaskOptions = {}): Uint8Array {
  return blockMaskWithBlocks(gridH, gridW, target, rng, opts).mask;
}

/**
 * Uniform random mask with exactly `floor(ratio * H * W)` masked patches
 * (official `int(high)`; a 1e-9 slack keeps e.g. 0.3 * 10 = 2.9999... at 3).
 */
export function randomMask(gridH: number, gridW: number, ratio: number, rng: Rng): Uint8Array {
  checkGrid(gridH, gridW);
  const n = gridH * gridW;
  const k = Math.min(n, Math.max(0, Math.floor(ratio * n + 1e-9)));
  const mask = new Uint8Array(n);
  // Partial Fisher-Yates: the first k of a random permutation.
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.random() * (n - i));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
    mask[idx[i]] = 1;
  }
  return mask;
}

/** One crop's mask: draws the ratio, then the shape. */
export function sampleMask(gridH: number, gridW: number, cfg: MaskingConfig, rng: Rng, epoch = Infinity): Uint8Array {
  const ratio = samplePredRatio(cfg, rng, epoch);
  if (cfg.predShape === 'rand') return randomMask(gridH, gridW, ratio, rng);
  return blockMask(gridH, gridW, ratio * gridH * gridW, rng, {
    aspectRatio: cfg.predAspectRatio,
    minBlockPatches: cfg.minBlockPatches,
    maxAttempts: cfg.maxAttempts,
  });
}

/** Patch grid of a square crop; throws if the crop is not a multiple of the patch size. */
export function patchGrid(cropSize: number, patchSize: number): [number, number] {
  if (!Number.isInteger(cropSize) || !Number.isInteger(patchSize) || patchSize < 1 || cropSize % patchSize !== 0) {
    throw new Error(`masking: crop size ${cropSize} is not a multiple of patch size ${patchSize}; pick sizes that divide`);
  }
  return [cropSize / patchSize, cropSize / patchSize];
}

export interface BatchMaskOptions {
  batchSize: number;
  /** Number of global crops per image (only these are masked). */
  numGlobalCrops: number;
  gridH: number;
  gridW: number;
  /** Current epoch, for `predStartEpoch`. Default: masking on. */
  epoch?: number;
}

/**
 * Masks for a batch, indexed `[crop][image]`, matching the order of
 * `multiCrop(...).global`. Drawn image by image, crop by crop, as the
 * official loader does per dataset item.
 */
export function sampleBatchMasks(opts: BatchMaskOptions, cfg: MaskingConfig, rng: Rng): Uint8Array[][] {
  const { batchSize, numGlobalCrops, gridH, gridW } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 0) throw new Error(`masking: bad batchSize ${batchSize}`);
  if (!Number.isInteger(numGlobalCrops) || numGlobalCrops < 0) {
    throw new Error(`masking: bad numGlobalCrops ${numGlobalCrops}`);
  }
  const out: Uint8Array[][] = Array.from({ length: numGlobalCrops }, () => new Array<Uint8Array>(batchSize));
  for (let b = 0; b < batchSize; b++) {
    for (let c = 0; c < numGlobalCrops; c++) out[c][b] = sampleMask(gridH, gridW, cfg, rng, opts.epoch ?? Infinity);
  }
  return out;
}

/** Stacks same-sized masks into one row-major [B·N] array (1 = masked). */
export function stackMasks(masks: Uint8Array[]): Uint8Array {
  if (masks.length === 0) throw new Error('stackMasks: empty list; there is no way to know N');
  const n = masks[0].length;
  const flat = new Uint8Array(masks.length * n);
  masks.forEach((m, b) => {
    if (m.length !== n) throw new Error(`stackMasks: mask ${b} has ${m.length} patches, expected ${n}`);
    flat.set(m, b * n);
  });
  return flat;
}

/** Stacks same-sized masks into a [B, N] tensor (1 = masked). The caller owns it. */
export function masksToTensor(masks: Uint8Array[], dtype: 'float32' | 'bool' = 'float32'): tf.Tensor2D {
  const flat = stackMasks(masks);
  const n = masks[0].length;
  if (dtype === 'bool') return tf.tensor2d(flat, [masks.length, n], 'bool');
  return tf.tensor2d(Float32Array.from(flat), [masks.length, n], 'float32');
}

/** Fraction of masked patches in one mask. */
export function maskRatio(mask: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < mask.length; i++) s += mask[i];
  return mask.length === 0 ? 0 : s / mask.length;
}
