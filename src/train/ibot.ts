/**
 * The iBOT student/teacher pair and one training step, in the order of the
 * paper's Algorithm 1:
 *
 *   teacher(global crops)                 → [CLS] + patch targets (no gradient)
 *   student(masked global crops, local crops)
 *   loss = λ1·L_[CLS] + λ2·L_MIM ;  backward ;  clip ;  freeze last layer (early)
 *   AdamW(lr, wd) ;  teacher ← EMA(student, m) ;  centers ← EMA(teacher outputs)
 *
 * Data preparation (crops, masks) happens before and is passed in, so this
 * module is pure model arithmetic that the pretraining loop, notebooks and the
 * benchmark all share.
 */
import * as tf from '@tensorflow/tfjs-core';
import { PackedRowsInput, VisionTransformer, ViTConfig } from '../model/vit';
import { HeadConfig, IBOTHead } from '../model/head';
import { Param } from '../model/params';
import { IBOTLoss, IBOTLossConfig, StudentOutputs, StudentRowOutputs } from './loss';
import { PatchRows, disposePatchRows, patchRows, selectMaskedPatches } from './patch-rows';
import { stackMasks } from '../augment/masking';
import { AdamW, GradScale, Grads, clipCoefficients, clipGlobalNorm, freezeLastLayer } from './optim';
import { emaUpdate } from './teacher';
import { tidy } from '../util/tidy';

export interface IBOTModelConfig {
  vit: ViTConfig;
  /** Student head; `inDim` comes from the backbone. */
  head: Omit<HeadConfig, 'inDim'>;
  /** The teacher's head shares its last layer between [CLS] and patches (official `shared_head_teacher`, default true). */
  sharedHeadTeacher: boolean;
  loss: Omit<IBOTLossConfig, 'outDim' | 'patchOutDim'>;
  /** Per-parameter gradient clipping (official `clip_grad` 3.0); 0 disables. */
  clipGrad: number;
  /** Global-norm clipping instead (0 disables; used when clipGrad is 0). */
  clipGlobalNorm: number;
  /** Epochs during which the prototypes get no gradient (official `freeze_last_layer` 1). */
  freezeLastLayerEpochs: number;
}

/** One batch's crops, stacked crop-major (all B images of crop 0, then crop 1, …) as `augment/ibotBatch` makes them. */
export interface Crops {
  /** G global crops [G·B, H, W, C]. */
  global: tf.Tensor4D;
  /** L local crops [L·B, h, w, C], or null without local crops. */
  local: tf.Tensor4D | null;
  /** Masks of the global crops [G·B, N], 1 = masked patch. */
  masks: tf.Tensor2D;
  /**
   * The same masks on the host, `[globalCrop][image]` (as `augment/ibotBatch` returns them). Optional:
   * without them `step` reads `masks` back once (a wait for the device on a GPU).
   */
  maskArrays?: Uint8Array[][];
}

export interface StepSchedule {
  lr: number;
  wd: number;
  /** Teacher EMA momentum. */
  momentum: number;
  /** Epoch (fractional allowed; floors for temperatures and freezing). */
  epoch: number;
}

export interface StepStats {
  loss: number;
  clsLoss: number;
  patchLoss: number;
  teacherTemp: number;
  teacherPatchTemp: number;
  /** Fraction of images where teacher and student [CLS] agree on the top prototype (global crops, cross-view). */
  agreement: number;
  /** Mean entropy of the teacher's [CLS] distributions (nats): → 0 when sharpening dominates. */
  teacherEntropy: number;
  /** Entropy of the teacher's mean [CLS] distribution (nats): → 0 when every image maps to one prototype (collapse). */
  teacherMeanEntropy: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The weighted KoLeo term of the loss (0 when off). */
  koleoLoss: number;
  /** Masked patches of the step: the rows the patch heads ran on (besides padding). */
  maskedPatches: number;
  /**
   * Phase timings in ms as the host sees them. On a GPU the host queues work
   * ahead of the device, so `optimizer` also holds the wait for the step's
   * results; pass `syncPhases` to `step` for device time per phase.
   */
  ms: { teacher: number; student: number; optimizer: number };
}

export class IBOTModel {
  readonly config: IBOTModelConfig;
  readonly student: { backbone: VisionTransformer; head: IBOTHead };
  readonly teacher: { backbone: VisionTransformer; head: IBOTHead };
  readonly loss: IBOTLoss;
  readonly optimizer: AdamW;
  /** Student parameters with their official names (`backbone.…`, `head.…`). */
  readonly studentParams: Param[];

