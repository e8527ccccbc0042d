/**
 * Multi-crop views of a batch (DINO's DataAugmentationDINO / iBOT's
 * DataAugmentationiBOT): 2 global + N local views per image, drawn from one
 * `Rng` (plans in `crop-plan.ts`, tensor ops in `crop-ops.ts`, settings in
 * `crop-config.ts`). The first global view always blurs; the other global
 * views blur with p 0.1 and solarize with p 0.2; local views blur with p 0.5.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';
import { resolveNormalize } from '../data/normalize';
import { MultiCropConfig, validateMultiCropConfig, viewConfigs } from './crop-config';
import { ViewPlan, sampleViewPlan } from './crop-plan';
import { applyPlanPadded, checkImages, padOne } from './crop-ops';

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

