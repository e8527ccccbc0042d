import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { fdDirectional, setup } from './helpers';
import { IBOTLoss, LOSS_DEFAULTS, koleoLoss, sinkhornKnopp } from '../src/train/loss';
import { Rng } from '../src/util/rng';
import { teacherTempSchedule } from '../src/train/schedules';
import { modelConfig } from '../src/train/config';
import { pretrainPreset } from '../src/train/presets';
import { maskingConfig } from '../src/augment/masking';

before(setup);

const close = (a: ArrayLike<number>, e: number[]) => {
  assert.equal(a.length, e.length);
  for (let i = 0; i < e.length; i++) assert.ok(Math.abs(a[i] - e[i]) < 1e-12, `[${i}] ${a[i]} vs ${e[i]}`);
};

describe('teacher temperatures when masked image modelling starts late (official pred_start_epoch → mim_start_epoch)', () => {
  it('the warm-up value holds until the start, then the linear warm-up, then the final value', async () => {
    // linspace(0.04, 0.07, 3) = 0.04, 0.055, 0.07, beginning at epoch 2.
    close(teacherTempSchedule(0.04, 0.07, 3, 8, 2), [0.04, 0.04, 0.04, 0.055, 0.07, 0.07, 0.07, 0.07]);
    close(teacherTempSchedule(0.04, 0.07, 3, 8), [0.04, 0.055, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07]);
  });

  it('IBOTLoss delays only the patch temperature; the [CLS] one warms up from epoch 0', async () => {
    const loss = new IBOTLoss({ ...LOSS_DEFAULTS, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherPatchTemp: 0.04, teacherPatchTemp: 0.07, warmupTeacherTempEpochs: 3, outDim: 4, patchOutDim: 4, globalCrops: 2, localCrops: 0, epochs: 8, mimStartEpoch: 2 });
    const cls = [0, 1, 2, 3, 4].map((e) => loss.teacherTemp(e));
    const patch = [0, 1, 2, 3, 4].map((e) => loss.teacherPatchTemp(e));
    loss.dispose();
    close(cls, [0.04, 0.055, 0.07, 0.07, 0.07]);
    close(patch, [0.04, 0.04, 0.04, 0.055, 0.07]);
  });

  it("a run's masking.predStartEpoch reaches the loss through the model config", async () => {
    const cfg = pretrainPreset('fashion-mnist', { epochs: 20, masking: maskingConfig({ predStartEpoch: 5 }) });
    assert.equal(modelConfig(cfg).loss.mimStartEpoch, 5);
  });
});

/** DINOv2's sinkhorn_knopp_teacher, written out in float64 on plain arrays (rows × K), over the rows in `use`. */
function sinkhornRef(x: number[][], temp: number, iters: number, use: boolean[]): number[][] {
  const K = x[0].length;
  const rows = x.map((_, i) => i).filter((i) => use[i]);
  let q = rows.map((i) => x[i].map((v) => Math.exp(v / temp)));
  const total = q.flat().reduce((a, b) => a + b, 0);
  q = q.map((r) => r.map((v) => v / total));
  const B = rows.length;
  for (let t = 0; t < iters; t++) {
    const col = Array.from({ length: K }, (_, k) => q.reduce((a, r) => a + r[k], 0));
    q = q.map((r) => r.map((v, k) => v / col[k] / K));
    q = q.map((r) => {
      const s = r.reduce((a, b) => a + b, 0);
      return r.map((v) => v / s / B);
    });
  }
  const out = x.map((r) => r.map(() => 0));
  rows.forEach((i, j) => (out[i] = q[j].map((v) => v * B)));
  return out;
}

/** KoLeo of DINOv2 in float64: −mean log ‖z_i − z_nn(i) + ε‖ on L2-normalised rows. */
function koleoRef(x: number[][], eps = 1e-8): number {
  const z = x.map((r) => {
    const n = Math.max(Math.hypot(...r), eps);
    return r.map((v) => v / n);
  });
  let s = 0;
  z.forEach((zi, i) => {
    let best = -1;
    let bestDot = -Infinity;
    z.forEach((zj, j) => {
      const d = j === i ? -1 : zi.reduce((a, v, k) => a + v * zj[k], 0);
      if (d > bestDot) {
        bestDot = d;
        best = j;
      }
    });
    s += Math.log(Math.hypot(...zi.map((v, k) => v - z[best][k] + eps)) + eps);
  });
  return -s / z.length;
}