  constructor(config: IBOTModelConfig, seed = 0) {
    this.config = config;
    const D = config.vit.embedDim;
    const headCfg: HeadConfig = { ...config.head, inDim: D };
    this.student = { backbone: new VisionTransformer(config.vit, seed), head: new IBOTHead(headCfg, seed + 1) };
    // The teacher starts as a copy of the student, without stochastic depth.
    this.teacher = {
      backbone: new VisionTransformer({ ...config.vit, dropPathRate: 0 }, seed),
      head: new IBOTHead({ ...headCfg, sharedHead: config.sharedHeadTeacher, patchOutDim: config.sharedHeadTeacher ? headCfg.outDim : headCfg.patchOutDim }, seed + 1),
    };
    this.teacher.backbone.params.copyFrom(this.student.backbone.params);
    this.teacher.head.params.copyFrom(this.student.head.params);
    this.loss = new IBOTLoss({ ...config.loss, outDim: config.head.outDim, patchOutDim: config.sharedHeadTeacher ? config.head.outDim : config.head.patchOutDim });
    this.studentParams = [
      ...this.student.backbone.params.params.map((p) => ({ ...p, name: `backbone.${p.name}` })),
      ...this.student.head.params.params.map((p) => ({ ...p, name: `head.${p.name}` })),
    ];
    this.optimizer = new AdamW(this.studentParams);
  }

  /** Teacher outputs on unmasked global crops [G·B, …]: [CLS] [G·B, K] and patches [G·B, N, K']. */
  teacherForward(global: tf.Tensor4D): { cls: tf.Tensor2D; patch: tf.Tensor3D } {
    return tf.tidy(() => this.teacher.head.forwardTokens(this.teacher.backbone.forward(global).tokens));
  }

  /** Student outputs: [CLS] of every crop (crop-major, globals first) and patches of the masked global crops. */
  studentForward(crops: Crops, seed = 0): StudentOutputs {
    return tidy(() => {
      const { tokens } = this.student.backbone.forward(crops.global, { masks: crops.masks, training: true, seed });
      const [GB, , D] = tokens.shape;
      const head = this.student.head.forwardTokens(tokens);
      // The backbone's [CLS] only when a loss term needs it (KoLeo), so nothing extra is kept otherwise.
      const out: StudentOutputs = (this.config.loss.koleoWeight ?? 0) > 0 ? { ...head, backboneCls: tf.reshape(tf.slice(tokens, [0, 0, 0], [GB, 1, D]), [GB, D]) as tf.Tensor2D } : head;
      if (!crops.local) return out;
      // Local crops: [CLS] only and no masking (official iBOT); the head runs on [CLS] alone.
      const lt = this.student.backbone.forward(crops.local, { training: true, seed: seed + 1 }).tokens;
      const lcls = tf.reshape(tf.slice(lt, [0, 0, 0], [lt.shape[0], 1, lt.shape[2]]), [lt.shape[0], lt.shape[2]]) as tf.Tensor2D;
      return { ...out, cls: tf.concat([out.cls, this.student.head.forwardCls(lcls)], 0) as tf.Tensor2D };
    });
  }

  /**
   * Teacher outputs on the selected patch rows (`train/patch-rows.ts`) of unmasked global crops:
   * [CLS] [G·B, K], patches [M, K'], and for the EMA centre the mean patch output [1, K'] over
   * all patches, computed as the prototype layer of the mean unit vector (the layer is linear
   * and bias-free, so this is the mean of the outputs without projecting every patch).
   */
  teacherRows(global: tf.Tensor4D, rows: PatchRows): { cls: tf.Tensor2D; patch: tf.Tensor2D; patchMean?: tf.Tensor2D } {
    return tf.tidy(() => {
      const head = this.teacher.head;
      const GB = global.shape[0];
      const split = (z: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] => tf.split(z, [GB, z.shape[0] - GB], 0) as [tf.Tensor2D, tf.Tensor2D];
      if (this.config.loss.centering === 'sinkhorn-knopp') {
        // No centre to keep: the last block and the head run on the [CLS] and selected rows only.
        const [zc, zp] = split(head.embed(this.teacher.backbone.forwardRows(global, rows.headRows)));
        return head.projectPair(zc, zp);
      }
      // The EMA centre averages every patch's output: the teacher runs on every token.
      const tokens = this.teacher.backbone.forward(global).tokens;
      const [, T, D] = tokens.shape;
      const flat = tf.reshape(tokens, [GB * T, D]) as tf.Tensor2D;
      const z = head.embed(flat);
      const zMean = tf.reshape(tf.mean(tf.slice(tf.reshape(z, [GB, T, -1]), [0, 1, 0], [GB, T - 1, -1]), [0, 1]), [1, -1]) as tf.Tensor2D;
      const [zc, zp] = split(tf.gather(z, rows.headRows));
      const out = head.projectPair(zc, tf.concat([zp, zMean], 0) as tf.Tensor2D);
      const M = rows.weight.shape[0];
      const [patch, patchMean] = tf.split(out.patch, [M, 1], 0) as [tf.Tensor2D, tf.Tensor2D];
      return { cls: out.cls, patch, patchMean };
    });
  }

