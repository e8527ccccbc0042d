/**
 * Multi-crop augmentation (DINO's DataAugmentationDINO / iBOT's
 * DataAugmentationiBOT) on batches of images with TensorFlow.js ops.
 *
 * Per view and per image, in the official order:
 *   RandomResizedCrop -> horizontal flip (p 0.5) -> ColorJitter(0.4, 0.4, 0.2,
 *   0.1) with p 0.8 in random order -> RandomGrayscale (p 0.2) -> Gaussian
 *   blur (sigma in [0.1, 2]) -> solarization -> normalisation.
 * The first global view always blurs; the other global views blur with p 0.1
 * and solarize with p 0.2; local views blur with p 0.5.
 *
 * All random choices are drawn from the given `Rng` into a plain-JS plan
 * first (`sampleViewPlan`) and then applied with batched tensor ops
 * (`applyViewPlan`), so the output is a pure function of (images, config, rng
 * state). Images that skip an op get exact-identity coefficients in the same
 * full-batch arithmetic (only hue works on a gathered subset), and an op no
 * image needs is not run at all.
 *
 * Deliberate differences from the PIL pipeline, all documented where they
 * happen:
 * - resizing is bilinear (one `cropAndResize` per view, half-pixel centres,
 *   edges replicated) instead of PIL bicubic, and without antialiasing when a
 *   crop is shrunk;
 * - the flip is folded into the crop box (a mirrored box samples the mirrored
 *   image exactly);
 * - blur is a true Gaussian truncated at 3 sigma with reflect padding instead
 *   of PIL's box-blur approximation;
 * - contrast blends with the exact mean luma, where PIL rounds it to an
 *   integer grey level (a difference of at most 0.5/255);
 * - on grayscale input (C = 1) colour jitter applies brightness and contrast
 *   only; saturation and hue are identities on one channel, as in torchvision
 *   (PIL 'L' images), and RandomGrayscale is a no-op.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';

export interface ColorJitterConfig {
  /** Probability of applying the jitter at all (RandomApply). DINO: 0.8. */
  prob: number;
  /** Factor drawn in [max(0, 1 - b), 1 + b]. DINO: 0.4. */
  brightness: number;
  /** Factor drawn in [max(0, 1 - c), 1 + c]. DINO: 0.4. */
  contrast: number;
  /** Factor drawn in [max(0, 1 - s), 1 + s]. DINO: 0.2. */
  saturation: number;
  /** Hue shift drawn in [-h, h] (fraction of the colour wheel, h <= 0.5). DINO: 0.1. */
  hue: number;
}

/** Everything that defines one view (one position in the multi-crop list). */
export interface ViewConfig {
  /** Output side length in pixels (square). */
  size: number;
  /** Crop area range as a fraction of the image area. */
  scale: [number, number];
  /** Crop aspect-ratio range (width / height), sampled log-uniformly. */
  ratio: [number, number];
  flipProb: number;
  colorJitter: ColorJitterConfig;
  grayscaleProb: number;
  blurProb: number;
  /** Gaussian sigma range in output pixels. */
  blurSigma: [number, number];
  solarizeProb: number;
  /** Values >= threshold are inverted (x -> 1 - x). PIL's 128/255 on a [0,1] scale. */
  solarizeThreshold: number;
}

export interface NormalizeConfig {
  mean: number[];
  std: number[];
}

/** Per-view-kind probabilities: first global view, the other global views, local views. */
export interface PerViewProb {
  global1: number;
  global2: number;
  local: number;
}

export interface MultiCropConfig {
  /** Global views per image. Official 2. */
  globalCrops: number;
  /** Global view side. Official 224. */
  globalSize: number;
  /** Official README ViT recipe `--global_crops_scale 0.25 1` (argparse default 0.14 1; DINO 0.4 1). */
  globalScale: [number, number];
  /** Local views per image. README recipe 10 (argparse default 0). */
  localCrops: number;
  /** Local view side. Official 96. */
  localSize: number;
  /** README recipe `--local_crops_scale 0.05 0.25` (argparse default 0.05 0.4). */
  localScale: [number, number];
  /** torchvision RandomResizedCrop default [3/4, 4/3]. */
  ratio: [number, number];
  /** Official 0.5. */
  flipProb: number;
  colorJitter: ColorJitterConfig;
  /** Official 0.2. */
  grayscaleProb: number;
  /** Official [0.1, 2.0] (pixels). */
  blurSigma: [number, number];
  /** Official global1 1.0, global2 0.1, local 0.5. */
  blurProb: PerViewProb;
  /** Official global1 0, global2 0.2, local 0. */
  solarizeProb: PerViewProb;
  /** Official: PIL solarize threshold 128, i.e. 0.5 on [0, 1]. */
  solarizeThreshold: number;
  /**
   * `'auto'`: ImageNet mean/std for RGB, Fashion-MNIST (0.2860 / 0.3530)
   * for grayscale; `'none'`: leave values in [0, 1] (for looking at crops);
   * or explicit per-channel mean/std.
   */
  normalize: NormalizeConfig | 'auto' | 'none';
}

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
export const FASHION_MNIST_MEAN = [0.286];
export const FASHION_MNIST_STD = [0.353];
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];

