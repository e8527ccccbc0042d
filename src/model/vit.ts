/**
 * Vision Transformer backbone as in timm / DINO / iBOT, with their parameter
 * names so weights load from and save to their checkpoints.
 *
 * Read top to bottom: patch embedding → (mask token on masked patches) →
 * [CLS] + position embedding (interpolated for other input sizes) → pre-norm
 * blocks (attention, MLP, stochastic depth) → final LayerNorm.
 *
 * Images are NHWC float32 (tfjs' native layout); tokens travel as 2-D
 * [B·(1+N), D] between blocks so every dense layer is one plain 2-D matMul.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows, gelu, layerNorm, linear, linearOnData, repeatCols, repeatRows } from './layers';
import { packedAttention } from './attention';
import { ParamSet, init } from './params';
import { Rng } from '../util/rng';
import { tidy } from '../util/tidy';

export interface ViTConfig {
  /** Training image size (square); sets the stored position-embedding grid. */
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  /** MLP hidden size = mlpRatio · embedDim (4 in every ViT of the paper). */
  mlpRatio: number;
  /** Bias on the qkv projection (true in timm's ViT-S/B and iBOT). */
  qkvBias: boolean;
  /** Stochastic-depth rate of the last block; linear from 0 over depth (iBOT: 0.1 for ViT-S/B). */
  dropPathRate: number;
  /** LayerNorm epsilon (timm ViT: 1e-6). */
  layerNormEps: number;
  /** Keep a learnable `masked_embed` token for masked image modelling (iBOT student). */
  maskedEmbed: boolean;
  /**
   * LayerScale (CaiT; DINOv2's ViTs): each residual branch is multiplied by a
   * learned per-channel vector (timm's `blocks.{i}.ls1.gamma`, `ls2.gamma`)
   * initialised to this value, so every block starts close to the identity.
   * 0 or absent: none (the paper's ViTs).
   */
  layerScale?: number;
}

export const VIT_DEFAULTS: Omit<ViTConfig, 'imgSize' | 'patchSize' | 'inChans' | 'embedDim' | 'depth' | 'numHeads'> = {
  mlpRatio: 4,
  qkvBias: true,
  dropPathRate: 0.1,
  layerNormEps: 1e-6,
  maskedEmbed: true,
};

/** Named backbones: tiny ones for 28×28 grayscale and 32×32 RGB, and the paper's ViT-S/16 and ViT-B/16. */
export const VIT_PRESETS = {
  /** Fashion-MNIST/MNIST: 7×7 patches of 4×4 pixels, 4 blocks of width 128 (the `bench` backbone). */
  'vit-tiny-28': { ...VIT_DEFAULTS, imgSize: 28, patchSize: 4, inChans: 1, embedDim: 128, depth: 4, numHeads: 4, dropPathRate: 0 },
  /**
   * Fashion-MNIST/MNIST, coarse: 4×4 patches of 7×7 pixels. A third of the
   * tokens of `vit-tiny-28`, so a CPU sees three times the images per minute;
   * the default pretraining recipe uses it (see train/presets.ts).
   */
  'vit-tiny-28-p7': { ...VIT_DEFAULTS, imgSize: 28, patchSize: 7, inChans: 1, embedDim: 128, depth: 4, numHeads: 4, dropPathRate: 0 },
  /** CIFAR-10: 8×8 patches of 4×4 pixels. */
  'vit-tiny-32': { ...VIT_DEFAULTS, imgSize: 32, patchSize: 4, inChans: 3, embedDim: 192, depth: 6, numHeads: 3, dropPathRate: 0.1 },
  'vit-s16': { ...VIT_DEFAULTS, imgSize: 224, patchSize: 16, inChans: 3, embedDim: 384, depth: 12, numHeads: 6 },
  'vit-b16': { ...VIT_DEFAULTS, imgSize: 224, patchSize: 16, inChans: 3, embedDim: 768, depth: 12, numHeads: 12 },
} satisfies Record<string, ViTConfig>;

export type ViTPresetName = keyof typeof VIT_PRESETS;

