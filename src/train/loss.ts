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
  total: tf.Scalar;
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

  /** Centered, sharpened teacher distributions (constants for the student's gradient). */
  teacherTargets(teacher: TeacherOutputs, epoch: number): { cls: tf.Tensor2D; patch: tf.Tensor3D } {
    return tf.tidy(() => ({
      cls: tf.softmax(tf.div(tf.sub(teacher.cls, this.center), this.teacherTemp(epoch))) as tf.Tensor2D,
      patch: tf.softmax(tf.div(tf.sub(teacher.patch, tf.reshape(this.patchCenter, [1, 1, -1])), this.teacherPatchTemp(epoch))) as tf.Tensor3D,
    }));
  }

  /**
   * The loss given teacher targets (from `teacherTargets`) and masks [G·B, N]
   * (1 = masked). Differentiable in the student outputs; centers untouched.
   */
  compute(student: StudentOutputs, targets: { cls: tf.Tensor2D; patch: tf.Tensor3D }, masks: tf.Tensor2D): LossValue {
    const { globalCrops: G, localCrops: L, studentTemp, lambda1, lambda2 } = this.config;
    const V = G + L;
    const GB = targets.cls.shape[0];
    const B = GB / G;
    const K = student.cls.shape[1];
    if (!Number.isInteger(B) || student.cls.shape[0] !== V * B) {
      throw new Error(`student cls has ${student.cls.shape[0]} rows and teacher ${GB}; expected (G+L)·B = ${V}·B and G·B = ${G}·B rows`);
    }
    if (student.patch.shape[0] !== GB || masks.shape[0] !== GB || masks.shape[1] !== student.patch.shape[1]) {
      throw new Error(`patch outputs [${student.patch.shape}] and masks [${masks.shape}] must both cover G·B = ${GB} images of the same patches`);
    }
    return tf.tidy(() => {
      // [CLS]: cross-entropy of every (teacher crop q, student crop v) pair as one matMul,
      // C[q, v] = −Σ_b,k t[q,b,k]·log s[v,b,k] / B, then the off-diagonal pairs are averaged.
      const logS = tf.logSoftmax(tf.div(student.cls, studentTemp));
      const C = tf.div(tf.neg(tf.matMul(tf.reshape(targets.cls, [G, B * K]), tf.reshape(logS, [V, B * K]), false, true)), B);
      const offDiag = new Float32Array(G * V);
      for (let q = 0; q < G; q++) for (let v = 0; v < V; v++) offDiag[q * V + v] = q === v ? 0 : 1;
      const pairs = G * V - G;
      const clsLoss = tf.mul(tf.div(tf.sum(tf.mul(C, tf.tensor2d(offDiag, [G, V]))), pairs), lambda1) as tf.Scalar;

      // MIM: per-patch cross-entropy of the same global crop, averaged over its masked patches.
      const logP = tf.logSoftmax(tf.div(student.patch, studentTemp));
      const perPatch = tf.neg(tf.sum(tf.mul(targets.patch, logP), -1)) as tf.Tensor2D;
      const m = tf.cast(masks, 'float32');
      const perImage = tf.div(tf.sum(tf.mul(perPatch, m), -1), tf.maximum(tf.sum(m, -1), 1));
      const patchLoss = tf.mul(tf.mean(perImage), lambda2) as tf.Scalar;
      return { cls: clsLoss, patch: patchLoss, total: tf.add(clsLoss, patchLoss) as tf.Scalar };
    });
  }

  /** Loss from raw teacher outputs; convenience for evaluation and the reference check. */
  forward(student: StudentOutputs, teacher: TeacherOutputs, masks: tf.Tensor2D, epoch: number): LossValue {
    const targets = this.teacherTargets(teacher, epoch);
    try {
      return this.compute(student, targets, masks);
    } finally {
      targets.cls.dispose();
      targets.patch.dispose();
    }
  }

  /** EMA of the teacher's mean [CLS] output and mean patch output (after the loss, as the official code). */
  updateCenter(teacher: TeacherOutputs): void {
    const m = this.config.centerMomentum;
    tf.tidy(() => {
      const c = tf.mean(teacher.cls, 0, true);
      const pc = tf.reshape(tf.mean(teacher.patch, [0, 1]), [1, -1]);
      this.center.assign(tf.add(tf.mul(this.center, m), tf.mul(c, 1 - m)));
      this.patchCenter.assign(tf.add(tf.mul(this.patchCenter, m), tf.mul(pc, 1 - m)));
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