describe("DINOv2's recipe options", () => {
  const rng = new Rng(4);
  const rand = (r: number, c: number, scale = 1): number[][] => Array.from({ length: r }, () => Array.from({ length: c }, () => scale * rng.normal()));

  it('Sinkhorn-Knopp matches the algorithm written out in float64; rows sum to 1 and prototypes are near-evenly used', async () => {
    const x = rand(12, 5, 0.1);
    const got = tf.tidy(() => sinkhornKnopp(tf.tensor2d(x), 0.07, 3).arraySync());
    const want = sinkhornRef(x, 0.07, 3, x.map(() => true));
    for (let i = 0; i < 12; i++) for (let k = 0; k < 5; k++) assert.ok(Math.abs(got[i][k] - want[i][k]) < 2e-5, `[${i}][${k}] ${got[i][k]} vs ${want[i][k]}`);
    for (const row of got) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    const colMass = Array.from({ length: 5 }, (_, k) => got.reduce((a, r) => a + r[k], 0));
    for (const m of colMass) assert.ok(Math.abs(m - 12 / 5) < 0.2, `column mass ${m}`);
  });

  it('Sinkhorn-Knopp over the masked rows only gives those rows what the masked subset alone would, zeros elsewhere', async () => {
    const x = rand(10, 4, 0.1);
    const use = x.map((_, i) => i % 3 !== 1);
    const got = tf.tidy(() => sinkhornKnopp(tf.tensor2d(x), 0.1, 3, tf.tensor1d(use.map((u) => (u ? 1 : 0)))).arraySync());
    const want = sinkhornRef(x, 0.1, 3, use);
    for (let i = 0; i < 10; i++) for (let k = 0; k < 4; k++) assert.ok(Math.abs(got[i][k] - want[i][k]) < 2e-5);
  });

  it('the Sinkhorn-Knopp loss option makes balanced targets; EMA centering stays the default', async () => {
    const base = { ...LOSS_DEFAULTS, outDim: 6, patchOutDim: 6, globalCrops: 2, localCrops: 0, epochs: 1 };
    const teacher = { cls: tf.tensor2d(rand(8, 6)), patch: tf.tensor3d(rand(8 * 3, 6).flat(), [8, 3, 6]) };
    const ema = new IBOTLoss(base);
    const sk = new IBOTLoss({ ...base, centering: 'sinkhorn-knopp' });
    const a = ema.teacherTargets(teacher, 0);
    const b = sk.teacherTargets(teacher, 0);
    const softmax = tf.tidy(() => tf.softmax(tf.div(teacher.cls, 0.04)).arraySync()) as number[][];
    assert.deepEqual(a.cls.arraySync().map((r) => r.map((v) => Math.round(v * 1e5))), softmax.map((r) => r.map((v) => Math.round(v * 1e5))));
    const want = sinkhornRef(teacher.cls.arraySync(), 0.04, 3, Array(8).fill(true));
    b.cls.arraySync().forEach((r, i) => r.forEach((v, k) => assert.ok(Math.abs(v - want[i][k]) < 2e-5)));
    tf.dispose([teacher.cls, teacher.patch, a.cls, a.patch, b.cls, b.patch]);
    ema.dispose();
    sk.dispose();
  });

  it('KoLeo matches the float64 formula, and its gradient matches finite differences', async () => {
    const x = rand(9, 6);
    const got = tf.tidy(() => koleoLoss(tf.tensor2d(x)).arraySync());
    assert.ok(Math.abs(got - koleoRef(x)) < 1e-5 * Math.abs(koleoRef(x)) + 1e-6, `${got} vs ${koleoRef(x)}`);
    const xt = tf.tensor2d(x);
    const g = tf.grad((t: tf.Tensor) => koleoLoss(t as tf.Tensor2D))(xt);
    const { relErr } = fdDirectional((t) => koleoLoss(t as tf.Tensor2D), xt, g, 11, 1e-3);
    assert.ok(relErr < 2e-2, `finite differences: ${relErr}`);
    tf.dispose([xt, g]);
  });

  it('KoLeo is lower for spread-out features than for clustered ones', async () => {
    const spread = tf.tensor2d([[1, 0], [0, 1], [-1, 0], [0, -1]]);
    const clustered = tf.tensor2d([[1, 0], [1, 0.01], [0.99, 0.02], [1, -0.01]]);
    const [a, b] = tf.tidy(() => [koleoLoss(spread).arraySync(), koleoLoss(clustered).arraySync()]);
    assert.ok(a < b);
    tf.dispose([spread, clustered]);
  });
});
