/**
 * The iBOT objective (official `iBOTLoss`), read alongside the paper:
 *
 *   L_[CLS] = mean over pairs (q teacher global crop, v student crop, v ≠ q) of
 *             mean_b  H(softmax((t_q − c) / τ_t), log_softmax(s_v / τ_s))
 *   L_MIM   = mean over global crops q, images b of
 *             Σ_masked patches H(softmax((t̂_q − c') / τ'_t), log_softmax(ŝ_q / τ_s)) / max(1, #masked)
 *   L = λ1·L_[CLS] + λ2·L_MIM
 *
 * The teacher's outputs are centered (c, c': EMAs of its own outputs) and
 * sharpened (τ_t < τ_s) to avoid collapse; the centers move after each loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import '../util/gradients';
import { teacherTempSchedule } from './schedules';
import type { PatchRows } from './patch-rows';

export interface IBOTLossConfig {
  /** [CLS] prototypes (K). */
  outDim: number;
  /** Patch prototypes (K'). */
  patchOutDim: number;
  globalCrops: number;
  localCrops: number;
  /** τ_s (official 0.1). */
  studentTemp: number;
  /** τ_t warm-up start and final value (official 0.04 → 0.04 for ViT-S, 0.07 for ViT-B). */
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherPatchTemp: number;
  teacherPatchTemp: number;
  warmupTeacherTempEpochs: number;
  epochs: number;
  /** λ1 ([CLS]) and λ2 (MIM) weights (official 1, 1). */
  lambda1: number;
  lambda2: number;
  /** EMA momentum of both centers (official 0.9). */
  centerMomentum: number;
  /**
   * Epochs before masked image modelling starts (official `pred_start_epoch`, default 0): the
   * patch temperature stays at its warm-up value until then and its warm-up starts there, as the
   * official `iBOTLoss(mim_start_epoch=…)` schedules it. Optional for fixtures that predate it.
   */
  mimStartEpoch?: number;
  /**
   * How teacher outputs become targets. 'ema' (the paper): subtract the EMA
   * centre, then softmax. 'sinkhorn-knopp' (DINOv2): a few Sinkhorn-Knopp
   * iterations make every prototype equally used across the batch, so the
   * targets cannot collapse and need no warm-up of the centre; patch targets
   * are balanced over the masked patches only, as DINOv2 does. Default 'ema'.
   */
  centering?: 'ema' | 'sinkhorn-knopp';
  /** Sinkhorn-Knopp iterations (DINOv2: 3). */
  sinkhornIterations?: number;
  /**
   * Weight of the KoLeo regulariser on the student's global-crop [CLS]
   * features (DINOv2: 0.1): −mean log distance to the nearest neighbour in the
   * batch, which spreads features out. Default 0 (off).
   */
  koleoWeight?: number;
}

/** The official loss settings (ViT-S/16); the run supplies prototype and crop counts, epochs and the MIM start. */
export const LOSS_DEFAULTS: Omit<IBOTLossConfig, 'outDim' | 'patchOutDim' | 'epochs' | 'globalCrops' | 'localCrops' | 'mimStartEpoch'> = {
  studentTemp: 0.1,
  warmupTeacherTemp: 0.04,
  teacherTemp: 0.04,
  warmupTeacherPatchTemp: 0.04,
  teacherPatchTemp: 0.07,
  warmupTeacherTempEpochs: 30,
  lambda1: 1,
  lambda2: 1,
  centerMomentum: 0.9,
};

export interface StudentOutputs {
  /** [CLS] scores of every crop, crop-major: [(G+L)·B, K]. */
  cls: tf.Tensor2D;
  /** Patch scores of the (masked) global crops: [G·B, N, K']. */
  patch: tf.Tensor3D;
  /** The backbone's [CLS] of the global crops [G·B, D], before the head (for KoLeo). */
  backboneCls?: tf.Tensor2D;
}

