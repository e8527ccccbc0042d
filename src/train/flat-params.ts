/**
 * Many tensors seen as one flat vector, and per-tensor reductions done a few
 * tensors at a time.
 *
 * The optimizer, the EMA teacher and gradient clipping touch every parameter
 * every step. Written per parameter, that is a chain of ~20 small ops for each
 * of 50–150 tensors; tfjs runs one kernel per op, and a GPU pays a fixed cost
 * for each dispatch whatever its size. On flat vectors the same arithmetic is
 * a dozen large ops per step, bit for bit the same element-wise results.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Where each tensor of a fixed list sits in the flat vector. */
export class FlatLayout {
  readonly shapes: number[][];
  readonly sizes: number[];
  readonly offsets: number[];
  /** Total number of elements. */
  readonly size: number;

  constructor(shapes: readonly (readonly number[])[]) {
    this.shapes = shapes.map((s) => [...s]);
    this.sizes = this.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    this.offsets = [];
    let off = 0;
    for (const n of this.sizes) {
      this.offsets.push(off);
      off += n;
    }
    this.size = off;
  }

  static of(tensors: readonly tf.Tensor[]): FlatLayout {
    return new FlatLayout(tensors.map((t) => t.shape));
  }

  /** The tensors' values end to end, as one new [size] tensor. */
  flatten(tensors: readonly tf.Tensor[]): tf.Tensor1D {
    this.check(tensors);
    return tf.tidy(() => {
      const flat = tensors.map((t) => tf.reshape(t, [-1]));
      return (flat.length === 1 ? flat[0].clone() : tf.concat(flat, 0)) as tf.Tensor1D;
    });
  }

  /** The pieces of a flat vector in their original shapes (new tensors). */
  unflatten(flat: tf.Tensor1D): tf.Tensor[] {
    if (flat.size !== this.size) throw new Error(`FlatLayout: vector of ${flat.size} elements for a layout of ${this.size}`);
    return tf.tidy(() => {
      const parts = this.sizes.length === 1 ? [flat] : tf.split(flat, this.sizes, 0);
      return parts.map((p, i) => tf.reshape(p, this.shapes[i]));
    });
  }

  /** Host-side pieces of flat values read back from the device (views, no copies). */
  split(values: Float32Array): Float32Array[] {
    return this.sizes.map((n, i) => values.subarray(this.offsets[i], this.offsets[i] + n));
  }

  private check(tensors: readonly tf.Tensor[]): void {
    if (tensors.length !== this.sizes.length || tensors.some((t, i) => t.size !== this.sizes[i])) {
      throw new Error(`FlatLayout: expected ${this.sizes.length} tensors of sizes [${this.sizes.join(', ')}], got [${tensors.map((t) => t.size).join(', ')}]`);
    }
  }
}

/**
 * Σx² of every tensor, as one [n] tensor in input order. Tensors of equal
 * size (the same layer in every block) are stacked and reduced in one op, so
 * the number of ops grows with the number of distinct sizes, not of tensors.
 */
export function sumSquares(tensors: readonly tf.Tensor[]): tf.Tensor1D {
  if (tensors.length === 0) return tf.zeros([0]) as tf.Tensor1D;
  return tf.tidy(() => {
    const bySize = new Map<number, number[]>();
    tensors.forEach((t, i) => bySize.set(t.size, [...(bySize.get(t.size) ?? []), i]));
    const order: number[] = [];
    const parts: tf.Tensor1D[] = [];
    for (const idx of bySize.values()) {
      order.push(...idx);
      const rows = idx.map((i) => tf.reshape(tensors[i], [1, -1]));
      const m = rows.length === 1 ? rows[0] : tf.concat(rows, 0);
      parts.push(tf.sum(tf.square(m), 1) as tf.Tensor1D);
    }
    const grouped = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor1D);
    if (order.every((v, i) => v === i)) return grouped;
    // Back to input order: position i of the result is grouped[where[i]].
    const where = new Int32Array(order.length);
    order.forEach((orig, pos) => (where[orig] = pos));
    return tf.gather(grouped, tf.tensor1d(where, 'int32')) as tf.Tensor1D;
  });
}
