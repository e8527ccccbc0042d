/**
 * The patches the MIM loss reads, as rows of the flattened token matrix.
 *
 * The official iBOT runs the student head over every patch token and then
 * weights the unmasked ones by zero in the loss: their outputs reach neither
 * the loss nor the gradient. So the step runs the head on the masked patches
 * alone (as DINOv2 does), with the same loss and the same gradients. With the
 * paper's masks (half of the images unmasked, the rest 10–50% masked) that is
 * about 15% of the patches: the student head does ~6× less work and the
 * `bench` step ~20% fewer FLOPs.
 *
 * The rows are padded to a multiple of a bucket (about 1/32 of all patches)
 * so that a GPU backend sees a few shapes over a run rather than a new one
 * every step (each new shape can cost a shader compilation). Padding rows are
 * unmasked patches (distinct indices, so a scatter of their zero gradient
 * cannot collide with a real row) with weight 0.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Host-side selection (pure; see `selectMaskedPatches`). */
export interface PatchSelection {
  /** Patch index b·N + n of every row (masked patches in image order, then padding) [Mpad]. */
  patch: Int32Array;
  /**
   * Loss weight of every row: 1 / (#masked patches of its image) / (G·B), so that
   * Σ weight · cross-entropy is the official mean over images of the per-image
   * mean over masked patches (an image without masked patches adds 0). 0 for padding.
   */
  weight: Float32Array;
  /** Masked patches (the real rows; the rest is padding). */
  count: number;
}

/** Rows padded to a multiple of this: ~1/32 of all patches, at least 8 (see the header). */
export function rowBucket(totalPatches: number): number {
  return Math.max(8, Math.ceil(totalPatches / 32 / 8) * 8);
}

/** Rows the heads run on for `count` masked patches out of `total`: `count` padded up to the bucket. */
export function paddedRows(count: number, total: number, bucket = rowBucket(total)): number {
  return Math.min(total, Math.max(bucket, Math.ceil(count / bucket) * bucket));
}

/**
 * The masked patches of masks `mask` (flat [G·B·N], 1 = masked, crop-major as
 * the step takes them) with their loss weights, padded to `bucket` rows.
 */
export function selectMaskedPatches(mask: ArrayLike<number>, GB: number, N: number, bucket = rowBucket(GB * N)): PatchSelection {
  if (mask.length !== GB * N) throw new Error(`selectMaskedPatches: ${mask.length} mask values for G·B = ${GB} images of N = ${N} patches`);
  let count = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) count++;
  const rows = paddedRows(count, GB * N, bucket);
  const patch = new Int32Array(rows);
  const weight = new Float32Array(rows);
  let r = 0;
  for (let b = 0; b < GB; b++) {
    let k = 0;
    for (let n = 0; n < N; n++) if (mask[b * N + n] !== 0) k++;
    const w = k > 0 ? 1 / k / GB : 0;
    for (let n = 0; n < N; n++) {
      if (mask[b * N + n] === 0) continue;
      patch[r] = b * N + n;
      weight[r++] = w;
    }
  }
  // Padding: the first unmasked patches (weight 0), never a masked one twice.
  for (let i = 0; i < GB * N && r < rows; i++) if (mask[i] === 0) patch[r++] = i;
  return { patch, weight, count };
}

/** The selection as tensors for the step. The caller owns them (`disposePatchRows`). */
export interface PatchRows {
  /**
   * The token-matrix rows [G·B·T, D] (T = 1 + N) the heads read, int32 [G·B + Mpad]: first every
   * image's [CLS] (b·T), then the selected patches (b·T + 1 + n) in the order of `weight`.
   */
  headRows: tf.Tensor1D;
  /** Loss weights [Mpad] (see `PatchSelection.weight`). */
  weight: tf.Tensor1D;
  /** 1 for masked patches, 0 for padding [Mpad]. */
  real: tf.Tensor1D;
  count: number;
}

export function patchRows(sel: PatchSelection, GB: number, N: number): PatchRows {
  const T = N + 1;
  const headRows = new Int32Array(GB + sel.patch.length);
  for (let b = 0; b < GB; b++) headRows[b] = b * T;
  sel.patch.forEach((p, i) => (headRows[GB + i] = Math.floor(p / N) * T + 1 + (p % N)));
  const real = Float32Array.from(sel.weight, (w, i) => (i < sel.count ? 1 : 0));
  return {
    headRows: tf.tensor1d(headRows, 'int32'),
    weight: tf.tensor1d(sel.weight),
    real: tf.tensor1d(real),
    count: sel.count,
  };
}

export function disposePatchRows(r: PatchRows): void {
  tf.dispose([r.headRows, r.weight, r.real]);
}