export function vitConfig(preset: ViTPresetName, overrides: Partial<ViTConfig> = {}): ViTConfig {
  const base = VIT_PRESETS[preset];
  if (!base) throw new Error(`unknown ViT preset '${preset}'; choose one of ${Object.keys(VIT_PRESETS).join(', ')}`);
  return { ...base, ...overrides };
}

export interface ViTForwardOptions {
  /** [B, N] with 1 where a patch is masked (row-major over the patch grid); its embedding becomes `masked_embed`. */
  masks?: tf.Tensor2D;
  /** Training mode enables stochastic depth. */
  training?: boolean;
  /** Seed for stochastic depth in training mode. */
  seed?: number;
  /** Return the attention probabilities of this block (negative counts from the end: -1 = last). */
  attentionOf?: number;
  /**
   * Also return the tokens of the last n blocks, each through the final norm
   * (DINO's `get_intermediate_layers`, used by linear evaluation with n = 4).
   */
  lastBlocks?: number;
}

/** One batch of a packed forward (`forwardRowsPacked`). */
export interface PackedRowsInput {
  images: tf.Tensor4D;
  /** Token rows to return, as in `forwardRows`. */
  rows: tf.Tensor1D;
  masks?: tf.Tensor2D;
  /** Stochastic-depth seed of this batch (training mode). */
  seed?: number;
}

/** What `encode` takes per batch. */
type EncodeInput = Omit<PackedRowsInput, 'rows'> & { rows?: tf.Tensor1D };

/** A batch's tokens inside the stacked matrix: B images of N1 tokens, and its stochastic-depth draws. */
interface TokenGroup {
  x: tf.Tensor2D;
  B: number;
  N1: number;
  grid: [number, number];
  rng?: Rng;
}

export interface ViTOutput {
  /** All tokens after the final norm, [B, 1+N, D]; row 0 of each image is [CLS]. */
  tokens: tf.Tensor3D;
  /** Attention probabilities [B, heads, 1+N, 1+N] of the requested block. */
  attention?: tf.Tensor4D;
  /** With `lastBlocks`: the normalised tokens [B, 1+N, D] of those blocks, oldest first. */
  blocks?: tf.Tensor3D[];
  /** Patch grid of this input (h, w). */
  grid: [number, number];
}

export class VisionTransformer {
  readonly config: ViTConfig;
  readonly params = new ParamSet();
  /** Cache of position-embedding interpolation matrices per target grid. */
  private readonly interp = new Map<string, tf.Tensor2D>();

  constructor(config: ViTConfig, seed = 0) {
    validateConfig(config);
    this.config = config;
    const rng = new Rng(seed);
    const { embedDim: D, patchSize: p, inChans: C, depth, mlpRatio } = config;
    const n = (config.imgSize / p) ** 2;
    const hidden = Math.round(D * mlpRatio);
    const P = this.params;
    P.add('cls_token', init.truncNormal([1, D], 0.02, rng.seed()), 'same', [1, 1, D]);
    P.add('pos_embed', init.truncNormal([1 + n, D], 0.02, rng.seed()), 'same', [1, 1 + n, D]);
    if (config.maskedEmbed) P.add('masked_embed', init.zeros([1, D]), 'same', [1, D]);
    const fanIn = C * p * p;
    P.add('patch_embed.proj.weight', init.torchDefault([p * p * C, D], fanIn, rng.seed()), 'patch', [D, C, p, p]);
    P.add('patch_embed.proj.bias', init.torchDefault([D], fanIn, rng.seed()), 'same', [D]);
    const dense = (name: string, i: number, o: number, bias = true): void => {
      P.add(`${name}.weight`, init.truncNormal([i, o], 0.02, rng.seed()), 'linear', [o, i]);
      if (bias) P.add(`${name}.bias`, init.zeros([o]), 'same', [o]);
    };
    const norm = (name: string): void => {
      P.add(`${name}.weight`, init.ones([D]), 'same', [D]);
      P.add(`${name}.bias`, init.zeros([D]), 'same', [D]);
    };
    for (let b = 0; b < depth; b++) {
      norm(`blocks.${b}.norm1`);
      dense(`blocks.${b}.attn.qkv`, D, 3 * D, config.qkvBias);
      dense(`blocks.${b}.attn.proj`, D, D);
      norm(`blocks.${b}.norm2`);
      dense(`blocks.${b}.mlp.fc1`, D, hidden);
      dense(`blocks.${b}.mlp.fc2`, hidden, D);
      if (config.layerScale) {
        for (const ls of ['ls1', 'ls2']) P.add(`blocks.${b}.${ls}.gamma`, tf.fill([D], config.layerScale), 'same', [D]);
      }
    }
    norm('norm');
  }

