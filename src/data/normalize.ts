/**
 * Pixel normalisation: the per-channel mean/std of the datasets ibotlab knows,
 * and (x − mean) / std on image batches. Augmentation, feature extraction and
 * pretrained weights all normalise through here.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Per-channel mean and std of pixels in [0, 1]. */
export interface NormalizeConfig {
  mean: number[];
  std: number[];
}

/** Per-view-kind probabilities: first global view, the other global views, local views. */

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
export const FASHION_MNIST_MEAN = [0.286];
export const FASHION_MNIST_STD = [0.353];
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];

/** How to normalise: `'auto'` (by channel count), `'none'`, or explicit mean/std. */
export type NormalizeSetting = NormalizeConfig | 'auto' | 'none';

/**
 * Resolves `'auto'` / `'none'` for a channel count; null means no normalisation.
 * `'auto'`: Fashion-MNIST's mean/std for one channel, ImageNet's for three.
 */
export function resolveNormalize(normalize: NormalizeSetting, channels: number): NormalizeConfig | null {
  if (normalize === 'none') return null;
  if (normalize === 'auto') {
    return channels === 1
      ? { mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD] }
      : { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
  }
  if (normalize.mean.length !== channels) {
    throw new Error(
      `normalize has ${normalize.mean.length} channel(s) but the images have ${channels}; ` +
        "give matching mean/std or use normalize: 'auto'",
    );
  }
  return normalize;
}

/** (x - mean) / std per channel. */
export function normalizeImages(x: tf.Tensor4D, norm: NormalizeConfig): tf.Tensor4D {
  const C = x.shape[3];
  if (norm.mean.length !== C || norm.std.length !== C) {
    throw new Error(`normalizeImages: mean/std have ${norm.mean.length}/${norm.std.length} entries for ${C} channel(s)`);
  }
  return tf.tidy(() => tf.div(tf.sub(x, tf.tensor1d(norm.mean)), tf.tensor1d(norm.std)) as tf.Tensor4D);
}

