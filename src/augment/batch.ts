/**
 * One training batch's inputs for iBOT: the multi-crop views and a MIM mask
 * per global view, in the shape the training step takes
 * (`{ global, local, masks }`, structurally `train/ibot`'s `Crops`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';
import { MaskingConfig, masksToTensor, patchGrid, sampleBatchMasks } from './masking';
import { MultiCropConfig, MultiCropViews, disposeViews, multiCrop } from './multicrop';

export interface IBOTBatchOptions {
  multiCrop: MultiCropConfig;
  masking: MaskingConfig;
  /** ViT patch size; the global view size must be a multiple of it. */
  patchSize: number;
  /** Current epoch, for `masking.predStartEpoch`. Default: masking on. */
  epoch?: number;
}

export interface IBOTBatch extends MultiCropViews {
  /** One [B, N] float32 tensor per global view, 1 = masked patch, N = (globalSize / patchSize)^2. */
  masks: tf.Tensor2D[];
  /** The same masks as arrays, `[globalView][image]`, row-major over the patch grid. */
  maskArrays: Uint8Array[][];
}

/**
 * Augments a batch ([B, H, W, C] float32 in [0, 1]) and draws its masks.
 * Crops are drawn first, then masks, from the same `rng`. The caller owns
 * the returned tensors (`disposeIBOTBatch`).
 */
export function ibotBatch(images: tf.Tensor4D, opts: IBOTBatchOptions, rng: Rng): IBOTBatch {
  const [gridH, gridW] = patchGrid(opts.multiCrop.globalSize, opts.patchSize);
  const views = multiCrop(images, opts.multiCrop, rng);
  const B = images.shape[0];
  const maskArrays = sampleBatchMasks(
    { batchSize: B, numGlobalCrops: views.global.length, gridH, gridW, epoch: opts.epoch },
    opts.masking,
    rng,
  );
  return { ...views, masks: maskArrays.map((m) => masksToTensor(m)), maskArrays };
}

export function disposeIBOTBatch(batch: IBOTBatch): void {
  disposeViews(batch);
  for (const m of batch.masks) m.dispose();
}