  get numPatches(): number {
    return (this.config.imgSize / this.config.patchSize) ** 2;
  }

  /** Run the backbone. `images` are NHWC float32, already normalised. */
  forward(images: tf.Tensor4D, opts: ViTForwardOptions = {}): ViTOutput {
    return this.encode([{ images, masks: opts.masks, seed: opts.seed }], opts) as ViTOutput;
  }

  /**
   * The outputs of some token rows only: `rows` (int32 [R]; row b·(1+N) + t is token t of
   * image b, t = 0 its [CLS]) → [R, D] after the final norm, equal to those rows of
   * `forward(...).tokens`. The last block runs its output projection, MLP and final norm on
   * those rows alone (every token is still a key and a value). The iBOT step wants the [CLS]
   * and masked tokens of the student's global crops and the [CLS] of its local crops: about a
   * sixth and a tenth of the rows.
   */
  forwardRows(images: tf.Tensor4D, rows: tf.Tensor1D, opts: Omit<ViTForwardOptions, 'attentionOf' | 'lastBlocks'> = {}): tf.Tensor2D {
    return this.encode([{ images, rows, masks: opts.masks, seed: opts.seed }], opts) as tf.Tensor2D;
  }

  /**
   * `forwardRows` of several batches in one pass (the student's global and local crops): their
   * tokens are stacked into one matrix, so every norm, dense layer and GELU runs once per
   * block for all of them (fewer, larger products; on a GPU, fewer dispatches), while attention
   * stays within each batch. Each batch keeps its own masks and stochastic-depth seed: the
   * result is the separate `forwardRows` outputs stacked in order, [ΣR, D].
   */
  forwardRowsPacked(inputs: readonly PackedRowsInput[], opts: Pick<ViTForwardOptions, 'training'> = {}): tf.Tensor2D {
    if (inputs.length === 0) throw new Error('forwardRowsPacked needs at least one batch');
    return this.encode(inputs, opts) as tf.Tensor2D;
  }