  /** Student outputs as `studentForward`, with the head run on the [CLS] tokens and the selected patch rows only. */
  studentRows(crops: Crops, rows: PatchRows, seed = 0): StudentRowOutputs {
    return tidy(() => {
      const GB = crops.global.shape[0];
      // Global and local crops in one packed pass (attention within each, each its own seed). The
      // last block runs on the rows the heads read: the [CLS] and masked tokens of the global
      // crops, the [CLS] of the local crops. Then one head MLP pass over all of them.
      const inputs: PackedRowsInput[] = [{ images: crops.global, rows: rows.headRows, masks: crops.masks, seed }];
      if (crops.local) {
        const [LB, h, w] = crops.local.shape;
        const T = (h / this.config.vit.patchSize) * (w / this.config.vit.patchSize) + 1;
        inputs.push({ images: crops.local, rows: tf.range(0, LB * T, T, 'int32') as tf.Tensor1D, seed: seed + 1 });
      }
      // [global CLS (G·B) | masked patches (M) | local CLS (L·B)]
      const x = this.student.backbone.forwardRowsPacked(inputs, { training: true });
      const backboneCls = (this.config.loss.koleoWeight ?? 0) > 0 ? tf.slice(x, [0, 0], [GB, -1]) : undefined;
      const M = rows.weight.shape[0];
      const [zg, zp, zl] = tf.split(this.student.head.embed(x), [GB, M, x.shape[0] - GB - M], 0) as tf.Tensor2D[];
      const { cls, patch } = this.student.head.projectPair(tf.concat([zg, zl], 0) as tf.Tensor2D, zp);
      return backboneCls ? { cls, patch, backboneCls } : { cls, patch };
    });
  }

  /** The masked patches of `crops` as row selections (host masks when the crops carry them, else one read). */
  async patchRowsOf(crops: Crops): Promise<PatchRows> {
    const [GB, N] = crops.masks.shape;
    // Host masks, crop-major as the tensor (ibotBatch stacks the same list); else one read of the tensor.
    const values = crops.maskArrays ? stackMasks(crops.maskArrays.flat()) : await crops.masks.data();
    return patchRows(selectMaskedPatches(values, GB, N), GB, N);
  }