/** Student outputs with patches on the selected rows only (`train/patch-rows.ts`). */
export interface StudentRowOutputs {
  /** [CLS] scores of every crop, crop-major: [(G+L)·B, K]. */
  cls: tf.Tensor2D;
  /** Patch scores of the selected (masked) patches [M, K']. */
  patch: tf.Tensor2D;
  backboneCls?: tf.Tensor2D;
}

export interface TeacherOutputs {
  /** [G·B, K] */
  cls: tf.Tensor2D;
  /** [G·B, N, K'] */
  patch: tf.Tensor3D;
}

export interface LossValue {
  cls: tf.Scalar;
  patch: tf.Scalar;
  /** The weighted KoLeo term (0 when off). */
  koleo: tf.Scalar;
  total: tf.Scalar;
}

/**
 * Sinkhorn-Knopp normalisation of teacher scores [M, K] (DINOv2's
 * `sinkhorn_knopp_teacher`): exp(x/τ), then alternately make every prototype
 * (column) hold 1/K of the mass and every sample (row) 1/M; rows of the
 * result sum to 1. With `rowWeights` (0/1, e.g. the MIM mask) only those rows
 * take part, and the others come back as zeros.
 */
export function sinkhornKnopp(scores: tf.Tensor2D, temp: number, iterations = 3, rowWeights?: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const [M, K] = scores.shape;
    const x = tf.div(scores, temp);
    // exp of the scores shifted by their maximum: the same after normalisation, never overflows.
    let q = tf.exp(tf.sub(x, tf.max(x)));
    let rows: tf.Scalar | number = M;
    if (rowWeights) {
      q = tf.mul(q, tf.reshape(rowWeights, [M, 1]));
      rows = tf.sum(rowWeights) as tf.Scalar;
    }
    q = tf.div(q, tf.sum(q));
    for (let i = 0; i < iterations; i++) {
      q = tf.div(tf.div(q, tf.maximum(tf.sum(q, 0, true), 1e-30)), K);
      q = tf.div(tf.div(q, tf.maximum(tf.sum(q, 1, true), 1e-30)), rows);
    }
    return tf.mul(q, rows) as tf.Tensor2D;
  });
}

/**
 * KoLeo (DINOv2, after Sablayrolles et al. 2019): for L2-normalised rows,
 * −mean log ‖x_i − x_nn(i) + ε‖ where nn(i) is the most similar other row.
 * Low when every feature has a neighbour far away: it spreads the batch out.
 */