/** iBOT's ImageNet setting (README ViT-S/16 recipe, DINO's photometric augmentations). */
export const DEFAULT_MULTICROP: Readonly<MultiCropConfig> = Object.freeze({
  globalCrops: 2,
  globalSize: 224,
  globalScale: [0.25, 1] as [number, number],
  localCrops: 10,
  localSize: 96,
  localScale: [0.05, 0.25] as [number, number],
  ratio: [3 / 4, 4 / 3] as [number, number],
  flipProb: 0.5,
  colorJitter: { prob: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 },
  grayscaleProb: 0.2,
  blurSigma: [0.1, 2.0] as [number, number],
  blurProb: { global1: 1.0, global2: 0.1, local: 0.5 },
  solarizeProb: { global1: 0, global2: 0.2, local: 0 },
  solarizeThreshold: 0.5,
  normalize: 'auto' as const,
});

export type MultiCropOverrides = Partial<Omit<MultiCropConfig, 'colorJitter' | 'blurProb' | 'solarizeProb'>> & {
  colorJitter?: Partial<ColorJitterConfig>;
  blurProb?: Partial<PerViewProb>;
  solarizeProb?: Partial<PerViewProb>;
};

function cloneConfig(c: Readonly<MultiCropConfig>): MultiCropConfig {
  return {
    ...c,
    globalScale: [...c.globalScale],
    localScale: [...c.localScale],
    ratio: [...c.ratio],
    colorJitter: { ...c.colorJitter },
    blurSigma: [...c.blurSigma],
    blurProb: { ...c.blurProb },
    solarizeProb: { ...c.solarizeProb },
    normalize: typeof c.normalize === 'string' ? c.normalize : { mean: [...c.normalize.mean], std: [...c.normalize.std] },
  };
}

/** Defaults merged with overrides (nested objects merged field by field), validated. */
export function multiCropConfig(overrides: MultiCropOverrides = {}, base: Readonly<MultiCropConfig> = DEFAULT_MULTICROP): MultiCropConfig {
  const b = cloneConfig(base);
  const cfg: MultiCropConfig = {
    ...b,
    ...overrides,
    colorJitter: { ...b.colorJitter, ...overrides.colorJitter },
    blurProb: { ...b.blurProb, ...overrides.blurProb },
    solarizeProb: { ...b.solarizeProb, ...overrides.solarizeProb },
  };
  validateMultiCropConfig(cfg);
  return cfg;
}

export type MultiCropPresetName = 'imagenet' | 'gray28' | 'rgb32';

/**
 * Presets:
 * - `imagenet`: `DEFAULT_MULTICROP` (2 x 224 + 10 x 96).
 * - `gray28` (Fashion-MNIST-like 28x28x1): 2 x 28 + 10 x 12 (96/224 of 28),
 *   Fashion-MNIST normalisation.
 * - `rgb32` (CIFAR-like 32x32x3): 2 x 32 + 10 x 16, CIFAR-10 normalisation.
 * Both small presets keep DINO's probabilities and scales but cap the blur
 * sigma at 1 px: DINO's 2 px is measured on 224/96 px views, and on a 28 px
 * image it erases most of the detail that distinguishes classes. Sizes are
 * multiples of 4, so a patch size of 4 tiles them.
 */
export function multiCropPreset(name: MultiCropPresetName, overrides: MultiCropOverrides = {}): MultiCropConfig {
  switch (name) {
    case 'imagenet':
      return multiCropConfig(overrides);
    case 'gray28':
      return multiCropConfig(
        { globalSize: 28, localSize: 12, blurSigma: [0.1, 1.0], normalize: { mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD] }, ...overrides },
      );
    case 'rgb32':
      return multiCropConfig(
        { globalSize: 32, localSize: 16, blurSigma: [0.1, 1.0], normalize: { mean: [...CIFAR10_MEAN], std: [...CIFAR10_STD] }, ...overrides },
      );
    default:
      throw new Error(`multiCropPreset: unknown preset '${String(name)}'; use 'imagenet', 'gray28' or 'rgb32'`);
  }
}

