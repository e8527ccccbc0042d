/**
 * Reading tensor values back to the host. Only asynchronous reads work on
 * every backend: WebGPU in Node has no synchronous path (`dataSync` needs an
 * OffscreenCanvas), so the library reads with `await t.data()` everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The values of named tensors (as float32), read without blocking; the tensors are disposed. */
export async function readAndDispose<K extends string>(tensors: Record<K, tf.Tensor>): Promise<Record<K, Float32Array>> {
  const out = {} as Record<K, Float32Array>;
  try {
    for (const k of Object.keys(tensors) as K[]) {
      const v = await tensors[k].data();
      out[k] = v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
    }
  } finally {
    tf.dispose(Object.values(tensors) as tf.Tensor[]);
  }
  return out;
}
