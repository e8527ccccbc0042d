/** Throughput probe for benchmarks: how fast the active backend multiplies matrices. */
import * as tf from '@tensorflow/tfjs-core';
import { median } from '../util/stats';

/**
 * GFLOP/s of a square 2-D float32 matMul (2·n³ flops each) on the current backend: one warm-up
 * product (kernel setup, wasm memory growth, shader compilation), then `iters` timed products,
 * each read back so asynchronous backends (webgpu, tfjs-node-gpu) are timed to completion. The
 * median time is used, so a burst of load from another process on a shared machine does not
 * drag the figure down.
 */
export async function measureMatMulPeak(size = 512, iters = 10): Promise<number> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`size must be a positive integer, got ${size}`);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`iters must be a positive integer, got ${iters}`);
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 1);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 2);
  try {
    const warm = tf.matMul(a, b);
    await warm.data();
    warm.dispose();
    const seconds: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      await c.data();
      seconds.push((performance.now() - t0) / 1000);
      c.dispose();
    }
    return (2 * size ** 3) / median(seconds) / 1e9;
  } finally {
    a.dispose();
    b.dispose();
  }
}