function checkProb(name: string, p: number): void {
  if (!(p >= 0 && p <= 1)) throw new Error(`multicrop: ${name} must be a probability in [0, 1], got ${p}`);
}

function checkRange(name: string, r: [number, number], lowest: number): void {
  if (!(r.length === 2 && r[0] >= lowest && r[1] >= r[0] && Number.isFinite(r[1]))) {
    throw new Error(`multicrop: ${name} must be [lo, hi] with ${lowest} <= lo <= hi, got [${r.join(', ')}]`);
  }
}

function validateView(v: ViewConfig, name: string): void {
  if (!Number.isInteger(v.size) || v.size < 1) throw new Error(`multicrop: ${name} size must be a positive integer, got ${v.size}`);
  checkRange(`${name} scale`, v.scale, 0);
  if (v.scale[1] <= 0) throw new Error(`multicrop: ${name} scale upper bound must be > 0`);
  checkRange(`${name} ratio`, v.ratio, 0);
  if (v.ratio[0] <= 0) throw new Error(`multicrop: ${name} ratio must be positive`);
  checkProb(`${name} flipProb`, v.flipProb);
  checkProb(`${name} colorJitter.prob`, v.colorJitter.prob);
  for (const k of ['brightness', 'contrast', 'saturation', 'hue'] as const) {
    if (!(v.colorJitter[k] >= 0)) throw new Error(`multicrop: colorJitter.${k} must be >= 0, got ${v.colorJitter[k]}`);
  }
  if (v.colorJitter.hue > 0.5) throw new Error(`multicrop: colorJitter.hue must be <= 0.5, got ${v.colorJitter.hue}`);
  checkProb(`${name} grayscaleProb`, v.grayscaleProb);
  checkProb(`${name} blurProb`, v.blurProb);
  checkRange(`${name} blurSigma`, v.blurSigma, 0);
  if (v.blurProb > 0 && v.blurSigma[0] <= 0) throw new Error(`multicrop: blurSigma must be > 0 when blurring`);
  checkProb(`${name} solarizeProb`, v.solarizeProb);
}

function validateMultiCropConfig(cfg: MultiCropConfig): void {
  if (!Number.isInteger(cfg.globalCrops) || cfg.globalCrops < 1) {
    throw new Error(`multicrop: globalCrops must be an integer >= 1, got ${cfg.globalCrops}`);
  }
  if (!Number.isInteger(cfg.localCrops) || cfg.localCrops < 0) {
    throw new Error(`multicrop: localCrops must be an integer >= 0, got ${cfg.localCrops}`);
  }
  const views = viewConfigs(cfg);
  views.global.forEach((v, i) => validateView(v, `global view ${i}`));
  if (views.local.length > 0) validateView(views.local[0], 'local view');
  if (typeof cfg.normalize === 'object') {
    const { mean, std } = cfg.normalize;
    if (mean.length !== std.length || mean.length === 0) {
      throw new Error(`multicrop: normalize mean and std need one entry per channel, got ${mean.length} and ${std.length}`);
    }
    if (std.some((s) => !(s > 0))) throw new Error('multicrop: normalize std entries must be > 0');
  } else if (cfg.normalize !== 'auto' && cfg.normalize !== 'none') {
    throw new Error(`multicrop: normalize must be 'auto', 'none' or {mean, std}, got ${String(cfg.normalize)}`);
  }
}

/** The per-view settings implied by a config: first global, other globals, locals. */
export function viewConfigs(cfg: MultiCropConfig): { global: ViewConfig[]; local: ViewConfig[] } {
  const common = {
    ratio: cfg.ratio,
    flipProb: cfg.flipProb,
    colorJitter: cfg.colorJitter,
    grayscaleProb: cfg.grayscaleProb,
    blurSigma: cfg.blurSigma,
    solarizeThreshold: cfg.solarizeThreshold,
  };
  const global: ViewConfig[] = [];
  for (let i = 0; i < cfg.globalCrops; i++) {
    // As DataAugmentationiBOT: view 0 uses global_transfo1, every other global view global_transfo2.
    const kind: keyof PerViewProb = i === 0 ? 'global1' : 'global2';
    global.push({
      ...common,
      size: cfg.globalSize,
      scale: cfg.globalScale,
      blurProb: cfg.blurProb[kind],
      solarizeProb: cfg.solarizeProb[kind],
    });
  }
  const local: ViewConfig[] = [];
  for (let i = 0; i < cfg.localCrops; i++) {
    local.push({
      ...common,
      size: cfg.localSize,
      scale: cfg.localScale,
      blurProb: cfg.blurProb.local,
      solarizeProb: cfg.solarizeProb.local,
    });
  }
  return { global, local };
}