  /**
   * The forward pass over one or more batches stacked as token rows. Without `rows` (one batch
   * only) it returns the full `ViTOutput`; with `rows` on every batch, those rows, stacked.
   */
  private encode(inputs: readonly EncodeInput[], opts: ViTForwardOptions): ViTOutput | tf.Tensor2D {
    const { embedDim: D, depth, numHeads, layerNormEps: eps } = this.config;
    const withRows = inputs.every((i) => i.rows);
    if (!withRows && (inputs.length !== 1 || inputs[0].rows)) throw new Error('a packed forward needs token rows for every batch');
    const attnBlock = opts.attentionOf === undefined ? -1 : opts.attentionOf < 0 ? depth + opts.attentionOf : opts.attentionOf;
    if (opts.attentionOf !== undefined && (attnBlock < 0 || attnBlock >= depth)) {
      throw new Error(`attentionOf=${opts.attentionOf} is outside the ${depth} blocks`);
    }
    const P = this.params;
    const stochastic = Boolean(opts.training) && this.config.dropPathRate > 0;

    return tidy(() => {
      const groups: TokenGroup[] = inputs.map((inp) => ({ ...this.embed(inp.images, inp.masks, Boolean(opts.training)), rng: stochastic ? new Rng(inp.seed ?? 0) : undefined }));
      const batches = groups.map((g) => ({ images: g.B, tokens: g.N1 }));
      let h = groups.length === 1 ? groups[0].x : (tf.concat(groups.map((g) => g.x), 0) as tf.Tensor2D);
      // The rows the last block computes, as rows of the stacked matrix.
      let rows: tf.Tensor1D | undefined;
      if (withRows) {
        let offset = 0;
        const shifted = inputs.map((inp, i) => {
          const r = offset === 0 ? (inp.rows as tf.Tensor1D) : (tf.add(inp.rows as tf.Tensor1D, tf.scalar(offset, 'int32')) as tf.Tensor1D);
          offset += groups[i].B * groups[i].N1;
          return r;
        });
        rows = shifted.length === 1 ? shifted[0] : (tf.concat(shifted, 0) as tf.Tensor1D);
      }
      let attnProbs: tf.Tensor4D | undefined;
      const blocks: tf.Tensor3D[] = [];
      const keepFrom = depth - Math.min(depth, Math.max(0, opts.lastBlocks ?? 0));
      const normed = (t: tf.Tensor2D): tf.Tensor2D => layerNorm(t, P.get('norm.weight') as tf.Tensor1D, P.get('norm.bias') as tf.Tensor1D, eps);

      for (let b = 0; b < depth; b++) {
        const pre = `blocks.${b}.`;
        const wantAttn = b === attnBlock;
        // The last block with `rows`: from the attention's output projection on, only those rows.
        const sel = rows && b === depth - 1 ? rows : undefined;
        const a = packedAttention(
          layerNorm(h, P.get(pre + 'norm1.weight') as tf.Tensor1D, P.get(pre + 'norm1.bias') as tf.Tensor1D, eps),
          {
            qkvW: P.get(pre + 'attn.qkv.weight') as tf.Tensor2D,
            qkvB: P.has(pre + 'attn.qkv.bias') ? (P.get(pre + 'attn.qkv.bias') as tf.Tensor1D) : undefined,
            projW: P.get(pre + 'attn.proj.weight') as tf.Tensor2D,
            projB: P.get(pre + 'attn.proj.bias') as tf.Tensor1D,
          },
          batches,
          numHeads,
          wantAttn,
          sel,
        );
        if (wantAttn) attnProbs = a.probs;
        if (sel) h = gatherRows(h, sel);
        h = tf.add(h, this.dropPath(this.layerScale(a.out, pre + 'ls1'), b, groups, sel));
        const m1 = linear(
          layerNorm(h, P.get(pre + 'norm2.weight') as tf.Tensor1D, P.get(pre + 'norm2.bias') as tf.Tensor1D, eps),
          P.get(pre + 'mlp.fc1.weight') as tf.Tensor2D,
          P.get(pre + 'mlp.fc1.bias') as tf.Tensor1D,
        );
        const m2 = linear(gelu(m1), P.get(pre + 'mlp.fc2.weight') as tf.Tensor2D, P.get(pre + 'mlp.fc2.bias') as tf.Tensor1D);
        h = tf.add(h, this.dropPath(this.layerScale(m2, pre + 'ls2'), b, groups, sel));
        if (b >= keepFrom && b < depth - 1) blocks.push(tf.reshape(normed(h), [groups[0].B, groups[0].N1, D]) as tf.Tensor3D);
      }
      h = normed(h);
      if (withRows) return h;
      const [{ B, N1, grid }] = groups;
      const out: ViTOutput = { tokens: tf.reshape(h, [B, N1, D]) as tf.Tensor3D, grid };
      if (attnProbs) out.attention = attnProbs;
      if (opts.lastBlocks) out.blocks = [...blocks, out.tokens];
      return out;
    });
  }

