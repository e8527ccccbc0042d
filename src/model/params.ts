/**
 * Named parameters with their timm/DINO/iBOT names and the layout conversion
 * between ibotlab's internal storage and PyTorch's.
 *
 * Internally dense weights are kept as [in, out] (so the forward pass is a
 * plain 2-D matMul, the fast path on wasm) and the patch-embedding conv as
 * [p·p·C, D]; on export they become PyTorch's [out, in] and [D, C, p, p], so
 * files interoperate with timm, DINO and iBOT checkpoints.
 */
import * as tf from '@tensorflow/tfjs-core';
import { NamedArray, TensorMap } from '../io/safetensors';

/**
 * - `same`: identical layout (LayerNorm, biases, tokens reshaped).
 * - `linear`: internal [in, out] ↔ torch [out, in].
 * - `patch`: internal [p, p, C → flattened, D] ↔ torch conv [D, C, p, p].
 */
export type Layout = 'same' | 'linear' | 'patch';

export interface Param {
  /** timm/DINO/iBOT name, e.g. `blocks.0.attn.qkv.weight`. */
  name: string;
  variable: tf.Variable;
  layout: Layout;
  /** Shape of the tensor in PyTorch checkpoints. */
  torchShape: number[];
  /** Frozen parameters (e.g. `last_layer.weight_g` with norm_last_layer) never train. */
  trainable: boolean;
}

/** Official iBOT/DINO `get_params_groups`: no weight decay on biases and 1-D (norm) parameters. */
export function usesWeightDecay(p: Param): boolean {
  return !(p.name.endsWith('.bias') || p.torchShape.length === 1);
}

let uid = 0;

export class ParamSet {
  readonly params: Param[] = [];
  private readonly byName = new Map<string, Param>();

  add(name: string, value: tf.Tensor, layout: Layout, torchShape: number[], trainable = true): tf.Variable {
    if (this.byName.has(name)) throw new Error(`parameter '${name}' defined twice`);
    // Variable names must be unique engine-wide; several models may coexist (student, teacher).
    const variable = tf.variable(value, trainable, `${name}#${uid++}`);
    value.dispose();
    const p: Param = { name, variable, layout, torchShape, trainable };
    this.params.push(p);
    this.byName.set(name, p);
    return variable;
  }

  get(name: string): tf.Variable {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter '${name}'`);
    return p.variable;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  param(name: string): Param | undefined {
    return this.byName.get(name);
  }

  trainable(): Param[] {
    return this.params.filter((p) => p.trainable);
  }

  numParameters(): number {
    return this.params.reduce((a, p) => a + p.variable.size, 0);
  }

  /** Export with PyTorch names and layouts (values read back from the device). */
  async toTorch(prefix = ''): Promise<TensorMap> {
    const out: TensorMap = {};
    for (const p of this.params) {
      const t = tf.tidy(() => toTorchLayout(p.variable, p.layout, p.torchShape));
      try {
        out[prefix + p.name] = { shape: p.torchShape.slice(), dtype: 'float32', data: (await t.data()) as Float32Array };
      } finally {
        t.dispose();
      }
    }
    return out;
  }

  /**
   * Load PyTorch-named tensors. `prefix` is stripped from file names (e.g.
   * `backbone.` or `module.` in DINO/iBOT checkpoints). With `strict`, every
   * parameter must be found. Returns the names that were loaded.
   */
  loadTorch(map: TensorMap, opts: { prefix?: string; strict?: boolean; source?: string } = {}): string[] {
    const prefix = opts.prefix ?? '';
    const source = opts.source ?? 'weights';
    const loaded: string[] = [];
    const missing: string[] = [];
    for (const p of this.params) {
      const entry = map[prefix + p.name];
      if (!entry) {
        missing.push(p.name);
        continue;
      }
      const same = entry.shape.length === p.torchShape.length && entry.shape.every((d, i) => d === p.torchShape[i]);
      if (!same) {
        throw new Error(`${source}: '${prefix + p.name}' has shape [${entry.shape}] but this model expects [${p.torchShape}]; the checkpoint was made for another configuration (embedDim, patchSize, depth, image size)`);
      }
      const t = tf.tidy(() => fromTorchLayout(entry, p.layout, p.variable.shape));
      p.variable.assign(t);
      t.dispose();
      loaded.push(p.name);
    }
    if (opts.strict && missing.length) {
      throw new Error(`${source}: missing ${missing.length} parameter(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''} (prefix '${prefix}')`);
    }
    return loaded;
  }

  /** Copy values from another set with the same names (e.g. student → teacher at start). */
  copyFrom(other: ParamSet): void {
    for (const p of this.params) {
      const q = other.param(p.name);
      if (q) p.variable.assign(q.variable);
    }
  }

  dispose(): void {
    for (const p of this.params) p.variable.dispose();
  }
}

function toTorchLayout(v: tf.Tensor, layout: Layout, torchShape: number[]): tf.Tensor {
  switch (layout) {
    case 'same':
      return tf.reshape(v, torchShape);
    case 'linear':
      return tf.transpose(v);
    case 'patch': {
      // internal [p*p*C, D] in (ph, pw, c) order → [D, C, ph, pw]
      const [d, c, ph, pw] = torchShape;
      return tf.transpose(tf.reshape(v, [ph, pw, c, d]), [3, 2, 0, 1]);
    }
  }
}

function fromTorchLayout(a: NamedArray, layout: Layout, shape: number[]): tf.Tensor {
  const t = tf.tensor(a.data instanceof Float32Array ? a.data : Float32Array.from(a.data), a.shape, 'float32');
  switch (layout) {
    case 'same':
      return tf.reshape(t, shape);
    case 'linear':
      return tf.transpose(t);
    case 'patch':
      return tf.reshape(tf.transpose(t, [2, 3, 1, 0]), shape);
  }
}

/** Initialisers as in timm/DINO `_init_weights`: trunc_normal(std=.02) weights, zero biases. */
export const init = {
  /**
   * timm/DINO's `trunc_normal_(t, std=std)`, whose bounds are a = −2, b = 2 in
   * absolute value (not ±2σ): for std 0.02 the cut lies 100σ out, so the
   * weights are a plain N(0, std²). `tf.truncatedNormal` cuts at ±2σ, which
   * would narrow every weight's spread by 12%. Values beyond ±2 (possible only
   * for std ≳ 0.5) are clipped to the bound rather than redrawn.
   */
  truncNormal(shape: number[], std: number, seed: number): tf.Tensor {
    return tf.tidy(() => tf.clipByValue(tf.randomNormal(shape, 0, std, 'float32', seed), -2, 2));
  },
  /** PyTorch's default nn.Linear / nn.Conv2d init: U(-1/√fanIn, 1/√fanIn). */
  torchDefault(shape: number[], fanIn: number, seed: number): tf.Tensor {
    const bound = 1 / Math.sqrt(fanIn);
    return tf.randomUniform(shape, -bound, bound, 'float32', seed);
  },
  zeros: (shape: number[]): tf.Tensor => tf.zeros(shape),
  ones: (shape: number[]): tf.Tensor => tf.ones(shape),
};
