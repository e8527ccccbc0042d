/**
 * Optimisation pieces of the official iBOT/DINO loop: AdamW with decoupled
 * weight decay (none on biases and 1-D parameters), per-parameter and
 * global-norm gradient clipping, and freezing the last layer early on.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Param, usesWeightDecay } from '../model/params';

export type Grads = Map<string, tf.Tensor>;

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
}

/** Serializable optimizer state (for checkpoints). */
export interface AdamWState {
  steps: Record<string, number>;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/**
 * torch.optim.AdamW semantics: p ← p − lr·wd·p, then the Adam step with bias
 * correction. Parameters without a gradient this step are left alone entirely
 * (no decay, no moment update), as PyTorch does for `grad is None`.
 */
export class AdamW {
  readonly config: AdamWConfig;
  private readonly params: Param[];
  private readonly slots = new Map<string, Slot>();

  constructor(params: Param[], config: Partial<AdamWConfig> = {}) {
    this.config = { ...ADAMW_DEFAULTS, ...config };
    this.params = params.filter((p) => p.trainable);
  }

  /** One update. `wd` applies only to parameters that use weight decay. */
  step(grads: Grads, lr: number, wd: number): void {
    const { beta1, beta2, eps } = this.config;
    for (const p of this.params) {
      const g = grads.get(p.name);
      if (!g) continue;
      let slot = this.slots.get(p.name);
      if (!slot) {
        const pv = p.variable;
        slot = tf.tidy(() => ({ m: tf.variable(tf.zerosLike(pv), false), v: tf.variable(tf.zerosLike(pv), false), step: 0 }));
        this.slots.set(p.name, slot);
      }
      slot.step += 1;
      const bc1 = 1 - beta1 ** slot.step;
      const bc2 = 1 - beta2 ** slot.step;
      const decay = usesWeightDecay(p) ? wd : 0;
      const s = slot;
      tf.tidy(() => {
        const m = tf.add(tf.mul(s.m, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(s.v, beta2), tf.mul(tf.square(g), 1 - beta2));
        s.m.assign(m);
        s.v.assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), eps);
        let w: tf.Tensor = p.variable;
        if (decay !== 0) w = tf.mul(w, 1 - lr * decay);
        p.variable.assign(tf.sub(w, tf.mul(tf.div(m, denom), lr / bc1)));
      });
    }
  }

  getState(): AdamWState {
    const st: AdamWState = { steps: {}, m: {}, v: {} };
    for (const [name, s] of this.slots) {
      st.steps[name] = s.step;
      st.m[name] = s.m.dataSync() as Float32Array;
      st.v[name] = s.v.dataSync() as Float32Array;
    }
    return st;
  }

  setState(st: AdamWState): void {
    this.disposeSlots();
    for (const p of this.params) {
      if (st.steps[p.name] === undefined) continue;
      const shape = p.variable.shape;
      this.slots.set(
        p.name,
        tf.tidy(() => ({
          step: st.steps[p.name],
          m: tf.variable(tf.tensor(st.m[p.name], shape), false),
          v: tf.variable(tf.tensor(st.v[p.name], shape), false),
        })),
      );
    }
  }

  private disposeSlots(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }

  dispose(): void {
    this.disposeSlots();
  }
}

/**
 * Official `clip_gradients`: each parameter's gradient is scaled down to
 * L2 norm `clip` when above it (coef = clip / (norm + 1e-6)). Returns the new
 * gradients (old ones disposed) and the pre-clip norms.
 */
export function clipPerParam(grads: Grads, clip: number): { grads: Grads; norms: Map<string, number> } {
  const out: Grads = new Map();
  const norms = new Map<string, number>();
  const names = [...grads.keys()];
  // One read for all norms instead of a sync per parameter.
  const normT = tf.tidy(() => tf.stack(names.map((n) => tf.norm(grads.get(n) as tf.Tensor))));
  const vals = normT.dataSync();
  normT.dispose();
  names.forEach((n, i) => {
    const g = grads.get(n) as tf.Tensor;
    const norm = vals[i];
    norms.set(n, norm);
    const coef = clip / (norm + 1e-6);
    if (coef < 1) {
      out.set(n, tf.mul(g, coef));
      g.dispose();
    } else out.set(n, g);
  });
  return { grads: out, norms };
}

/** torch.nn.utils.clip_grad_norm_: scale all gradients together to a global L2 norm ≤ maxNorm. */
export function clipGlobalNorm(grads: Grads, maxNorm: number): { grads: Grads; norm: number } {
  const names = [...grads.keys()];
  const total = tf.tidy(() => tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads.get(n) as tf.Tensor))))));
  const norm = total.dataSync()[0];
  total.dispose();
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const out: Grads = new Map();
  for (const n of names) {
    const g = grads.get(n) as tf.Tensor;
    out.set(n, tf.mul(g, coef));
    g.dispose();
  }
  return { grads: out, norm };
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
