/**
 * The teacher is an exponential moving average of the student (the "online
 * tokenizer" of iBOT): θ_t ← m·θ_t + (1−m)·θ_s, with m on a cosine schedule
 * from 0.996 to 1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ParamSet } from '../model/params';

/** EMA-update every teacher parameter that has a same-named student parameter. */
export function emaUpdate(teacher: ParamSet, student: ParamSet, momentum: number): void {
  tf.tidy(() => {
    for (const t of teacher.params) {
      const s = student.param(t.name);
      if (!s) continue;
      t.variable.assign(tf.add(tf.mul(t.variable, momentum), tf.mul(s.variable, 1 - momentum)));
    }
  });
}
