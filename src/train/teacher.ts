/**
 * The teacher is an exponential moving average of the student (the "online
 * tokenizer" of iBOT): θ_t ← m·θ_t + (1−m)·θ_s, with m on a cosine schedule
 * from 0.996 to 1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ParamSet } from '../model/params';
import { FlatLayout } from './flat-params';
import { KERNEL_NAMES } from '../kernels/register';
import { fusedEma, hasKernel } from '../kernels/ops';

/**
 * EMA-update every teacher parameter that has a same-named student parameter:
 * one kernel over all of them on wasm, else as one flat vector (a few ops for
 * the whole model; see `flat-params.ts`).
 */
export function emaUpdate(teacher: ParamSet, student: ParamSet, momentum: number): void {
  const pairs = teacher.params.flatMap((t) => {
    const s = student.param(t.name);
    return s ? [{ t: t.variable, s: s.variable }] : [];
  });
  if (pairs.length === 0) return;
  tf.tidy(() => {
    let next: tf.Tensor[];
    if (hasKernel(KERNEL_NAMES.ema)) {
      // One kernel, one pass per parameter, straight from the parameters (wasm); the same values.
      next = fusedEma(pairs.map((p) => p.t), pairs.map((p) => p.s), momentum);
    } else {
      const layout = FlatLayout.of(pairs.map((p) => p.t));
      const t = layout.flatten(pairs.map((p) => p.t));
      const s = layout.flatten(pairs.map((p) => p.s));
      next = layout.unflatten(tf.add(tf.mul(t, momentum), tf.mul(s, 1 - momentum)) as tf.Tensor1D);
    }
    pairs.forEach((p, i) => p.t.assign(next[i]));
  });
}