export function koleoLoss(x: tf.Tensor2D, eps = 1e-8): tf.Scalar {
  // The gradient is written out: autodiff of the same ops launches about 140 kernels for a
  // [32, 128] batch (8 ms a step of the `fashion-mnist` preset on wasm, for a few thousand
  // numbers); this is about 50. The nearest neighbour is piecewise constant, so no gradient flows
  // through the choice: for d_i = ‖z_i − z_nn(i) + ε‖ and L = −mean log(d_i + ε), ∂L/∂z_i gets
  // +g_i and ∂L/∂z_nn(i) gets −g_i, with g_i = −(z_i − z_nn(i) + ε) / (n·d_i·(d_i + ε)); then
  // through z = x / max(‖x‖, ε): (G − z·⟨z, G⟩) / ‖x‖ per row (G / ε where ‖x‖ ≤ ε).
  const f = tf.customGrad(((xs: tf.Tensor, save: tf.GradSaveFunc) => {
    const n = xs.shape[0];
    const norm = tf.sqrt(tf.sum(tf.square(xs), 1, true));
    const z = tf.div(xs, tf.maximum(norm, eps));
    // The nearest neighbour by cosine, the row itself excluded (as DINOv2: diagonal set to −1),
    // as a one-hot matrix: the neighbours' rows are one product, and so is the gradient's scatter.
    // (int32, then cast: the wasm backend's OneHot writes integers even when asked for float32.)
    const dots = tf.sub(tf.matMul(z, z, false, true), tf.mul(tf.eye(n), 2));
    const pick = tf.cast(tf.oneHot(tf.argMax(dots, 1), n), 'float32');
    const diff = tf.add(tf.sub(z, tf.matMul(pick, z)), eps);
    const d = tf.sqrt(tf.sum(tf.square(diff), 1, true));
    save([norm, z, pick, diff, d]);
    return {
      value: tf.neg(tf.mean(tf.log(tf.add(d, eps)))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [nrm, zs, pk, df, dd] = saved;
        const g = tf.mul(df, tf.div(tf.mul(dy, -1 / n), tf.mul(dd, tf.add(dd, eps))));
        const gz = tf.sub(g, tf.matMul(pk, g, true, false));
        // ⟨z, G⟩ only where the norm is above ε (below, z = x/ε is linear in x): a mask on [n, 1].
        const radial = tf.mul(tf.sum(tf.mul(zs, gz), 1, true), tf.cast(tf.greater(nrm, eps), 'float32'));
        return [tf.div(tf.sub(gz, tf.mul(zs, radial)), tf.maximum(nrm, eps))];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Scalar;
}

export class IBOTLoss {
  readonly config: IBOTLossConfig;
  readonly center: tf.Variable;
  readonly patchCenter: tf.Variable;
  private readonly temps: Float64Array;
  private readonly patchTemps: Float64Array;

  constructor(config: IBOTLossConfig) {
    this.config = config;
    this.center = tf.tidy(() => tf.variable(tf.zeros([1, config.outDim]), false));
    this.patchCenter = tf.tidy(() => tf.variable(tf.zeros([1, config.patchOutDim]), false));
    this.temps = teacherTempSchedule(config.warmupTeacherTemp, config.teacherTemp, config.warmupTeacherTempEpochs, config.epochs);
    this.patchTemps = teacherTempSchedule(config.warmupTeacherPatchTemp, config.teacherPatchTemp, config.warmupTeacherTempEpochs, config.epochs, config.mimStartEpoch ?? 0);
  }

  teacherTemp(epoch: number): number {
    return this.temps[Math.min(Math.max(0, Math.floor(epoch)), this.temps.length - 1)];
  }

  teacherPatchTemp(epoch: number): number {
    return this.patchTemps[Math.min(Math.max(0, Math.floor(epoch)), this.patchTemps.length - 1)];
  }

  /**
   * Centered, sharpened teacher distributions (constants for the student's
   * gradient). With Sinkhorn-Knopp centering, `masks` [G·B, N] limit the patch
   * balancing to the masked patches (all patches without them).
   */
  teacherTargets(teacher: TeacherOutputs, epoch: number, masks?: tf.Tensor2D): { cls: tf.Tensor2D; patch: tf.Tensor3D } {
    return tf.tidy(() => {
      const [GB, N, K] = teacher.patch.shape;
      const real = masks ? (tf.reshape(tf.cast(masks, 'float32'), [GB * N]) as tf.Tensor1D) : undefined;
      const t = this.teacherRowTargets({ cls: teacher.cls, patch: tf.reshape(teacher.patch, [GB * N, K]) as tf.Tensor2D }, epoch, { real });
      return { cls: t.cls, patch: tf.reshape(t.patch, [GB, N, K]) as tf.Tensor3D };
    });
  }

  /**
   * The loss given teacher targets (from `teacherTargets`) and masks [G·B, N]
   * (1 = masked). Differentiable in the student outputs; centers untouched.
   */
  compute(student: StudentOutputs, targets: { cls: tf.Tensor2D; patch: tf.Tensor3D }, masks: tf.Tensor2D): LossValue {
    const GB = this.checkCls(student.cls, targets.cls);
    if (student.patch.shape[0] !== GB || masks.shape[0] !== GB || masks.shape[1] !== student.patch.shape[1]) {
      throw new Error(`patch outputs [${student.patch.shape}] and masks [${masks.shape}] must both cover G·B = ${GB} images of the same patches`);
    }
    const { studentTemp, lambda2 } = this.config;
    return tf.tidy(() => {
      const clsLoss = this.clsTerm(student.cls, targets.cls);
      // MIM: per-patch cross-entropy of the same global crop, averaged over its masked patches.
      const logP = tf.logSoftmax(tf.div(student.patch, studentTemp));
      const perPatch = tf.neg(tf.sum(tf.mul(targets.patch, logP), -1)) as tf.Tensor2D;
      const m = tf.cast(masks, 'float32');
      const perImage = tf.div(tf.sum(tf.mul(perPatch, m), -1), tf.maximum(tf.sum(m, -1), 1));
      const patchLoss = tf.mul(tf.mean(perImage), lambda2) as tf.Scalar;
      const koleo = this.koleoTerm(student.backboneCls);
      return { cls: clsLoss, patch: patchLoss, koleo, total: tf.addN([clsLoss, patchLoss, koleo]) as tf.Scalar };
    });
  }

  /**
   * The same loss from the masked patches alone (`train/patch-rows.ts`): student
   * patch scores and teacher patch targets [M, K'] on the selected rows, each row
   * weighted by `rows.weight`. Equal to `compute` on full outputs, with the head
   * run on a fraction of the patches.
   */
  computeRows(student: StudentRowOutputs, targets: { cls: tf.Tensor2D; patch: tf.Tensor2D }, rows: Pick<PatchRows, 'weight'>): LossValue {
    this.checkCls(student.cls, targets.cls);
    const M = rows.weight.shape[0];
    if (student.patch.shape[0] !== M || targets.patch.shape[0] !== M) {
      throw new Error(`patch rows: student [${student.patch.shape}], teacher [${targets.patch.shape}] and ${M} row weights must agree`);
    }
    const { studentTemp, lambda2 } = this.config;
    return tf.tidy(() => {
      const clsLoss = this.clsTerm(student.cls, targets.cls);
      const logP = tf.logSoftmax(tf.div(student.patch, studentTemp));
      const perRow = tf.neg(tf.sum(tf.mul(targets.patch, logP), -1));
      const patchLoss = tf.mul(tf.sum(tf.mul(perRow, rows.weight)), lambda2) as tf.Scalar;
      const koleo = this.koleoTerm(student.backboneCls);
      return { cls: clsLoss, patch: patchLoss, koleo, total: tf.addN([clsLoss, patchLoss, koleo]) as tf.Scalar };
    });
  }

  /**
   * Teacher targets for patch rows: teacher [CLS] scores [G·B, K] and patch
   * scores [M, K'] (the selected rows of the step, or every patch flattened, as
   * `teacherTargets` passes them). Sinkhorn-Knopp balances over the rows where
   * `rows.real` is 1 (the masked ones), over all rows without it.
   */
  teacherRowTargets(teacher: { cls: tf.Tensor2D; patch: tf.Tensor2D }, epoch: number, rows: { real?: tf.Tensor1D }): { cls: tf.Tensor2D; patch: tf.Tensor2D } {
    const cfg = this.config;
    if (cfg.centering === 'sinkhorn-knopp') {
      const it = cfg.sinkhornIterations ?? 3;
      return tf.tidy(() => ({
        cls: sinkhornKnopp(teacher.cls, this.teacherTemp(epoch), it),
        patch: sinkhornKnopp(teacher.patch, this.teacherPatchTemp(epoch), it, rows.real),
      }));
    }
    return tf.tidy(() => ({
      cls: tf.softmax(tf.div(tf.sub(teacher.cls, this.center), this.teacherTemp(epoch))) as tf.Tensor2D,
      patch: tf.softmax(tf.div(tf.sub(teacher.patch, this.patchCenter), this.teacherPatchTemp(epoch))) as tf.Tensor2D,
    }));
  }

  /** Rows of the [CLS] scores: (G+L)·B for the student, G·B for the teacher; returns G·B. */
  private checkCls(studentCls: tf.Tensor2D, teacherCls: tf.Tensor2D): number {
    const { globalCrops: G, localCrops: L } = this.config;
    const GB = teacherCls.shape[0];
    const B = GB / G;
    if (!Number.isInteger(B) || studentCls.shape[0] !== (G + L) * B) {
      throw new Error(`student cls has ${studentCls.shape[0]} rows and teacher ${GB}; expected (G+L)·B = ${G + L}·B and G·B = ${G}·B rows`);
    }
    return GB;
  }

  /** λ1 · L_[CLS]: cross-entropy of every (teacher crop q, student crop v ≠ q) pair, averaged. */
  private clsTerm(studentCls: tf.Tensor2D, targetCls: tf.Tensor2D): tf.Scalar {
    const { globalCrops: G, localCrops: L, studentTemp, lambda1 } = this.config;
    const V = G + L;
    const B = targetCls.shape[0] / G;
    const K = studentCls.shape[1];
    // All pairs as one matMul, C[q, v] = −Σ_b,k t[q,b,k]·log s[v,b,k] / B, then the off-diagonal pairs are averaged.
    const logS = tf.logSoftmax(tf.div(studentCls, studentTemp));
    const C = tf.div(tf.neg(tf.matMul(tf.reshape(targetCls, [G, B * K]), tf.reshape(logS, [V, B * K]), false, true)), B);
    const offDiag = new Float32Array(G * V);
    for (let q = 0; q < G; q++) for (let v = 0; v < V; v++) offDiag[q * V + v] = q === v ? 0 : 1;
    const pairs = G * V - G;
    return tf.mul(tf.div(tf.sum(tf.mul(C, tf.tensor2d(offDiag, [G, V]))), pairs), lambda1) as tf.Scalar;
  }

  /** KoLeo on each global crop's batch of backbone [CLS] features, summed over crops (DINOv2); 0 when off. */
  private koleoTerm(backboneCls: tf.Tensor2D | undefined): tf.Scalar {
    const w = this.config.koleoWeight ?? 0;
    if (w <= 0) return tf.scalar(0);
    if (!backboneCls) throw new Error('koleoWeight > 0 needs the student backbone [CLS] features (StudentOutputs.backboneCls)');
    const parts = tf.split(backboneCls, this.config.globalCrops, 0) as tf.Tensor2D[];
    return tf.mul(tf.addN(parts.map((p) => koleoLoss(p))), w) as tf.Scalar;
  }

  /** Loss from raw teacher outputs; convenience for evaluation and the reference check. */
  forward(student: StudentOutputs, teacher: TeacherOutputs, masks: tf.Tensor2D, epoch: number): LossValue {
    const targets = this.teacherTargets(teacher, epoch, masks);
    try {
      return this.compute(student, targets, masks);
    } finally {
      targets.cls.dispose();
      targets.patch.dispose();
    }
  }

  /** EMA of the teacher's mean [CLS] output and mean patch output (after the loss, as the official code). */
  updateCenter(teacher: TeacherOutputs): void {
    tf.tidy(() => this.updateCenterFromMeans(tf.mean(teacher.cls, 0, true) as tf.Tensor2D, tf.reshape(tf.mean(teacher.patch, [0, 1]), [1, -1]) as tf.Tensor2D));
  }

  /** The same from the means themselves: [CLS] [1, K] and, when given, patches [1, K'] (the patch center stays otherwise). */
  updateCenterFromMeans(clsMean: tf.Tensor2D, patchMean?: tf.Tensor2D): void {
    const m = this.config.centerMomentum;
    tf.tidy(() => {
      this.center.assign(tf.add(tf.mul(this.center, m), tf.mul(clsMean, 1 - m)));
      if (patchMean) this.patchCenter.assign(tf.add(tf.mul(this.patchCenter, m), tf.mul(patchMean, 1 - m)));
    });
  }

  /** Load saved centers (checkpoint resume). */
  setCenters(center: Float32Array, patchCenter: Float32Array): void {
    tf.tidy(() => {
      this.center.assign(tf.tensor2d(center, [1, center.length]));
      this.patchCenter.assign(tf.tensor2d(patchCenter, [1, patchCenter.length]));
    });
  }

  dispose(): void {
    this.center.dispose();
    this.patchCenter.dispose();
  }
}
