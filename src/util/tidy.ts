import * as tf from '@tensorflow/tfjs-core';

/**
 * `tf.tidy` for any return type. tfjs walks the returned value for tensors to
 * keep, whatever its shape, but its typing rejects objects with optional or
 * non-tensor fields; this keeps call sites typed without casts.
 */
export function tidy<T>(fn: () => T): T {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}
