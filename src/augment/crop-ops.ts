/**
 * The tensor side of multi-crop: a sampled plan (`crop-plan.ts`) applied to a
 * batch, in the official order — RandomResizedCrop → horizontal flip (p 0.5)
 * → ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8 in random order →
 * RandomGrayscale (p 0.2) → Gaussian blur → solarization → normalisation.
 * Each op returns a new tensor that the caller owns.
 *
 * Deliberate differences from the PIL pipeline, all documented where they
 * happen:
 * - resizing is bilinear (one `cropAndResize` per group of views, half-pixel
 *   centres, edges replicated) instead of PIL bicubic, and without
 *   antialiasing when a crop is shrunk;
 * - the flip is folded into the crop box (a mirrored box samples the mirrored
 *   image exactly);
 * - blur is a true Gaussian truncated at 3 sigma with reflect padding instead
 *   of PIL's box-blur approximation;
 * - contrast blends with the exact mean luma, where PIL rounds it to an
 *   integer grey level (a difference of at most 0.5/255);
 * - on grayscale input (C = 1) colour jitter applies brightness and contrast
 *   only; saturation and hue are identities on one channel, as in torchvision
 *   (PIL 'L' images), and RandomGrayscale is a no-op.
 *
 * On the wasm backend arithmetic is fast but data-movement ops (concat, split,
 * tile, gather of whole batches) are slow, so per-image choices are applied as
 * full-batch arithmetic with per-image coefficients that are exact identities
 * for images that skip an op, and only hue works on a gathered subset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../util/rng';
import { NormalizeConfig, normalizeImages } from '../data/normalize';
import { ViewConfig, validateView } from './crop-config';
import { CropBox, ViewPlan, sampleViewPlan } from './crop-plan';

export function checkImages(images: tf.Tensor, fn: string): void {
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
    // A weighted sum over the channel axis rather than a [B·H·W, 3]×[3, 1] matMul: element-wise ops
    // dispatch over a flat index on a GPU, where a matMul with millions of rows exceeds WebGPU's
    // 65,535 workgroups per grid dimension (two 224 px crops of a batch of 64 already do).
    return tf.sum(tf.mul(x, tf.tensor1d(LUMA_WEIGHTS)), 3, true) as tf.Tensor4D;
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
    const maxc = tf.max(x, 3, true);
    const range = tf.sub(maxc, tf.min(x, 3, true));
    // Grey pixels (range 0) keep range 0 below, so any hue works for them.
    const safeRange = tf.add(range, tf.cast(tf.equal(range, 0), 'float32'));
    // Columns: g - b, b - r, r - g.
    // Element-wise, not as a [B·H·W, 3]×[3, 3] matMul: see rgbToGrayscale.
    const [r, g, b] = tf.split(x, 3, 3);
    const diffs = tf.concat([tf.sub(g, b), tf.sub(b, r), tf.sub(r, g)], 3);
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

/**
 * Crops from images padded by one replicated pixel on each side (see
 * `resizedCrops`); `boxes` may hold several views of the batch, crop-major.
 * Output pixel k samples input coordinate top + (k + 0.5) * height / size −
 * 0.5 (half-pixel centres, as PIL and torchvision), which is always inside
 * the padded image.
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

export function padOne(images: tf.Tensor4D): tf.Tensor4D {
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
export function applyPlanPadded(padded: tf.Tensor4D, plan: ViewPlan, view: ViewConfig, normalize: NormalizeConfig | null): tf.Tensor4D {
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