  /**
   * One full training step, all on the device: nothing is read back until its
   * statistics, which come back in one asynchronous read at the end (the only
   * kind of read a WebGPU backend in Node can do). Inputs are not disposed.
   *
   * With `opts.syncPhases`, each phase is awaited before the next starts, so
   * `ms` measures device time per phase (on a GPU the phases otherwise
   * overlap with the host queuing them); it costs two extra round trips.
   */
  async step(crops: Crops, sched: StepSchedule, seed = 0, opts: { syncPhases?: boolean } = {}): Promise<StepStats> {
    const cfg = this.config;
    const G = cfg.loss.globalCrops;
    if (crops.global.shape[0] % G !== 0 || crops.masks.shape[0] !== crops.global.shape[0]) {
      throw new Error(`step: global crops [${crops.global.shape}] and masks [${crops.masks.shape}] must both hold G·B = ${G}·B rows, crop-major`);
    }
    const settle = async (t: tf.Tensor): Promise<void> => {
      if (opts.syncPhases) await t.data();
    };
    const t0 = performance.now();
    const rows = await this.patchRowsOf(crops);
    const teacherOut = this.teacherRows(crops.global, rows);
    const targets = this.loss.teacherRowTargets(teacherOut, sched.epoch, rows);
    const monitors = tf.tidy(() => collapseMonitors(targets.cls));
    await settle(monitors.meanEntropy);
    const t1 = performance.now();

    let parts: { cls: tf.Scalar; patch: tf.Scalar; koleo: tf.Scalar; agreement: tf.Scalar } | undefined;
    const vars = this.studentParams.filter((p) => p.trainable).map((p) => p.variable);
    const { value, grads: rawGrads } = tf.variableGrads(() => {
      const s = this.studentRows(crops, rows, seed);
      const l = this.loss.computeRows(s, targets, rows);
      parts = { cls: tf.keep(l.cls), patch: tf.keep(l.patch), koleo: tf.keep(l.koleo), agreement: tf.keep(agreementOf(s.cls, targets.cls, G)) };
      return l.total;
    }, vars);
    await settle(value);
    const t2 = performance.now();

    // Variable names carry a uniqueness suffix; map gradients back to official names.
    const byVar = new Map(this.studentParams.map((p) => [p.variable.name, p.name]));
    let grads: Grads = new Map();
    for (const [vn, g] of Object.entries(rawGrads)) grads.set(byVar.get(vn) as string, g);
    // The global norm (a monitor) comes from the norms clipping computes anyway; an infinite bound only measures.
    let gradNorm: tf.Scalar;
    let scale: GradScale | undefined;
    if (cfg.clipGrad > 0) {
      // Clipping factors that AdamW applies on its flat vectors (not one product per parameter).
      const r = clipCoefficients(grads, cfg.clipGrad);
      scale = r.scale;
      gradNorm = tf.tidy(() => tf.norm(r.norms) as tf.Scalar);
      r.norms.dispose();
    } else {
      const r = clipGlobalNorm(grads, cfg.clipGlobalNorm > 0 ? cfg.clipGlobalNorm : Infinity);
      grads = r.grads;
      gradNorm = r.norm;
    }
    // Fractional epochs, so short runs can freeze for part of an epoch; integer values match the official rule.
    grads = freezeLastLayer(grads, sched.epoch, cfg.freezeLastLayerEpochs);
    this.optimizer.step(grads, sched.lr, sched.wd, scale);
    tf.dispose([...grads.values()]);
    scale?.coef.dispose();
    emaUpdate(this.teacher.backbone.params, this.student.backbone.params, sched.momentum);
    emaUpdate(this.teacher.head.params, this.student.head.params, sched.momentum);
    tf.tidy(() => this.loss.updateCenterFromMeans(tf.mean(teacherOut.cls, 0, true) as tf.Tensor2D, teacherOut.patchMean));

    // One read-back for every number of the step.
    const p = parts as NonNullable<typeof parts>;
    const all = tf.tidy(() => tf.stack([value, p.cls, p.patch, p.agreement, monitors.entropy, monitors.meanEntropy, gradNorm, p.koleo]));
    tf.dispose([value, p.cls, p.patch, p.koleo, p.agreement, monitors.entropy, monitors.meanEntropy, gradNorm, teacherOut.cls, teacherOut.patch, targets.cls, targets.patch]);
    if (teacherOut.patchMean) teacherOut.patchMean.dispose();
    disposePatchRows(rows);
    let v: Float32Array;
    try {
      v = (await all.data()) as Float32Array;
    } finally {
      all.dispose();
    }
    const t3 = performance.now();
    return {
      loss: v[0],
      clsLoss: v[1],
      patchLoss: v[2],
      agreement: v[3],
      teacherEntropy: v[4],
      teacherMeanEntropy: v[5],
      gradNorm: v[6],
      koleoLoss: v[7],
      maskedPatches: rows.count,
      teacherTemp: this.loss.teacherTemp(sched.epoch),
      teacherPatchTemp: this.loss.teacherPatchTemp(sched.epoch),
      ms: { teacher: t1 - t0, student: t2 - t1, optimizer: t3 - t2 },
    };
  }

  dispose(): void {
    this.student.backbone.dispose();
    this.student.head.dispose();
    this.teacher.backbone.dispose();
    this.teacher.head.dispose();
    this.loss.dispose();
    this.optimizer.dispose();
  }
}

/** Mean per-row entropy and entropy of the mean distribution of probabilities p [M, K]. */
export function collapseMonitors(p: tf.Tensor2D): { entropy: tf.Scalar; meanEntropy: tf.Scalar } {
  const h = (q: tf.Tensor): tf.Tensor => tf.neg(tf.sum(tf.mul(q, tf.log(tf.add(q, 1e-12))), -1));
  return { entropy: tf.mean(h(p)) as tf.Scalar, meanEntropy: h(tf.mean(p, 0)) as tf.Scalar };
}

/** Fraction of (global crop q, other global crop v) pairs where student and teacher pick the same prototype. */
function agreementOf(studentCls: tf.Tensor2D, teacherCls: tf.Tensor2D, G: number): tf.Scalar {
  return tf.tidy(() => {
    const GB = teacherCls.shape[0];
    const B = GB / G;
    const t = tf.reshape(tf.argMax(teacherCls, -1), [G, B]);
    const s = tf.reshape(tf.argMax(tf.slice(studentCls, [0, 0], [GB, -1]), -1), [G, B]);
    if (G < 2) return tf.mean(tf.cast(tf.equal(t, s), 'float32')) as tf.Scalar;
    // Compare teacher crop q with student crop (q+1) mod G: the cross-view prediction the loss trains.
    const sRolled = tf.concat([tf.slice(s, [1, 0], [G - 1, B]), tf.slice(s, [0, 0], [1, B])], 0);
    return tf.mean(tf.cast(tf.equal(t, sRolled), 'float32')) as tf.Scalar;
  });
}