/** Resolves `'auto'` / `'none'` for a channel count; null means no normalisation. */
export function resolveNormalize(normalize: MultiCropConfig['normalize'], channels: number): NormalizeConfig | null {
  if (normalize === 'none') return null;
  if (normalize === 'auto') {
    return channels === 1
      ? { mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD] }
      : { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
  }
  if (normalize.mean.length !== channels) {
    throw new Error(
      `multicrop: normalize has ${normalize.mean.length} channel(s) but the images have ${channels}; ` +
        "give matching mean/std or use normalize: 'auto'",
    );
  }
  return normalize;
}

// ---------------------------------------------------------------------------
// Random choices (plain JS)

/** A crop rectangle in input pixels, plus whether the output is mirrored. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
  flip: boolean;
}

/** Python's round() (half to even), as torchvision's `int(round(...))`. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 tries of (area
 * uniform in scale * H * W, log-uniform aspect w/h in ratio) that fit, then a
 * centre crop clamped to the ratio range.
 */
export function sampleCropBox(
  imgH: number,
  imgW: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Rng,
): Omit<CropBox, 'flip'> {
  const area = imgH * imgW;
  const logR0 = Math.log(ratio[0]);
  const logR1 = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logR0, logR1));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= imgW && h > 0 && h <= imgH) {
      return { top: rng.randint(0, imgH - h), left: rng.randint(0, imgW - w), height: h, width: w };
    }
  }
  const inRatio = imgW / imgH;
  let w = imgW;
  let h = imgH;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  }
  return { top: Math.floor((imgH - h) / 2), left: Math.floor((imgW - w) / 2), height: h, width: w };
}

/** Colour-jitter draws for one image; `order` lists op ids 0..3 = brightness, contrast, saturation, hue. */
export interface JitterParams {
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** All random choices of one view for a batch. `null` = op skipped for that image. */
export interface ViewPlan {
  boxes: CropBox[];
  jitter: (JitterParams | null)[];
  grayscale: boolean[];
  blurSigma: (number | null)[];
  solarize: boolean[];
}

function factorRange(x: number): [number, number] {
  return [Math.max(0, 1 - x), 1 + x];
}

/** Draws every random choice for one view, image by image, in the official op order. */
export function sampleViewPlan(batch: number, imgH: number, imgW: number, view: ViewConfig, rng: Rng): ViewPlan {
  const plan: ViewPlan = { boxes: [], jitter: [], grayscale: [], blurSigma: [], solarize: [] };
  const cj = view.colorJitter;
  for (let b = 0; b < batch; b++) {
    const box = sampleCropBox(imgH, imgW, view.scale, view.ratio, rng);
    plan.boxes.push({ ...box, flip: rng.bernoulli(view.flipProb) });
    if (rng.bernoulli(cj.prob)) {
      const order = rng.permutation(4);
      const [b0, b1] = factorRange(cj.brightness);
      const [c0, c1] = factorRange(cj.contrast);
      const [s0, s1] = factorRange(cj.saturation);
      plan.jitter.push({
        order,
        brightness: rng.uniform(b0, b1),
        contrast: rng.uniform(c0, c1),
        saturation: rng.uniform(s0, s1),
        hue: rng.uniform(-cj.hue, cj.hue),
      });
    } else {
      plan.jitter.push(null);
    }
    plan.grayscale.push(rng.bernoulli(view.grayscaleProb));
    // DINO's GaussianBlur tests `random() <= p`; with p in {0, 1} both forms agree.
    plan.blurSigma.push(rng.bernoulli(view.blurProb) ? rng.uniform(view.blurSigma[0], view.blurSigma[1]) : null);
    plan.solarize.push(rng.bernoulli(view.solarizeProb));
  }
  return plan;
}

// ---------------------------------------------------------------------------
// Tensor ops (each returns a new tensor that the caller owns)
//
// On the wasm backend arithmetic is fast but data-movement ops (concat, split,
// tile, gather of whole batches) are slow, so the pipeline applies per-image
// choices as full-batch arithmetic with per-image coefficients that are exact
// identities for images that skip an op, and gathers only for hue.

function checkImages(images: tf.Tensor, fn: string): void {
  if (images.rank !== 4) throw new Error(`${fn}: expected images [B, H, W, C], got shape [${images.shape.join(', ')}]`);
  if (images.dtype !== 'float32') {
    throw new Error(`${fn}: expected float32 images in [0, 1], got ${images.dtype}; cast and divide by 255 first`);
  }
  const c = images.shape[3];
  if (c !== 1 && c !== 3) throw new Error(`${fn}: expected 1 or 3 channels, got ${c}`);
}

/** ITU-R 601 luma weights, as PIL's convert('L'). */
export const LUMA_WEIGHTS = [0.299, 0.587, 0.114];

/** Luma with a channel axis: [B, H, W, 1]. A copy of the input on C = 1. */
export function rgbToGrayscale(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    if (x.shape[3] === 1) return x.clone();
    const [B, H, W] = x.shape;
    const flat = tf.matMul(tf.reshape(x, [B * H * W, 3]), tf.tensor2d(LUMA_WEIGHTS, [3, 1]));
    return tf.reshape(flat, [B, H, W, 1]) as tf.Tensor4D;
  });
}

