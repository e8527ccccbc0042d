/** What the tests share: backend setup, finite differences, the reference fixtures, synthetic blobs. */
import * as path from 'node:path';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { Rng } from '../src/util/rng';
import { ParamSet } from '../src/model/params';
import { AdamW, Grads, clipCoefficients, clipPerParam } from '../src/train/optim';

/** The library's own backend selection (wasm in CI), quiet. */
export async function setup(): Promise<typeof tf> {
  await initBackend({ quiet: true });
  return tf;
}

/** Directional finite-difference check: returns |fd − analytic| / max(|fd|, |analytic|, 1e-3). */
export function fdDirectional(
  f: (x: tf.Tensor) => tf.Scalar,
  x: tf.Tensor,
  grad: tf.Tensor,
  seed: number,
  eps = 1e-2,
): { fd: number; analytic: number; relErr: number } {
  return tf.tidy(() => {
    const u = tf.randomNormal(x.shape, 0, 1, 'float32', seed);
    // float64 isn't available; central differences with a moderate step keep float32 noise small.
    const fp = f(tf.add(x, tf.mul(u, eps))).dataSync()[0];
    const fm = f(tf.sub(x, tf.mul(u, eps))).dataSync()[0];
    const fd = (fp - fm) / (2 * eps);
    const analytic = tf.sum(tf.mul(grad, u)).dataSync()[0];
    return { fd, analytic, relErr: Math.abs(fd - analytic) / Math.max(Math.abs(fd), Math.abs(analytic), 1e-3) };
  });
}

/**
 * The reference fixtures (numbers from an independent PyTorch / scikit-learn
 * implementation), kept in the repository so every check runs anywhere.
 * Compiled tests live in dist/test, so the path goes back to the sources.
 */
export const REFERENCE_DIR = path.resolve(__dirname, '..', '..', 'test', 'fixtures', 'reference');

/** The project's shared fixture folder (the same fixtures and, on some machines, more), when present. */
export const SHARED_REFERENCE_DIR = path.resolve(__dirname, '..', '..', '..', 'shared', 'reference');

/** k class centres in `dim` dimensions: uniform in [−sep, sep], Gaussian with scale `sep`, or unit vectors. */
export function blobCentres(rng: Rng, k: number, dim: number, kind: 'uniform' | 'normal' | 'unit', sep = 1): number[][] {
  return Array.from({ length: k }, () => {
    if (kind === 'uniform') return Array.from({ length: dim }, () => rng.uniform(-sep, sep));
    const v = Array.from({ length: dim }, () => rng.normal());
    if (kind === 'normal') return v.map((x) => sep * x);
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}

/**
 * Gaussian blobs: `perClass` points around each centre with noise `noise`,
 * interleaved by class so that cluster ids cannot simply follow row order.
 */
export function blobs(rng: Rng, centres: number[][], perClass: number, noise: number): { rows: number[][]; labels: number[]; centres: number[][] } {
  const k = centres.length;
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let i = 0; i < k * perClass; i++) {
    const c = i % k;
    rows.push(centres[c].map((x) => x + noise * rng.normal()));
    labels.push(c);
  }
  return { rows, labels, centres };
}

/** Relative L2 error ‖a − b‖ / ‖b‖: one number for how far a whole computed array is from a reference. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/**
 * Two sets of gradients (same names) agree: for each tensor the largest entry-wise
 * difference is at most `rel` times the largest |entry| of the first (floor 1e-6).
 * Throws an AssertionError naming the tensor otherwise.
 */
export async function assertSameGrads(a: tf.NamedTensorMap, b: tf.NamedTensorMap, rel = 1e-4): Promise<void> {
  for (const [name, g] of Object.entries(a)) {
    const [x, y] = [await g.data(), await b[name].data()];
    let diff = 0;
    let scale = 1e-6;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(x[i]));
    }
    assert.ok(diff <= rel * scale, `${name}: max |Δ| ${diff} of max |g| ${scale}`);
  }
}

/** Double-precision erf: power series near 0, continued fraction for erfc further out. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))) evaluated backwards
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/**
 * Three AdamW steps (lr 0.1, wd 0.05) on three parameters in two groups (decay: the weights;
 * none: the bias) with per-parameter clipping at 2.5, either as clipped gradients
 * (`clipPerParam`) or as factors AdamW applies (`clipCoefficients` + `step(…, scale)`); the
 * parameters' final values. `missing` leaves that parameter without a gradient, which sends its
 * group down AdamW's per-parameter path. Adam is blind to a constant factor on every step's
 * gradient, so the norms change from step to step (13 → clipped, 0.65 → not): a factor applied
 * wrongly or not at all changes the result.
 */
export async function clippedAdamW(folded: boolean, missing?: string): Promise<number[]> {
  const set = new ParamSet();
  set.add('a.weight', tf.tensor2d([[1, -2], [0.5, 3]]), 'same', [2, 2]);
  set.add('b.weight', tf.tensor2d([[2], [-1], [0.25]]), 'same', [3, 1]);
  set.add('a.bias', tf.tensor1d([0.1, -0.2]), 'same', [2]);
  const opt = new AdamW(set.params);
  for (let step = 0; step < 3; step++) {
    const f = step === 1 ? 0.05 : 1;
    const g: Grads = new Map<string, tf.Tensor>([
      ['a.weight', tf.tensor2d([[3 * f, 4 * f], [0, 12 * f]])],
      ['b.weight', tf.tensor2d([[0.1 * f], [0.2], [-0.2]])],
      ['a.bias', tf.tensor1d([30 * f, -40])],
    ]);
    if (missing) {
      g.get(missing)?.dispose();
      g.delete(missing);
    }
    if (folded) {
      const { scale, norms } = clipCoefficients(g, 2.5);
      opt.step(g, 0.1, 0.05, scale);
      tf.dispose([...g.values(), scale.coef, norms]);
    } else {
      const c = clipPerParam(g, 2.5);
      opt.step(c.grads, 0.1, 0.05);
      tf.dispose([...c.grads.values(), c.norms]);
    }
  }
  const values = [...(await set.get('a.weight').data()), ...(await set.get('b.weight').data()), ...(await set.get('a.bias').data())];
  opt.dispose();
  set.dispose();
  return values;
}
