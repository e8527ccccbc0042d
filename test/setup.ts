/** Shared test setup: the library's own backend selection (wasm in CI), quiet. */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';

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