function perImage(values: number[]): tf.Tensor4D {
  return tf.tensor4d(values, [values.length, 1, 1, 1]);
}

/**
 * clip(a*x + c*mean(luma(x)) + e*luma(x), 0, 1) with per-image a, c, e. This
 * is torchvision's brightness (a=f), contrast (a=f, c=1-f) and saturation
 * (a=f, e=1-f) blend in one pass; a=1, c=e=0 returns x unchanged.
 */
function affineJitter(x: tf.Tensor4D, a: number[], c: number[], e: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    let y: tf.Tensor = tf.mul(x, perImage(a));
    const needMean = c.some((v) => v !== 0);
    const needGray = e.some((v) => v !== 0);
    if (needMean || needGray) {
      const gray = rgbToGrayscale(x);
      if (needMean) y = tf.add(y, tf.mul(tf.mean(gray, [1, 2, 3], true), perImage(c)));
      if (needGray) y = tf.add(y, tf.mul(gray, perImage(e)));
    }
    return tf.clipByValue(y, 0, 1) as tf.Tensor4D;
  });
}

/** x * factor, clamped to [0, 1]; one factor per image. */
export function adjustBrightness(x: tf.Tensor4D, factors: number[]): tf.Tensor4D {
  return affineJitter(x, factors, factors.map(() => 0), factors.map(() => 0));
}

/** Blend with the image's mean luma (one scalar per image), clamped. */
export function adjustContrast(x: tf.Tensor4D, factors: number[]): tf.Tensor4D {
  return affineJitter(x, factors, factors.map((f) => 1 - f), factors.map(() => 0));
}

/** Blend with the per-pixel luma, clamped. A copy of the input on one channel. */
export function adjustSaturation(x: tf.Tensor4D, factors: number[]): tf.Tensor4D {
  if (x.shape[3] === 1) return x.clone();
  return affineJitter(x, factors, factors.map(() => 0), factors.map((f) => 1 - f));
}

/**
 * Rotates hue by `shifts` (fractions of a turn, one per image) in HSV space,
 * keeping saturation and value, as torchvision's adjust_hue. A copy of the
 * input on one channel.
 *
 * Uses the closed form of HSV -> RGB: channel n in (R, G, B) = (5, 3, 1) is
 * v - (v - min) * clamp(min(k, 4 - k), 0, 1) with k = (n + 6h) mod 6, and
 * 6h = offset of the max channel (0, 2, 4) + (difference of the other two) /
 * (max - min). Ties between max channels give the same hue either way.
 */
export function adjustHue(x: tf.Tensor4D, shifts: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    if (x.shape[3] === 1) return x.clone();
    const [B, H, W] = x.shape;
    const maxc = tf.max(x, 3, true);
    const range = tf.sub(maxc, tf.min(x, 3, true));
    // Grey pixels (range 0) keep range 0 below, so any hue works for them.
    const safeRange = tf.add(range, tf.cast(tf.equal(range, 0), 'float32'));
    // Columns: g - b, b - r, r - g.
    const diffs = tf.reshape(
      tf.matMul(tf.reshape(x, [B * H * W, 3]), tf.tensor2d([0, -1, 1, 1, 0, -1, -1, 1, 0], [3, 3])),
      [B, H, W, 3],
    );
    const candidates = tf.add(tf.div(diffs, safeRange), tf.tensor1d([0, 2, 4]));
    const isMax = tf.cast(tf.oneHot(tf.argMax(x, 3), 3), 'float32');
    const h6 = tf.sum(tf.mul(candidates, isMax), 3, true);
    const k0 = tf.add(tf.add(h6, perImage(shifts.map((s) => 6 * s))), tf.tensor1d([5, 3, 1]));
    // Floor-based mod (tf.mod is slow on wasm); k0 may be negative.
    const k = tf.sub(k0, tf.mul(6, tf.floor(tf.div(k0, 6))));
    const t = tf.clipByValue(tf.minimum(k, tf.sub(4, k)), 0, 1);
    return tf.sub(maxc, tf.mul(range, t)) as tf.Tensor4D;
  });
}

