import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../src/util/rng';
import {
  CropBox,
  DEFAULT_MULTICROP,
  ViewConfig,
  ViewPlan,
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  applyViewPlan,
  augmentView,
  disposeViews,
  gaussianBlur,
  multiCrop,
  multiCropConfig,
  multiCropPreset,
  resizedCrops,
  rgbToGrayscale,
  sampleCropBox,
  sampleViewPlan,
  solarize,
  viewConfigs,
} from '../src/augment';
import { normalizeImages } from '../src/data/normalize';
import { maskingConfig } from '../src/augment/masking';
import { batchViews, disposeIBOTBatch, ibotBatch } from '../src/augment/batch';

before(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
});

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

function data(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/** A view with every random op off; tests switch on what they need. */
function plainView(size: number, over: Partial<ViewConfig> = {}): ViewConfig {
  return {
    size,
    scale: [1, 1],
    ratio: [1, 1],
    flipProb: 0,
    colorJitter: { prob: 0, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 },
    grayscaleProb: 0,
    blurProb: 0,
    blurSigma: [0.1, 2],
    solarizeProb: 0,
    solarizeThreshold: 0.5,
    ...over,
  };
}

test('crop boxes follow torchvision RandomResizedCrop: in bounds, area and aspect in range, fallback', async () => {
  const rng = new Rng(1);
  for (let t = 0; t < 2000; t++) {
    const b = sampleCropBox(60, 80, [0.25, 1], [3 / 4, 4 / 3], rng);
    assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= 60 && b.left + b.width <= 80);
    const frac = (b.height * b.width) / (60 * 80);
    // rounding each side to an integer moves the area by at most ~(h + w)/2 pixels
    const slack = (b.height + b.width) / 2 / (60 * 80) + 1e-9;
    const isFallback = b.height === 60 && b.width === 80;
    if (!isFallback) {
      assert.ok(frac >= 0.25 - slack && frac <= 1 + slack, `area fraction ${frac}`);
      // w = round(sqrt(A*a)), h = round(sqrt(A/a)) with a in [3/4, 4/3]: the
      // half-pixel roundings bound w/h within a * (1 -+ 2/h) (for h >= 2)
      const ar = b.width / b.height;
      const e = 2 / b.height;
      assert.ok(ar >= (3 / 4) * (1 - e) - 1e-9 && ar <= ((4 / 3) * (1 + e)) / (1 - e / 2) + 1e-9, `aspect ${ar}`);
    }
  }
  // No area in [2, 3] x image fits: after 10 tries torchvision centre-crops
  // the whole image, clamped to the ratio range. 10x40 has ratio 4 > 4/3, so
  // h = 10, w = round(10 * 4/3) = 13, left = (40 - 13) // 2 = 13.
  assert.deepEqual(sampleCropBox(10, 40, [2, 3], [3 / 4, 4 / 3], rng), { top: 0, left: 13, height: 10, width: 13 });
  // Square image inside the range: the full image.
  assert.deepEqual(sampleCropBox(9, 9, [2, 3], [3 / 4, 4 / 3], rng), { top: 0, left: 0, height: 9, width: 9 });
});

