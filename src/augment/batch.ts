/**
 * One training batch's inputs for iBOT: the multi-crop views and the MIM
 * masks of the global views, stacked crop-major the way the training step
 * and the loss read them (`train/ibot`'s `Crops`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';
import { MaskingConfig, masksToTensor, patchGrid, sampleBatchMasks } from './masking';
import { MultiCropConfig } from './crop-config';
import { MultiCropViews, multiCropStacked, unstackViews } from './multicrop';

export interface IBOTBatchOptions {
  multiCrop: MultiCropConfig;
  masking: MaskingConfig;
  /** ViT patch size; the global view size must be a multiple of it. */
  patchSize: number;
  /** Current epoch, for `masking.predStartEpoch`. Default: masking on. */
  epoch?: number;
}

export interface IBOTBatch {
  /** Global views [G·B, S, S, C], crop-major (all B images of view 0, then view 1, …). */
  global: tf.Tensor4D;
  /** Local views [L·B, s, s, C], crop-major; null without local crops. */
  local: tf.Tensor4D | null;
  /** Masks of the global views [G·B, N] float32, 1 = masked patch, N = (globalSize / patchSize)², same row order. */
  masks: tf.Tensor2D;
  /** The same masks as arrays, `[globalView][image]`, row-major over the patch grid. */
  maskArrays: Uint8Array[][];
  /** G and L. */
  numGlobal: number;
  numLocal: number;
}

/**
 * Augments a batch ([B, H, W, C] float32 in [0, 1]) and draws its masks.
 * Crops are drawn first, then masks, from the same `rng`. The caller owns
 * the returned tensors (`disposeIBOTBatch`).
 */
export function ibotBatch(images: tf.Tensor4D, opts: IBOTBatchOptions, rng: Rng): IBOTBatch {
  const [gridH, gridW] = patchGrid(opts.multiCrop.globalSize, opts.patchSize);
  const views = multiCropStacked(images, opts.multiCrop, rng);
  const B = images.shape[0];
  const G = opts.multiCrop.globalCrops;
  const maskArrays = sampleBatchMasks({ batchSize: B, numGlobalCrops: G, gridH, gridW, epoch: opts.epoch }, opts.masking, rng);
  return { ...views, masks: masksToTensor(maskArrays.flat()), maskArrays, numGlobal: G, numLocal: opts.multiCrop.localCrops };
}

/** The batch's views as one tensor per view (for looking at them); new tensors, the batch is kept. */
export function batchViews(batch: IBOTBatch): MultiCropViews {
  return {
    global: unstackViews(batch.global, batch.numGlobal),
    local: batch.local ? unstackViews(batch.local, batch.numLocal) : [],
  };
}

export function disposeIBOTBatch(batch: IBOTBatch): void {
  tf.dispose([batch.global, batch.masks, ...(batch.local ? [batch.local] : [])]);
}