/** Replaces luma for images with flag 1 (RandomGrayscale, 3 identical channels); flag 0 keeps them. */
function grayscaleWhere(x: tf.Tensor4D, flags: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    const g = perImage(flags);
    return tf.add(tf.mul(x, tf.sub(1, g)), tf.mul(rgbToGrayscale(x), g)) as tf.Tensor4D;
  });
}

/**
 * Separable Gaussian blur with one sigma per image; sigma 0 leaves that
 * image unchanged. Kernel truncated at 3 sigma (and at the image size),
 * reflect padding. The batch is folded into the channel axis so one
 * depthwise convolution blurs every image with its own kernel.
 */
export function gaussianBlur(x: tf.Tensor4D, sigmas: number[]): tf.Tensor4D {
  const [n, H, W, C] = x.shape;
  if (sigmas.length !== n) throw new Error(`gaussianBlur: got ${sigmas.length} sigmas for ${n} images`);
  if (sigmas.some((s) => !(s >= 0))) throw new Error('gaussianBlur: sigmas must be >= 0 (0 = no blur)');
  return tf.tidy(() => {
    // Each image is truncated at its own radius so its result does not
    // depend on what else is in the batch; the convolution spans the widest.
    const radii = sigmas.map((s) => Math.min(Math.ceil(3 * s), H - 1, W - 1));
    const radius = Math.max(...radii);
    if (radius < 1) return x.clone();
    const taps = 2 * radius + 1;
    const weights = new Float32Array(taps * n * C);
    sigmas.forEach((sigma, b) => {
      const w: number[] = [];
      for (let k = -radius; k <= radius; k++) {
        w.push(Math.abs(k) > radii[b] ? 0 : sigma > 0 ? Math.exp(-(k * k) / (2 * sigma * sigma)) : k === 0 ? 1 : 0);
      }
      const total = w.reduce((acc, v) => acc + v, 0);
      for (let t = 0; t < taps; t++) for (let c = 0; c < C; c++) weights[t * n * C + b * C + c] = w[t] / total;
    });
    // [n, H, W, C] -> [1, H, W, n*C]
    const folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, H, W, n * C]) as tf.Tensor4D;
    const kv = tf.tensor4d(weights, [taps, 1, n * C, 1]);
    const kh = tf.tensor4d(weights, [1, taps, n * C, 1]);
    const padV = tf.mirrorPad(folded, [[0, 0], [radius, radius], [0, 0], [0, 0]], 'reflect');
    const blurV = tf.depthwiseConv2d(padV, kv, 1, 'valid');
    const padH = tf.mirrorPad(blurV, [[0, 0], [0, 0], [radius, radius], [0, 0]], 'reflect');
    const blurH = tf.depthwiseConv2d(padH, kh, 1, 'valid');
    return tf.transpose(tf.reshape(blurH, [H, W, n, C]), [2, 0, 1, 3]) as tf.Tensor4D;
  });
}

/** PIL ImageOps.solarize on [0, 1]: values >= threshold become 1 - x. */
export function solarize(x: tf.Tensor4D, threshold = 0.5): tf.Tensor4D {
  return tf.tidy(() => tf.where(tf.greaterEqual(x, threshold), tf.sub(1, x), x) as tf.Tensor4D);
}

/** Solarizes only images with flag 1. */
function solarizeWhere(x: tf.Tensor4D, flags: number[], threshold: number): tf.Tensor4D {
  return tf.tidy(() => {
    const hit = tf.greater(tf.mul(tf.cast(tf.greaterEqual(x, threshold), 'float32'), perImage(flags)), 0);
    return tf.where(hit, tf.sub(1, x), x) as tf.Tensor4D;
  });
}

/** (x - mean) / std per channel. */
export function normalizeImages(x: tf.Tensor4D, norm: NormalizeConfig): tf.Tensor4D {
  const C = x.shape[3];
  if (norm.mean.length !== C || norm.std.length !== C) {
    throw new Error(`normalizeImages: mean/std have ${norm.mean.length}/${norm.std.length} entries for ${C} channel(s)`);
  }
  return tf.tidy(() => tf.div(tf.sub(x, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std)) as tf.Tensor4D);
}

/**
 * Crops from images padded by one replicated pixel on each side (see
 * `resizedCrops`); `boxes` may hold several views of the batch, crop-major. Output pixel k samples input coordinate
 * top + (k + 0.5) * height / size - 0.5 (half-pixel centres, as PIL and
 * torchvision), which is always inside the padded image.
 */