test('full-image crop equals half-pixel bilinear resize, and is the identity at the same size', async () => {
  const x = tf.randomUniform([3, 10, 10, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  const full: CropBox[] = [0, 1, 2].map(() => ({ top: 0, left: 0, height: 10, width: 10, flip: false }));
  const same = resizedCrops(x, full, 10);
  close(data(same), data(x), 1e-5, 'identity');
  for (const size of [4, 7, 16, 23]) {
    const ours = resizedCrops(x, full, size);
    const ref = tf.image.resizeBilinear(x, [size, size], false, true);
    close(data(ours), data(ref), 1e-5, `resize ${size}`);
    tf.dispose([ours, ref]);
  }
  tf.dispose([x, same]);
});

test('crop hand-checks: an integer window, and upsampling with clamped edges', async () => {
  // 4x4 image with value 10*row + col; a 2x2 window at (1, 1) at size 2 is copied exactly.
  const vals = Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
  const img = tf.tensor4d(vals, [1, 4, 4, 1]);
  const win = resizedCrops(img, [{ top: 1, left: 1, height: 2, width: 2, flip: false }], 2);
  close(data(win), [11, 12, 21, 22], 1e-5, 'window');
  // 2x2 [[0,1],[2,3]] to 4x4: sample points (k+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25,
  // clamped to the edge: 0, 0.25, 0.75, 1 along each axis; value = 2y + x.
  const small = tf.tensor4d([0, 1, 2, 3], [1, 2, 2, 1]);
  const up = resizedCrops(small, [{ top: 0, left: 0, height: 2, width: 2, flip: false }], 4);
  const p = [0, 0.25, 0.75, 1];
  close(data(up), p.flatMap((y) => p.map((xx) => 2 * y + xx)), 1e-5, 'upsample');
  tf.dispose([img, win, small, up]);
});

test('flip really mirrors the crop (tf.reverse along width)', async () => {
  const x = tf.randomUniform([2, 12, 9, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const boxes: CropBox[] = [
    { top: 2, left: 1, height: 7, width: 6, flip: false },
    { top: 0, left: 3, height: 12, width: 5, flip: false },
  ];
  const plain = resizedCrops(x, boxes, 8);
  const flipped = resizedCrops(x, boxes.map((b) => ({ ...b, flip: true })), 8);
  const ref = tf.reverse(plain, 2);
  close(data(flipped), data(ref), 1e-5, 'flip');
  tf.dispose([x, plain, flipped, ref]);
});

test('brightness, contrast and saturation hand-checked (torchvision blends, clamped)', async () => {
  const x = tf.tensor4d([0.5, 0.8, 0.2, 0.4], [1, 2, 2, 1]);
  close(data(adjustBrightness(x, [1.5])), [0.75, 1, 0.3, 0.6], 1e-6, 'brightness');
  // mean 0.475; 2*x - 0.475, clamped
  close(data(adjustContrast(x, [2])), [0.525, 1, 0, 0.325], 1e-6, 'contrast');
  close(data(adjustContrast(x, [0])), [0.475, 0.475, 0.475, 0.475], 1e-6, 'contrast 0');
  // saturation is a no-op on one channel
  close(data(adjustSaturation(x, [0])), data(x), 0, 'saturation gray');

  const red = tf.tensor4d([1, 0, 0], [1, 1, 1, 3]);
  // luma(red) = 0.299
  close(data(rgbToGrayscale(red)), [0.299], 1e-6, 'luma');
  close(data(adjustSaturation(red, [0])), [0.299, 0.299, 0.299], 1e-6, 'desaturate');
  close(data(adjustSaturation(red, [0.5])), [0.6495, 0.1495, 0.1495], 1e-6, 'half saturation');
  // RGB contrast uses the mean luma of the whole image: pixels red and white -> (0.299 + 1) / 2
  const two = tf.tensor4d([1, 0, 0, 1, 1, 1], [1, 1, 2, 3]);
  const m = (0.299 + 1) / 2;
  close(data(adjustContrast(two, [0.5])), [0.5 + m / 2, m / 2, m / 2, 0.5 + m / 2, 0.5 + m / 2, 0.5 + m / 2], 1e-6, 'rgb contrast');
  tf.dispose([x, red, two]);
});

/** Python colorsys' rgb_to_hsv / hsv_to_rgb, written out independently as the reference for hue. */
function refHue(r: number, g: number, b: number, shift: number): [number, number, number] {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  const v = maxc;
  if (minc === maxc) return [v, v, v];
  const s = (maxc - minc) / maxc;
  const rc = (maxc - r) / (maxc - minc);
  const gc = (maxc - g) / (maxc - minc);
  const bc = (maxc - b) / (maxc - minc);
  let h = r === maxc ? bc - gc : g === maxc ? 2 + rc - bc : 4 + gc - rc;
  h = (((h / 6 + shift) % 1) + 1) % 1;
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  switch (i % 6) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

test('hue rotation: primaries, grey, and random pixels against colorsys', async () => {
  const red = tf.tensor4d([1, 0, 0, 0.5, 0.5, 0.5], [1, 1, 2, 3]);
  close(data(adjustHue(red, [1 / 3])), [0, 1, 0, 0.5, 0.5, 0.5], 1e-5, 'red -> green');
  close(data(adjustHue(red, [-1 / 3])), [0, 0, 1, 0.5, 0.5, 0.5], 1e-5, 'red -> blue');
  const rng = new Rng(8);
  const n = 300;
  const px = Array.from({ length: n * 3 }, () => (rng.bernoulli(0.1) ? 1 : rng.random()));
  // a few exact ties between channels
  px[0] = px[1] = 0.7;
  px[5] = px[3] = 0.9;
  const img = tf.tensor4d(px, [3, 10, 10, 3]);
  const shifts = [0.1, -0.07, 0.5];
  const ours = data(adjustHue(img, shifts));
  const ref: number[] = [];
  for (let i = 0; i < n; i++) ref.push(...refHue(px[3 * i], px[3 * i + 1], px[3 * i + 2], shifts[Math.floor(i / 100)]));
  close(ours, ref, 2e-5, 'hue vs colorsys');
  close(data(adjustHue(img, [0, 0, 0])), px, 2e-5, 'zero shift');
  const gray = tf.tensor4d([0.1, 0.9], [1, 1, 2, 1]);
  close(data(adjustHue(gray, [0.3])), [Math.fround(0.1), Math.fround(0.9)], 0, 'hue on one channel');
  tf.dispose([red, img, gray]);
});

test('gaussian blur: constant images stay constant, a delta spreads with variance sigma^2', async () => {
  const c = tf.fill([2, 9, 11, 3], 0.37) as tf.Tensor4D;
  close(data(gaussianBlur(c, [0.5, 2])), new Array(2 * 9 * 11 * 3).fill(0.37), 1e-6, 'constant');
  // delta in the middle of a 21x21 image, sigma 1, kernel truncated at 3 sigma:
  // centre weight 1 / (1 + 2(e^-1/2 + e^-2 + e^-9/2)) = 0.399050 per axis,
  // row variance sum k^2 w_k = 0.99592.
  const d = new Float32Array(21 * 21);
  d[10 * 21 + 10] = 1;
  const delta = tf.tensor4d(d, [1, 21, 21, 1]);
  const out = data(gaussianBlur(delta, [1]));
  assert.ok(Math.abs(out[10 * 21 + 10] - 0.39905 ** 2) < 1e-5, `centre ${out[10 * 21 + 10]}`);
  let total = 0;
  let varY = 0;
  for (let i = 0; i < 21; i++)
    for (let j = 0; j < 21; j++) {
      total += out[i * 21 + j];
      varY += (i - 10) ** 2 * out[i * 21 + j];
    }
  assert.ok(Math.abs(total - 1) < 1e-5, `mass ${total}`);
  assert.ok(Math.abs(varY - 0.99592) < 1e-4, `variance ${varY}`);
  // sigma 0 leaves an image untouched even when others in the batch blur
  const x = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const mixed = gaussianBlur(x, [0, 1.5]);
  close(data(mixed).slice(0, 64), data(x).slice(0, 64), 0, 'sigma 0');
  assert.ok(data(mixed).slice(64).some((v, i) => Math.abs(v - data(x)[64 + i]) > 1e-3));
  // an image's blur does not depend on the other sigmas in the batch
  const pair = tf.concat([x, x], 0) as tf.Tensor4D;
  const alone = gaussianBlur(x, [0.5, 0.5]);
  const together = gaussianBlur(pair, [0.5, 0.5, 2, 2]);
  close(data(together).slice(0, 128), data(alone), 1e-6, 'batch independence');
  tf.dispose([pair, alone, together]);
  tf.dispose([c, delta, x, mixed]);
});

test('solarize inverts values at or above the threshold', async () => {
  const x = tf.tensor4d([0.2, 0.49, 0.5, 0.51, 0.7, 1.0], [1, 1, 6, 1]);
  close(data(solarize(x)), [0.2, 0.49, 0.5, 0.49, 0.3, 0.0], 1e-6, 'solarize');
  close(data(solarize(x, 0.75)), [0.2, 0.49, 0.5, 0.51, 0.7, 0.0], 1e-6, 'solarize 0.75');
  x.dispose();
});

/** Reference for applyViewPlan: one image at a time with the single-op functions. */
function sequentialReference(images: tf.Tensor4D, plan: ViewPlan, view: ViewConfig, norm: { mean: number[]; std: number[] } | null): tf.Tensor4D {
  return tf.tidy(() => {
    const B = images.shape[0];
    const C = images.shape[3];
    const outs: tf.Tensor4D[] = [];
    for (let b = 0; b < B; b++) {
      const one = tf.slice(images, [b, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
      let x = resizedCrops(one, [plan.boxes[b]], view.size);
      const j = plan.jitter[b];
      if (j) {
        for (const op of j.order) {
          if (op === 0) x = adjustBrightness(x, [j.brightness]);
          if (op === 1) x = adjustContrast(x, [j.contrast]);
          if (op === 2) x = adjustSaturation(x, [j.saturation]);
          if (op === 3) x = adjustHue(x, [j.hue]);
        }
      }
      if (plan.grayscale[b] && C === 3) x = tf.tile(rgbToGrayscale(x), [1, 1, 1, 3]) as tf.Tensor4D;
      const s = plan.blurSigma[b];
      if (s !== null) x = gaussianBlur(x, [s]);
      if (plan.solarize[b]) x = solarize(x, view.solarizeThreshold);
      if (norm) x = normalizeImages(x, norm);
      outs.push(x);
    }
    return tf.concat(outs, 0) as tf.Tensor4D;
  });
}

test('batched plan application equals per-image sequential application (RGB and grayscale)', async () => {
  const rng = new Rng(12);
  for (const C of [3, 1]) {
    const x = tf.randomUniform([12, 20, 16, C], 0, 1, 'float32', 6 + C) as tf.Tensor4D;
    // high probabilities so every op and every jitter order is exercised
    const view = plainView(10, {
      scale: [0.2, 1],
      ratio: [3 / 4, 4 / 3],
      flipProb: 0.5,
      colorJitter: { prob: 0.9, brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 },
      grayscaleProb: 0.3,
      blurProb: 0.5,
      solarizeProb: 0.4,
    });
    const plan = sampleViewPlan(12, 20, 16, view, rng);
    const norm = C === 3 ? { mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] } : { mean: [0.3], std: [0.35] };
    const ours = applyViewPlan(x, plan, view, norm);
    const ref = sequentialReference(x, plan, view, norm);
    close(data(ours), data(ref), 2e-5, `C=${C}`);
    tf.dispose([x, ours, ref]);
  }
});

test('grayscale input: saturation and hue leave the crop unchanged', async () => {
  const x = tf.randomUniform([2, 8, 8, 1], 0, 1, 'float32', 13) as tf.Tensor4D;
  const boxes: CropBox[] = [0, 1].map(() => ({ top: 1, left: 0, height: 6, width: 7, flip: false }));
  const plan: ViewPlan = {
    boxes,
    jitter: [0, 1].map(() => ({ order: [2, 3, 0, 1], brightness: 1, contrast: 1, saturation: 0.1, hue: 0.3 })),
    grayscale: [true, true],
    blurSigma: [null, null],
    solarize: [false, false],
  };
  const out = applyViewPlan(x, plan, plainView(6), null);
  const crop = resizedCrops(x, boxes, 6);
  close(data(out), data(crop), 1e-6, 'gray jitter');
  tf.dispose([x, out, crop]);
});

test('sampled plans follow the configured probabilities', async () => {
  const rng = new Rng(21);
  const view = viewConfigs(multiCropConfig()).global[1]; // blur 0.1, solarize 0.2
  const n = 6000;
  const plan = sampleViewPlan(n, 64, 64, view, rng);
  const rate = (xs: boolean[]) => xs.filter(Boolean).length / n;
  const within = (p: number, q: number, what: string) =>
    assert.ok(Math.abs(p - q) < 4 * Math.sqrt((q * (1 - q)) / n), `${what}: ${p} vs ${q}`);
  within(rate(plan.boxes.map((b) => b.flip)), 0.5, 'flip');
  within(rate(plan.jitter.map((j) => j !== null)), 0.8, 'jitter');
  within(rate(plan.grayscale), 0.2, 'grayscale');
  within(rate(plan.blurSigma.map((s) => s !== null)), 0.1, 'blur');
  within(rate(plan.solarize), 0.2, 'solarize');
  for (const j of plan.jitter) {
    if (!j) continue;
    assert.deepEqual([...j.order].sort(), [0, 1, 2, 3]);
    assert.ok(j.brightness >= 0.6 && j.brightness <= 1.4 && j.contrast >= 0.6 && j.contrast <= 1.4);
    assert.ok(j.saturation >= 0.8 && j.saturation <= 1.2 && Math.abs(j.hue) <= 0.1);
  }
  for (const s of plan.blurSigma) if (s !== null) assert.ok(s >= 0.1 && s <= 2);
  // every op is first in about a quarter of the jittered images
  const first = [0, 0, 0, 0];
  const jittered = plan.jitter.filter((j) => j !== null);
  for (const j of jittered) first[j!.order[0]]++;
  for (const f of first) within(f / jittered.length, 0.25, 'order');
});

test('view settings follow DataAugmentationiBOT: blur 1 / 0.1 / 0.5, solarize only on later globals', async () => {
  const v = viewConfigs(multiCropConfig({ globalCrops: 3, localCrops: 2 }));
  assert.deepEqual(v.global.map((g) => [g.size, g.blurProb, g.solarizeProb]), [
    [224, 1, 0],
    [224, 0.1, 0.2],
    [224, 0.1, 0.2],
  ]);
  assert.deepEqual(v.local.map((l) => [l.size, l.blurProb, l.solarizeProb]), [
    [96, 0.5, 0],
    [96, 0.5, 0],
  ]);
  assert.deepEqual(DEFAULT_MULTICROP.globalScale, [0.25, 1]);
  assert.deepEqual(DEFAULT_MULTICROP.localScale, [0.05, 0.25]);
});

test('multiCrop: shapes, [0, 1] range before normalisation, normalisation, determinism, no leaks', async () => {
  const gray = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 14) as tf.Tensor4D;
  const rgb = tf.randomUniform([3, 32, 32, 3], 0, 1, 'float32', 15) as tf.Tensor4D;
  for (const [imgs, preset, g, l, C] of [
    [gray, 'gray28', 28, 12, 1],
    [rgb, 'rgb32', 32, 16, 3],
  ] as const) {
    const raw = multiCropPreset(preset, { normalize: 'none', localCrops: 4 });
    const normed = multiCropPreset(preset, { localCrops: 4 });
    const B = imgs.shape[0];
    const a = multiCrop(imgs, raw, new Rng(77));
    assert.equal(a.global.length, 2);
    assert.equal(a.local.length, 4);
    for (const t of a.global) assert.deepEqual(t.shape, [B, g, g, C]);
    for (const t of a.local) assert.deepEqual(t.shape, [B, l, l, C]);
    for (const t of [...a.global, ...a.local]) {
      const v = data(t);
      assert.ok(v.every((x) => x >= 0 && x <= 1), 'values in [0, 1]');
    }
    // same seed: identical; the normalised run is the raw run standardised
    const b = multiCrop(imgs, raw, new Rng(77));
    const n = multiCrop(imgs, normed, new Rng(77));
    const norm = normed.normalize as { mean: number[]; std: number[] };
    [...a.global, ...a.local].forEach((t, i) => {
      close(data([...b.global, ...b.local][i]), data(t), 0, 'determinism');
      const expect = tf.tidy(() => tf.div(tf.sub(t, norm.mean), norm.std));
      close(data([...n.global, ...n.local][i]), data(expect), 1e-5, 'normalise');
      expect.dispose();
    });
    const c = multiCrop(imgs, raw, new Rng(78));
    assert.ok(data(c.global[0]).some((v, i) => v !== data(a.global[0])[i]), 'different seed, different crops');
    [a, b, n, c].forEach(disposeViews);

    // repeated calls allocate nothing beyond what they return
    const rng = new Rng(5);
    const before = tf.memory().numTensors;
    for (let r = 0; r < 3; r++) disposeViews(multiCrop(imgs, normed, rng));
    assert.equal(tf.memory().numTensors, before);
  }
  tf.dispose([gray, rgb]);
});

test('augmentView advances the rng like sampleViewPlan and rejects bad input clearly', async () => {
  const x = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 16) as tf.Tensor4D;
  const view = viewConfigs(multiCropPreset('rgb32')).local[0];
  const r1 = new Rng(3);
  const r2 = new Rng(3);
  const out = augmentView(x, view, r1, null);
  const plan = sampleViewPlan(2, 16, 16, view, r2);
  const ref = applyViewPlan(x, plan, view, null);
  close(data(out), data(ref), 0, 'augmentView');
  assert.deepEqual(r1.getState(), r2.getState());
  const ints = tf.zeros([1, 8, 8, 3], 'int32') as tf.Tensor4D;
  assert.throws(() => multiCrop(ints, multiCropPreset('rgb32'), new Rng(1)), /float32/);
  assert.throws(() => multiCrop(x, multiCropPreset('gray28'), new Rng(1)), /channel/);
  assert.throws(() => multiCropConfig({ flipProb: 2 }), /probability/);
  assert.throws(() => multiCropConfig({ globalScale: [0.9, 0.2] }), /scale/);
  tf.dispose([x, out, ref, ints]);
});

test('ibotBatch: views plus one [B, N] mask per global view, nothing leaked', async () => {
  const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 17) as tf.Tensor4D;
  const opts = { multiCrop: multiCropPreset('gray28', { localCrops: 2 }), masking: maskingConfig(), patchSize: 4 };
  const before = tf.memory().numTensors;
  const b = ibotBatch(x, opts, new Rng(4));
  // Views and masks stacked crop-major: rows 0–2 are view 0 of images 0–2, rows 3–5 view 1.
  assert.deepEqual(b.global.shape, [6, 28, 28, 1]);
  assert.deepEqual(b.local?.shape, [6, 12, 12, 1]);
  assert.deepEqual([b.numGlobal, b.numLocal], [2, 2]);
  assert.deepEqual(b.masks.shape, [6, 49]);
  assert.deepEqual(Array.from(b.masks.dataSync()), b.maskArrays.flat().flatMap((a) => Array.from(a)));
  // The stack holds exactly what multiCrop gives view by view from the same rng state.
  const views = multiCrop(x, opts.multiCrop, new Rng(4));
  const split = batchViews(b);
  [...views.global, ...views.local].forEach((v, i) => assert.deepEqual(Array.from([...split.global, ...split.local][i].dataSync()), Array.from(v.dataSync())));
  disposeViews(views);
  disposeViews(split);
  const late = ibotBatch(x, { ...opts, masking: maskingConfig({ predStartEpoch: 2 }), epoch: 1 }, new Rng(4));
  assert.ok(late.masks.dataSync().every((v) => v === 0));
  disposeIBOTBatch(b);
  disposeIBOTBatch(late);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => ibotBatch(x, { ...opts, patchSize: 5 }, new Rng(1)), /multiple of patch size/);
  x.dispose();
});
