/**
 * Optimisation pieces of the official iBOT/DINO loop: AdamW with decoupled
 * weight decay (none on biases and 1-D parameters), per-parameter and
 * global-norm gradient clipping, and freezing the last layer early on.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Param, usesWeightDecay } from '../model/params';
import { FlatLayout, sumSquares } from './flat-params';
import { KERNEL_NAMES } from '../kernels/register';
import { AdamWStepConstants, fusedAdamW, hasKernel } from '../kernels/ops';

export type Grads = Map<string, tf.Tensor>;

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** Serializable optimizer state (for checkpoints): per parameter, by official name. */
export interface AdamWState {
  steps: Record<string, number>;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/**
 * Parameters updated together: same weight decay, and gradients that come and
 * go together (the prototypes lose theirs while the last layer is frozen).
 * Moments live as one flat vector per group.
 */
interface Group {
  params: Param[];
  decay: boolean;
  layout: FlatLayout;
  /** Adam steps taken per parameter (PyTorch counts per parameter). */
  steps: number[];
  m?: tf.Variable;
  v?: tf.Variable;
  /** For each element of the flat vector, its parameter's index in a `GradScale` (cached for one order of names). */
  scaleIndex?: { key: string; index: tf.Tensor1D };
}

/**
 * Per-parameter factors for the gradients (clipping coefficients): the
 * gradient of `names[i]` is multiplied by `coef[i]`. On a GPU AdamW applies
 * them to its flat vector per group, one gather and one product, instead of a
 * product per parameter (60 dispatches in the `bench` step).
 */
export interface GradScale {
  names: readonly string[];
  coef: tf.Tensor1D;
}

/** Which parameters share a group: decay or not × prototypes (`last_layer*`, see `freezeLastLayer`) or not. */
function groupKey(p: Param): string {
  return `${usesWeightDecay(p) ? 'decay' : 'no-decay'}${p.name.includes('last_layer') ? '|prototypes' : ''}`;
}

/**
 * torch.optim.AdamW semantics: p ← p − lr·wd·p, then the Adam step with bias
 * correction. Parameters without a gradient this step are left alone entirely
 * (no decay, no moment update, no step counted), as PyTorch does for
 * `grad is None`.
 *
 * Each parameter group is updated as one flat vector (see `flat-params.ts`),
 * so a step costs the same dozen ops whatever the depth of the model; on wasm
 * one kernel (`IbotAdamW`) does the group in one pass per parameter. A group
 * where only some parameters have a gradient, or whose step counts differ,
 * takes a slower per-parameter path with the same arithmetic.
 */
export class AdamW {
  readonly config: AdamWConfig;
  private readonly groups: Group[] = [];

  constructor(params: Param[], config: Partial<AdamWConfig> = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    const byKey = new Map<string, Param[]>();
    for (const p of params.filter((q) => q.trainable)) byKey.set(groupKey(p), [...(byKey.get(groupKey(p)) ?? []), p]);
    for (const ps of byKey.values()) {
      this.groups.push({ params: ps, decay: usesWeightDecay(ps[0]), layout: FlatLayout.of(ps.map((p) => p.variable)), steps: ps.map(() => 0) });
    }
  }

  /**
   * One update. `wd` applies only to parameters that use weight decay;
   * `scale` multiplies each gradient by its factor first (see `GradScale`).
   */
  step(grads: Grads, lr: number, wd: number, scale?: GradScale): void {
    for (const g of this.groups) {
      const present = g.params.map((p) => grads.has(p.name));
      if (!present.some((x) => x)) continue;
      if (!g.m || !g.v) {
        const n = g.layout.size;
        [g.m, g.v] = tf.tidy(() => [tf.variable(tf.zeros([n]), false), tf.variable(tf.zeros([n]), false)]);
      }
      present.forEach((has, i) => has && g.steps[i]++);
      const uniform = present.every((x) => x) && g.steps.every((n) => n === g.steps[0]);
      if (uniform) this.updateFlat(g, grads, lr, g.decay ? wd : 0, scale);
      else this.updateEach(g, grads, present, lr, g.decay ? wd : 0, scale);
    }
  }

  /** One step's constants (float64, rounded to float32 where they meet a tensor), shared by `adam` and the `IbotAdamW` kernel. */
  private stepConstants(step: number, lr: number, decay: number): AdamWStepConstants {
    const { beta1, beta2, eps } = this.config;
    return { beta1, beta2, eps, sqrtBc2: Math.sqrt(1 - beta2 ** step), lr: lr / (1 - beta1 ** step), keep: decay !== 0 ? 1 - lr * decay : 1 };
  }

  /** The Adam arithmetic on matching tensors (flat vectors or single parameters). */
  private adam(w: tf.Tensor, grad: tf.Tensor, m0: tf.Tensor, v0: tf.Tensor, step: number, lr: number, decay: number): { w: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
    const k = this.stepConstants(step, lr, decay);
    const m = tf.add(tf.mul(m0, k.beta1), tf.mul(grad, 1 - k.beta1));
    const v = tf.add(tf.mul(v0, k.beta2), tf.mul(tf.square(grad), 1 - k.beta2));
    const denom = tf.add(tf.div(tf.sqrt(v), k.sqrtBc2), k.eps);
    const decayed = decay !== 0 ? tf.mul(w, k.keep) : w;
    return { w: tf.sub(decayed, tf.mul(tf.div(m, denom), k.lr)), m, v };
  }