function cropsFromPadded(padded: tf.Tensor4D, boxes: CropBox[], size: number): tf.Tensor4D {
  const [B, Hp, Wp] = padded.shape;
  const coords = new Float32Array(boxes.length * 4);
  boxes.forEach((bx, i) => {
    const y1 = (bx.top + 1 + bx.height / (2 * size) - 0.5) / (Hp - 1);
    const y2 = (bx.top + 1 + bx.height - bx.height / (2 * size) - 0.5) / (Hp - 1);
    const xa = (bx.left + 1 + bx.width / (2 * size) - 0.5) / (Wp - 1);
    const xb = (bx.left + 1 + bx.width - bx.width / (2 * size) - 0.5) / (Wp - 1);
    // A box with x1 > x2 samples right to left: the mirrored crop, for free.
    coords.set(bx.flip ? [y1, xb, y2, xa] : [y1, xa, y2, xb], i * 4);
  });
  return tf.image.cropAndResize(
    padded,
    tf.tensor2d(coords, [boxes.length, 4]),
    // Box i crops image i mod B: the views of a stacked plan (crop-major) all read the same batch.
    tf.tensor1d(boxes.map((_, i) => i % B), 'int32'),
    [size, size],
    'bilinear',
  );
}

function padOne(images: tf.Tensor4D): tf.Tensor4D {
  // 'symmetric' by one pixel repeats the edge pixel: clamp-to-edge sampling.
  return tf.mirrorPad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric');
}

/** Box i of image i, resized (bilinear) to size x size; `flip` mirrors horizontally. */
export function resizedCrops(images: tf.Tensor4D, boxes: CropBox[], size: number): tf.Tensor4D {
  checkImages(images, 'resizedCrops');
  if (boxes.length !== images.shape[0]) throw new Error(`resizedCrops: ${boxes.length} boxes for ${images.shape[0]} images`);
  return tf.tidy(() => cropsFromPadded(padOne(images), boxes, size));
}