  /**
   * Tokens [B·(1+N), D] of a batch before the blocks: patch embedding, the mask token on
   * masked patches, [CLS] and the position embedding.
   */
  private embed(images: tf.Tensor4D, masks: tf.Tensor2D | undefined, training: boolean): { x: tf.Tensor2D; B: number; N1: number; grid: [number, number] } {
    const { patchSize: p, embedDim: D } = this.config;
    const [B, H, W, C] = images.shape;
    if (C !== this.config.inChans) {
      throw new Error(`images have ${C} channel(s) but this ViT expects ${this.config.inChans} (inChans); convert the data or build the model with inChans: ${C}`);
    }
    if (H % p !== 0 || W % p !== 0) {
      throw new Error(`image size ${H}×${W} is not a multiple of the patch size ${p}; resize or crop to a multiple of ${p}`);
    }
    const gh = H / p;
    const gw = W / p;
    const N = gh * gw;
    const N1 = N + 1;
    const P = this.params;
    // Patch embedding as reshape + matMul: a conv with stride = kernel = p is exactly that.
    // The 6-D patch shuffle is done as one 4-D transpose (5-D+ transposes are slow on wasm).
    const patches = tf.reshape(
      tf.transpose(tf.reshape(images, [B * gh, p, gw, p * C]), [0, 2, 1, 3]),
      [B * N, p * p * C],
    ) as tf.Tensor2D;
    // In training the pixels need no gradient: skip the patch embedding's dx product.
    let x = (training ? linearOnData : linear)(patches, P.get('patch_embed.proj.weight') as tf.Tensor2D, P.get('patch_embed.proj.bias') as tf.Tensor1D);
    if (masks) {
      if (!P.has('masked_embed')) throw new Error('this ViT was built with maskedEmbed: false, so it cannot take masks');
      if (masks.shape[0] !== B || masks.shape[1] !== N) {
        throw new Error(`masks have shape [${masks.shape}] but the input has ${B} images of ${N} patches`);
      }
      // x·(1−m) + m·e: the mask token replaces masked patch embeddings before position embeddings
      // (both broadcasts as products with K = 1, see layers.ts).
      const m = tf.reshape(tf.cast(masks, 'float32'), [B * N, 1]) as tf.Tensor2D;
      x = tf.add(tf.mul(x, repeatCols(tf.sub(1, m), D)), tf.matMul(m, tf.reshape(P.get('masked_embed'), [1, D])));
    }
    const cls = tf.reshape(repeatRows(tf.reshape(P.get('cls_token'), [1, D]), B), [B, 1, D]);
    let x3 = tf.concat([cls, tf.reshape(x, [B, N, D])], 1);
    x3 = tf.add(x3, tf.reshape(repeatRows(tf.reshape(this.positionEmbedding(gh, gw), [1, N1 * D]), B), [B, N1, D]));
    return { x: tf.reshape(x3, [B * N1, D]) as tf.Tensor2D, B, N1, grid: [gh, gw] };
  }

  /** A residual branch times its LayerScale vector, when the model has one. */
  private layerScale(x: tf.Tensor2D, name: string): tf.Tensor2D {
    return this.params.has(`${name}.gamma`) ? (tf.mul(x, this.params.get(`${name}.gamma`)) as tf.Tensor2D) : x;
  }

  /** Convenience: [CLS] [B, D] and patch tokens [B, N, D] split out of `forward`'s tokens. */
  static split(tokens: tf.Tensor3D): { cls: tf.Tensor2D; patch: tf.Tensor3D } {
    const [B, N1, D] = tokens.shape;
    return tf.tidy(() => ({
      cls: tf.reshape(tf.slice(tokens, [0, 0, 0], [B, 1, D]), [B, D]) as tf.Tensor2D,
      patch: tf.slice(tokens, [0, 1, 0], [B, N1 - 1, D]) as tf.Tensor3D,
    }));
  }

  /**
   * Position embedding [1+N, D] for a gh×gw grid. The stored grid is resized
   * bicubically as DINO's `interpolate_pos_encoding` does (PyTorch bicubic,
   * A = −0.75, align_corners=False, with DINO's +0.1 on the target size),
   * written as a constant matrix times the embedding: exact, differentiable,
   * and a plain matMul on every backend.
   */
  positionEmbedding(gh: number, gw: number): tf.Tensor2D {
    const pos = this.params.get('pos_embed') as tf.Tensor2D;
    const n = this.numPatches;
    const m = Math.round(Math.sqrt(n));
    if (gh * gw === n && gh === gw) return pos;
    const key = `${gh}x${gw}`;
    let mat = this.interp.get(key);
    if (!mat) {
      mat = tf.keep(bicubicGridMatrix(m, m, gh, gw));
      this.interp.set(key, mat);
    }
    const D = this.config.embedDim;
    return tf.tidy(() => {
      const cls = tf.slice(pos, [0, 0], [1, D]);
      const grid = tf.slice(pos, [1, 0], [n, D]) as tf.Tensor2D;
      return tf.concat([cls, linear(mat as tf.Tensor2D, grid)], 0) as tf.Tensor2D;
    });
  }