  /** Where a parameter's factor sits in `scale`. */
  private static positionOf(name: string, scale: GradScale): number {
    const i = scale.names.indexOf(name);
    if (i < 0 || i >= scale.coef.size) throw new Error(`AdamW.step: no gradient factor for '${name}' (scale has ${scale.coef.size} factors for [${scale.names.join(', ')}])`);
    return i;
  }

  /** The element → factor index of a group, rebuilt only when the order of names changes. */
  private scaleIndex(g: Group, scale: GradScale): tf.Tensor1D {
    const pos = g.params.map((p) => AdamW.positionOf(p.name, scale));
    const key = pos.join(',');
    if (g.scaleIndex?.key !== key) {
      g.scaleIndex?.index.dispose();
      const idx = new Int32Array(g.layout.size);
      pos.forEach((p, i) => idx.fill(p, g.layout.offsets[i], g.layout.offsets[i] + g.layout.sizes[i]));
      g.scaleIndex = { key, index: tf.tensor1d(idx, 'int32') };
    }
    return g.scaleIndex.index;
  }

  private updateFlat(g: Group, grads: Grads, lr: number, decay: number, scale?: GradScale): void {
    if (hasKernel(KERNEL_NAMES.adamW)) {
      this.updateFused(g, grads, lr, decay, scale);
      return;
    }
    const [m0, v0] = [g.m as tf.Variable, g.v as tf.Variable];
    // A GPU pays per dispatch: spread the factors over the flat vector with one gather and one
    // product. A CPU pays per pass over memory: one product per parameter is cheaper there.
    const index = scale && tf.getBackend() === 'webgpu' ? this.scaleIndex(g, scale) : undefined;
    tf.tidy(() => {
      const gs = g.params.map((p) => grads.get(p.name) as tf.Tensor);
      let grad: tf.Tensor;
      if (!scale) grad = g.layout.flatten(gs);
      else if (index) grad = tf.mul(g.layout.flatten(gs), tf.gather(scale.coef, index));
      else {
        const coef = tf.unstack(scale.coef);
        grad = g.layout.flatten(g.params.map((p, i) => tf.mul(gs[i], coef[AdamW.positionOf(p.name, scale)])));
      }
      const w = g.layout.flatten(g.params.map((p) => p.variable));
      const r = this.adam(w, grad, m0, v0, g.steps[0], lr, decay);
      m0.assign(r.m);
      v0.assign(r.v);
      const next = g.layout.unflatten(r.w as tf.Tensor1D);
      g.params.forEach((p, i) => p.variable.assign(next[i]));
    });
  }

  /**
   * `updateFlat` as one kernel (wasm): each parameter's weights, gradient (times its clipping
   * factor) and moments in one pass instead of a dozen, straight from the parameters' own
   * tensors (no flattening), with the same values.
   */
  private updateFused(g: Group, grads: Grads, lr: number, decay: number, scale?: GradScale): void {
    const [m0, v0] = [g.m as tf.Variable, g.v as tf.Variable];
    tf.tidy(() => {
      const r = fusedAdamW(
        g.params.map((p) => p.variable),
        g.params.map((p) => grads.get(p.name) as tf.Tensor),
        m0 as tf.Tensor as tf.Tensor1D,
        v0 as tf.Tensor as tf.Tensor1D,
        this.stepConstants(g.steps[0], lr, decay),
        { coefIndex: g.params.map((p) => (scale ? AdamW.positionOf(p.name, scale) : -1)), coef: scale?.coef },
      );
      m0.assign(r.m);
      v0.assign(r.v);
      g.params.forEach((p, i) => p.variable.assign(r.ws[i]));
    });
  }

  private updateEach(g: Group, grads: Grads, present: boolean[], lr: number, decay: number, scale?: GradScale): void {
    const [m0, v0] = [g.m as tf.Variable, g.v as tf.Variable];
    tf.tidy(() => {
      const ms = g.layout.unflatten(m0 as tf.Tensor1D);
      const vs = g.layout.unflatten(v0 as tf.Tensor1D);
      g.params.forEach((p, i) => {
        if (!present[i]) return;
        const raw = grads.get(p.name) as tf.Tensor;
        const grad = scale ? tf.mul(raw, tf.slice(scale.coef, [AdamW.positionOf(p.name, scale)], [1])) : raw;
        const r = this.adam(p.variable, grad, ms[i], vs[i], g.steps[i], lr, decay);
        p.variable.assign(r.w);
        ms[i] = r.m;
        vs[i] = r.v;
      });
      m0.assign(g.layout.flatten(ms));
      v0.assign(g.layout.flatten(vs));
    });
  }

