/**
 * Multi-crop configuration (DINO's DataAugmentationDINO / iBOT's
 * DataAugmentationiBOT settings): the typed config, the official defaults,
 * presets for small images, validation, and the per-view settings a config
 * implies (first global view, other global views, local views).
 */
import { NormalizeSetting, CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '../data/normalize';

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
  normalize: NormalizeSetting;
}

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

export function validateView(v: ViewConfig, name: string): void {
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

export function validateMultiCropConfig(cfg: MultiCropConfig): void {
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