  /**
   * Stochastic depth: drop the residual branch of whole samples with the block's rate (DINO's
   * drop_path). Each batch draws from its own generator, so stacking batches changes nothing.
   */
  private dropPath(x: tf.Tensor2D, block: number, groups: readonly TokenGroup[], rows?: tf.Tensor1D): tf.Tensor2D {
    if (groups.some((g) => !g.rng)) return x;
    const depth = this.config.depth;
    const rate = depth > 1 ? (this.config.dropPathRate * block) / (depth - 1) : this.config.dropPathRate;
    if (rate <= 0) return x;
    const keep = 1 - rate;
    // Each image's factor on each of its token rows (those in `rows` only, when given).
    const factors = new Float32Array(groups.reduce((n, g) => n + g.B * g.N1, 0));
    let at = 0;
    for (const g of groups) {
      for (let i = 0; i < g.B; i++, at += g.N1) factors.fill((g.rng as Rng).random() < keep ? 1 / keep : 0, at, at + g.N1);
    }
    const tokenMask = tf.tensor2d(factors, [factors.length, 1]);
    return tf.mul(x, repeatCols(rows ? tf.gather(tokenMask, rows) : tokenMask, x.shape[1]));
  }

  dispose(): void {
    this.params.dispose();
    for (const m of this.interp.values()) m.dispose();
    this.interp.clear();
  }
}

function validateConfig(c: ViTConfig): void {
  const bad = (msg: string): never => {
    throw new Error(`invalid ViT config: ${msg}`);
  };
  if (c.imgSize % c.patchSize !== 0) bad(`imgSize ${c.imgSize} is not a multiple of patchSize ${c.patchSize}`);
  if (c.embedDim % c.numHeads !== 0) bad(`embedDim ${c.embedDim} is not divisible by numHeads ${c.numHeads}`);
  if (c.depth < 1) bad('depth must be ≥ 1');
  if (c.dropPathRate < 0 || c.dropPathRate >= 1) bad(`dropPathRate ${c.dropPathRate} must be in [0, 1)`);
  if (c.layerScale !== undefined && !(c.layerScale >= 0)) bad(`layerScale ${c.layerScale} must be ≥ 0 (0: none)`);
}

/** PyTorch's cubic convolution weights (A = −0.75) for fractional offset t. */
function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const w1 = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| ≤ 1
  const w2 = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
  return [w2(t + 1), w1(t), w1(1 - t), w2(2 - t)];
}

/** 1-D bicubic resampling matrix [outSize, inSize] as torch.nn.functional.interpolate with scale_factor = (out + 0.1) / in. */
export function bicubicMatrix1d(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const ratio = inSize / (outSize + 0.1);
  for (let i = 0; i < outSize; i++) {
    const src = (i + 0.5) * ratio - 0.5;
    const f = Math.floor(src);
    const w = cubicWeights(src - f);
    for (let k = 0; k < 4; k++) {
      const j = Math.min(Math.max(f - 1 + k, 0), inSize - 1);
      m[i * inSize + j] += w[k];
    }
  }
  return m;
}

/** 2-D separable version over row-major grids: [oh·ow, ih·iw]. */
function bicubicGridMatrix(ih: number, iw: number, oh: number, ow: number): tf.Tensor2D {
  const mh = bicubicMatrix1d(ih, oh);
  const mw = bicubicMatrix1d(iw, ow);
  const out = new Float32Array(oh * ow * ih * iw);
  for (let a = 0; a < oh; a++)
    for (let b = 0; b < ow; b++)
      for (let c = 0; c < ih; c++) {
        const wa = mh[a * ih + c];
        if (wa === 0) continue;
        for (let d = 0; d < iw; d++) out[(a * ow + b) * ih * iw + c * iw + d] = wa * mw[b * iw + d];
      }
  return tf.tensor2d(out, [oh * ow, ih * iw]);
}