  /** Moments and step counts of every parameter updated so far (one read per moment vector; works on every backend). */
  async getState(): Promise<AdamWState> {
    const st: AdamWState = { steps: {}, m: {}, v: {} };
    for (const g of this.groups) {
      if (!g.m || !g.v) continue;
      const ms = g.layout.split((await g.m.data()) as Float32Array);
      const vs = g.layout.split((await g.v.data()) as Float32Array);
      g.params.forEach((p, i) => {
        if (g.steps[i] === 0) return;
        st.steps[p.name] = g.steps[i];
        st.m[p.name] = ms[i];
        st.v[p.name] = vs[i];
      });
    }
    return st;
  }

  setState(st: AdamWState): void {
    this.disposeMoments();
    for (const g of this.groups) {
      if (g.params.every((p) => st.steps[p.name] === undefined)) continue;
      const m = new Float32Array(g.layout.size);
      const v = new Float32Array(g.layout.size);
      g.params.forEach((p, i) => {
        if (st.steps[p.name] === undefined) return;
        const [mi, vi] = [st.m[p.name], st.v[p.name]];
        if (!mi || !vi || mi.length !== g.layout.sizes[i] || vi.length !== g.layout.sizes[i]) {
          throw new Error(`AdamW.setState: moments of '${p.name}' are missing or have the wrong size (expected ${g.layout.sizes[i]} values)`);
        }
        m.set(mi, g.layout.offsets[i]);
        v.set(vi, g.layout.offsets[i]);
        g.steps[i] = st.steps[p.name];
      });
      [g.m, g.v] = tf.tidy(() => [tf.variable(tf.tensor1d(m), false), tf.variable(tf.tensor1d(v), false)]);
    }
  }

  private disposeMoments(): void {
    for (const g of this.groups) {
      g.m?.dispose();
      g.v?.dispose();
      g.m = undefined;
      g.v = undefined;
      g.steps.fill(0);
    }
  }

  dispose(): void {
    this.disposeMoments();
    for (const g of this.groups) {
      g.scaleIndex?.index.dispose();
      g.scaleIndex = undefined;
    }
  }
}

/**
 * Official `clip_gradients`: each parameter's gradient is scaled down to
 * L2 norm `clip` when above it (coef = clip / (norm + 1e-6)). Everything stays
 * on the device: coefficients min(1, coef) multiply every gradient (×1 is
 * exact), so nothing is read back. Returns the new gradients (old ones
 * disposed) and the pre-clip norms [n] in the map's order.
 */
export function clipPerParam(grads: Grads, clip: number): { grads: Grads; norms: tf.Tensor1D } {
  const { scale, norms } = clipCoefficients(grads, clip);
  const scaled = tf.tidy(() => {
    const coef = tf.unstack(scale.coef);
    return scale.names.map((n, i) => tf.mul(grads.get(n) as tf.Tensor, coef[i]));
  });
  tf.dispose([...grads.values(), scale.coef]);
  return { grads: new Map(scale.names.map((n, i) => [n, scaled[i]])), norms };
}

/**
 * `clipPerParam` without touching the gradients: the pre-clip norms and the
 * factors min(1, clip / (norm + 1e-6)), for `AdamW.step(…, scale)` to apply
 * on its flat vectors. The caller disposes `scale.coef` and `norms`.
 */
export function clipCoefficients(grads: Grads, clip: number): { scale: GradScale; norms: tf.Tensor1D } {
  const names = [...grads.keys()];
  const norms = tf.tidy(() => tf.sqrt(sumSquares(names.map((n) => grads.get(n) as tf.Tensor))) as tf.Tensor1D);
  const coef = tf.tidy(() => tf.minimum(tf.div(clip, tf.add(norms, 1e-6)), 1) as tf.Tensor1D);
  return { scale: { names, coef }, norms };
}

/**
 * torch.nn.utils.clip_grad_norm_: scale all gradients together to a global L2
 * norm ≤ maxNorm, on the device. `maxNorm` Infinity only measures. Returns the
 * pre-clip global norm as a scalar tensor.
 */
export function clipGlobalNorm(grads: Grads, maxNorm: number): { grads: Grads; norm: tf.Scalar } {
  const names = [...grads.keys()];
  const gs = names.map((n) => grads.get(n) as tf.Tensor);
  const norm = tf.tidy(() => tf.sqrt(tf.sum(sumSquares(gs))) as tf.Scalar);
  if (maxNorm === Infinity) return { grads, norm };
  const scaled = tf.tidy(() => {
    const coef = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return gs.map((g) => tf.mul(g, coef));
  });
  tf.dispose(gs);
  return { grads: new Map(names.map((n, i) => [n, scaled[i]])), norm };
}

/** Official `cancel_gradients_last_layer`: drop the prototypes' gradients while epoch < freezeEpochs. */
export function freezeLastLayer(grads: Grads, epoch: number, freezeEpochs: number): Grads {
  if (epoch >= freezeEpochs) return grads;
  for (const [n, g] of grads) {
    if (n.includes('last_layer')) {
      g.dispose();
      grads.delete(n);
    }
  }
  return grads;
}
