/**
 * The iBOT projection head (official `iBOTHead`, built on DINO's `DINOHead`):
 * an MLP Linear-GELU-Linear-GELU-Linear to a bottleneck, L2 normalisation,
 * then a weight-normalised, bias-free last layer whose rows are prototypes.
 * [CLS] tokens go through `last_layer`, patch tokens through `last_layer2`
 * (or through the same layer when the head is shared).
 */
import * as tf from '@tensorflow/tfjs-core';
import { gelu, l2Normalize, linear } from './layers';
import { ParamSet, init } from './params';
import { Rng } from '../util/rng';

export interface HeadConfig {
  inDim: number;
  /** Prototypes for [CLS] (official default 8192). */
  outDim: number;
  /** Prototypes for patch tokens (official default 8192; ignored when sharedHead). */
  patchOutDim: number;
  /** MLP hidden width (2048 in the paper). */
  hiddenDim: number;
  /** Bottleneck before the prototypes (256 in the paper). */
  bottleneckDim: number;
  /** MLP layers before the bottleneck output (3 in the paper). */
  nlayers: number;
  /** Freeze weight_g at 1, so prototypes stay unit-norm (official default true). */
  normLastLayer: boolean;
  /** One last layer for [CLS] and patches (the paper's ViT-S/16 recipe uses true). */
  sharedHead: boolean;
}

export class IBOTHead {
  readonly config: HeadConfig;
  readonly params = new ParamSet();

  constructor(config: HeadConfig, seed = 0) {
    if (config.nlayers < 1) throw new Error('head nlayers must be ≥ 1');
    if (config.sharedHead && config.patchOutDim !== config.outDim) {
      throw new Error(`a shared head needs patchOutDim (${config.patchOutDim}) = outDim (${config.outDim})`);
    }
    this.config = config;
    const rng = new Rng(seed);
    const P = this.params;
    const dims = mlpDims(config);
    dims.forEach(([i, o], l) => {
      P.add(`mlp.${2 * l}.weight`, init.truncNormal([i, o], 0.02, rng.seed()), 'linear', [o, i]);
      P.add(`mlp.${2 * l}.bias`, init.zeros([o]), 'same', [o]);
    });
    const last = (name: string, out: number): void => {
      // weight_g [out, 1] in PyTorch; kept as a row [1, out] here so it scales output columns.
      P.add(`${name}.weight_g`, init.ones([1, out]), 'linear', [out, 1], !config.normLastLayer);
      P.add(`${name}.weight_v`, init.torchDefault([config.bottleneckDim, out], config.bottleneckDim, rng.seed()), 'linear', [out, config.bottleneckDim]);
    };
    last('last_layer', config.outDim);
    if (!config.sharedHead) last('last_layer2', config.patchOutDim);
  }

  /** MLP + L2 normalisation: tokens [M, inDim] → unit vectors [M, bottleneckDim]. */
  embed(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const n = mlpDims(this.config).length;
      let h = x;
      for (let l = 0; l < n; l++) {
        h = linear(h, this.params.get(`mlp.${2 * l}.weight`) as tf.Tensor2D, this.params.get(`mlp.${2 * l}.bias`) as tf.Tensor1D);
        if (l < n - 1) h = gelu(h);
      }
      return l2Normalize(h);
    });
  }

  /** Prototype scores of unit vectors z [M, bottleneck] through `last_layer` (cls) or `last_layer2` (patch). */
  project(z: tf.Tensor2D, which: 'cls' | 'patch'): tf.Tensor2D {
    const name = which === 'patch' && !this.config.sharedHead ? 'last_layer2' : 'last_layer';
    return tf.tidy(() => {
      const g = this.params.get(`${name}.weight_g`);
      const v = this.params.get(`${name}.weight_v`) as tf.Tensor2D;
      // weight = g · v / ‖v‖ per prototype (PyTorch weight_norm, dim=0); here prototypes are columns of v.
      const w = tf.mul(v, tf.div(g, tf.sqrt(tf.sum(tf.square(v), 0, true)))) as tf.Tensor2D;
      return linear(z, w);
    });
  }

  /**
   * Scores of [CLS] unit vectors zc [Mc, bottleneck] and patch unit vectors zp [Mp, bottleneck]:
   * with a shared head one product (and one weight normalisation) over both.
   */
  projectPair(zc: tf.Tensor2D, zp: tf.Tensor2D): { cls: tf.Tensor2D; patch: tf.Tensor2D } {
    if (!this.config.sharedHead) return { cls: this.project(zc, 'cls'), patch: this.project(zp, 'patch') };
    return tf.tidy(() => {
      const [cls, patch] = tf.split(this.project(tf.concat([zc, zp], 0) as tf.Tensor2D, 'cls'), [zc.shape[0], zp.shape[0]], 0) as tf.Tensor2D[];
      return { cls, patch };
    });
  }

  /** [CLS] tokens [B, D] → [B, outDim]. */
  forwardCls(cls: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.project(this.embed(cls), 'cls'));
  }

  /**
   * All tokens [B, 1+N, D] → [CLS] scores [B, outDim] and patch scores [B, N, patchOutDim],
   * with one MLP pass over every token (as the official head does).
   */
  forwardTokens(tokens: tf.Tensor3D): { cls: tf.Tensor2D; patch: tf.Tensor3D } {
    const [B, N1, D] = tokens.shape;
    const N = N1 - 1;
    return tf.tidy(() => {
      const z = tf.reshape(this.embed(tf.reshape(tokens, [B * N1, D]) as tf.Tensor2D), [B, N1, this.config.bottleneckDim]);
      const zc = tf.reshape(tf.slice(z, [0, 0, 0], [B, 1, -1]), [B, -1]) as tf.Tensor2D;
      const zp = tf.reshape(tf.slice(z, [0, 1, 0], [B, N, -1]), [B * N, -1]) as tf.Tensor2D;
      const cls = this.project(zc, 'cls');
      const patch = tf.reshape(this.project(zp, 'patch'), [B, N, -1]) as tf.Tensor3D;
      return { cls, patch };
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** [in, out] of each MLP layer. */
function mlpDims(c: HeadConfig): Array<[number, number]> {
  if (c.nlayers === 1) return [[c.inDim, c.bottleneckDim]];
  const dims: Array<[number, number]> = [[c.inDim, c.hiddenDim]];
  for (let l = 0; l < c.nlayers - 2; l++) dims.push([c.hiddenDim, c.hiddenDim]);
  dims.push([c.hiddenDim, c.bottleneckDim]);
  return dims;
}