/** Applies `fn` to the listed images only and writes the results back in place of them. */
function replaceRows(x: tf.Tensor4D, idx: number[], fn: (sub: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  if (idx.length === 0) return x;
  if (idx.length === x.shape[0] && idx.every((v, i) => v === i)) return fn(x);
  const sub = tf.gather(x, tf.tensor1d(idx, 'int32'));
  return tf.tensorScatterUpdate(x, tf.tensor2d(idx, [idx.length, 1], 'int32'), fn(sub));
}

/**
 * Applies a sampled plan to a batch: crop+flip, jitter, grayscale, blur,
 * solarize, then normalisation (`null` = none). Returns a new tensor.
 */
export function applyViewPlan(images: tf.Tensor4D, plan: ViewPlan, view: ViewConfig, normalize: NormalizeConfig | null): tf.Tensor4D {
  checkImages(images, 'applyViewPlan');
  if (plan.boxes.length !== images.shape[0]) {
    throw new Error(`applyViewPlan: plan is for ${plan.boxes.length} images, batch has ${images.shape[0]}`);
  }
  return tf.tidy(() => applyPlanPadded(padOne(images), plan, view, normalize));
}

/**
 * Applies a plan to the padded batch. The plan may be several views' plans
 * concatenated crop-major (`stackPlans`) when they share size and solarize
 * threshold, which is all `view` supplies: every other choice is per image,
 * so a stacked application gives each image exactly what its own view would.
 */
function applyPlanPadded(padded: tf.Tensor4D, plan: ViewPlan, view: ViewConfig, normalize: NormalizeConfig | null): tf.Tensor4D {
  const C = padded.shape[3];
  const B = plan.boxes.length;
  let x = cropsFromPadded(padded, plan.boxes, view.size);

  // ColorJitter in each image's own random order: at slot s, image b gets op
  // order[s] (0 brightness, 1 contrast, 2 saturation, 3 hue), the others an
  // identity. Saturation and hue are identities on one channel.
  for (let slot = 0; slot < 4; slot++) {
    const a = new Array<number>(B).fill(1);
    const c = new Array<number>(B).fill(0);
    const e = new Array<number>(B).fill(0);
    const hueIdx: number[] = [];
    let affine = false;
    plan.jitter.forEach((j, b) => {
      if (j === null) return;
      const op = j.order[slot];
      if (op === 0) {
        a[b] = j.brightness;
        affine = true;
      } else if (op === 1) {
        a[b] = j.contrast;
        c[b] = 1 - j.contrast;
        affine = true;
      } else if (op === 2 && C === 3) {
        a[b] = j.saturation;
        e[b] = 1 - j.saturation;
        affine = true;
      } else if (op === 3 && C === 3) {
        hueIdx.push(b);
      }
    });
    if (affine) x = affineJitter(x, a, c, e);
    if (hueIdx.length > 0) x = replaceRows(x, hueIdx, (sub) => adjustHue(sub, hueIdx.map((b) => plan.jitter[b]!.hue)));
  }

  if (C === 3 && plan.grayscale.some((g) => g)) x = grayscaleWhere(x, plan.grayscale.map((g) => (g ? 1 : 0)));

  if (plan.blurSigma.some((s) => s !== null)) x = gaussianBlur(x, plan.blurSigma.map((s) => s ?? 0));

  if (plan.solarize.some((s) => s)) {
    x = solarizeWhere(x, plan.solarize.map((s) => (s ? 1 : 0)), view.solarizeThreshold);
  }

  return normalize ? normalizeImages(x, normalize) : x;
}

/** One augmented view of every image in the batch. The caller owns the result. */
export function augmentView(images: tf.Tensor4D, view: ViewConfig, rng: Rng, normalize: NormalizeConfig | null): tf.Tensor4D {
  checkImages(images, 'augmentView');
  validateView(view, 'view');
  const [B, H, W] = images.shape;
  const plan = sampleViewPlan(B, H, W, view, rng);
  return applyViewPlan(images, plan, view, normalize);
}

export interface MultiCropViews {
  /** `globalCrops` tensors [B, globalSize, globalSize, C]. */
  global: tf.Tensor4D[];
  /** `localCrops` tensors [B, localSize, localSize, C]. */
  local: tf.Tensor4D[];
}

/** The views of a batch stacked crop-major (all B images of view 0, then view 1, …), as the training step takes them. */
export interface StackedViews {
  /** [G·B, globalSize, globalSize, C]. */
  global: tf.Tensor4D;
  /** [L·B, localSize, localSize, C], or null without local crops. */
  local: tf.Tensor4D | null;
}

function stackPlans(plans: ViewPlan[]): ViewPlan {
  return {
    boxes: plans.flatMap((p) => p.boxes),
    jitter: plans.flatMap((p) => p.jitter),
    grayscale: plans.flatMap((p) => p.grayscale),
    blurSigma: plans.flatMap((p) => p.blurSigma),
    solarize: plans.flatMap((p) => p.solarize),
  };
}

/**
 * All views of a batch of images ([B, H, W, C], float32 in [0, 1], C = 1
 * or 3), stacked crop-major: global views first (view 0 is DINO's
 * global_transfo1), then local views, each normalised per `cfg.normalize`.
 * Every random choice is drawn view by view, image by image, before any
 * tensor work; then each group of same-sized views is augmented in one pass
 * (one crop-and-resize, one jitter chain, one blur), so the number of tensor
 * ops does not grow with the number of crops — what a GPU, which pays per
 * op dispatched, needs. Deterministic given the rng state; the caller owns
 * the returned tensors.
 */
export function multiCropStacked(images: tf.Tensor4D, cfg: MultiCropConfig, rng: Rng): StackedViews {
  checkImages(images, 'multiCrop');
  validateMultiCropConfig(cfg);
  const [B, H, W, C] = images.shape;
  if (H < 2 || W < 2) throw new Error(`multiCrop: images must be at least 2x2, got ${H}x${W}`);
  const norm = resolveNormalize(cfg.normalize, C);
  const views = viewConfigs(cfg);
  const globalPlans = views.global.map((v) => sampleViewPlan(B, H, W, v, rng));
  const localPlans = views.local.map((v) => sampleViewPlan(B, H, W, v, rng));
  const padded = padOne(images);
  try {
    return {
      global: tf.tidy(() => applyPlanPadded(padded, stackPlans(globalPlans), views.global[0], norm)),
      local: localPlans.length ? tf.tidy(() => applyPlanPadded(padded, stackPlans(localPlans), views.local[0], norm)) : null,
    };
  } finally {
    padded.dispose();
  }
}

/** The views of a batch as one tensor per view ([B, …] each); same values and rng use as `multiCropStacked`. */
export function multiCrop(images: tf.Tensor4D, cfg: MultiCropConfig, rng: Rng): MultiCropViews {
  const s = multiCropStacked(images, cfg, rng);
  const out = { global: unstackViews(s.global, cfg.globalCrops), local: s.local ? unstackViews(s.local, cfg.localCrops) : [] };
  tf.dispose([s.global, ...(s.local ? [s.local] : [])]);
  return out;
}

/** Splits a crop-major stack of `views` views into one tensor per view (new tensors; the input is kept). */
export function unstackViews<T extends tf.Tensor>(stacked: T, views: number): T[] {
  if (views === 1) return [stacked.clone()];
  return tf.split(stacked, views, 0) as T[];
}

/** Disposes every tensor of a `multiCrop` result. */
export function disposeViews(views: MultiCropViews): void {
  for (const t of views.global) t.dispose();
  for (const t of views.local) t.dispose();
}
