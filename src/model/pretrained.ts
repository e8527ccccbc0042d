/**
 * Loading a pretrained ViT backbone (timm, DINO, iBOT, or ibotlab's own
 * export) from a `.safetensors` file, with the architecture read from the
 * tensors themselves:
 *
 *   const { model, report } = await loadPretrainedViT('vit_small_patch16_224.dino.safetensors');
 *   console.log(formatPretrainedReport(report));
 *
 * Everything that fixes the forward pass is in the weights' shapes except the
 * number of attention heads (the qkv projection is [3D, D] whatever the head
 * count), so heads come from the file's metadata, an explicit option, or
 * timm's convention of 64 channels per head, in that order of trust.
 */
import * as fs from 'node:fs';
import { NamedArray, TensorMap, parseSafetensors } from '../io/safetensors';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD, NormalizeConfig } from '../data/normalize';
import { VisionTransformer, VIT_DEFAULTS, ViTConfig } from './vit';

export interface LoadPretrainedOptions {
  /**
   * Attention heads. Overrides the file's metadata and the width/64 rule;
   * needed for models that do not follow timm's 64 channels per head.
   */
  heads?: number;
  /**
   * Name prefix of the backbone tensors, e.g. `'module.backbone.'` (the
   * trailing dot may be left out; `''` means none). Default: detected from
   * where `pos_embed` sits; when a file holds several backbones (teacher and
   * student), the teacher's is taken.
   */
  prefix?: string;
  /**
   * Reject tensors under the prefix that a plain ViT does not use (layer
   * scale, register tokens, …): ignoring them would silently compute
   * something else than the model was trained to. Default true; with false
   * they are listed in the report's `unexpected`.
   */
  strict?: boolean;
  /** LayerNorm epsilon. Default: the metadata's `layer_norm_eps`, else 1e-6 (timm, DINO, iBOT). */
  layerNormEps?: number;
  /** Stochastic depth for fine-tuning. Default 0 (inference). */
  dropPathRate?: number;
  /** Name used in messages when `source` is bytes. Default `'<bytes>'`. */
  name?: string;
}

export type HeadsSource = 'option' | 'metadata' | 'width/64';
export type NormalizationSource = 'metadata' | 'imagenet' | 'grayscale-default';

export interface PretrainedReport {
  /** The file (or `name`) the weights came from. */
  source: string;
  /** Prefix stripped from the backbone's tensor names (`''` when none). */
  prefix: string;
  /** The architecture built. */
  config: ViTConfig;
  heads: { value: number; source: HeadsSource };
  /** Mean/std to normalise [0, 1] images with before `forward`. */
  normalization: NormalizeConfig & { source: NormalizationSource };
  /** Model parameter names (timm spelling) that received a tensor. */
  loaded: string[];
  /** File tensors deliberately left out: projection heads, other backbones of the file (e.g. the student). */
  ignored: string[];
  /** Optional parameters the file lacks (`masked_embed`: only needed to feed masks). */
  missing: string[];
  /** Tensors under the prefix a plain ViT does not use (only with `strict: false`). */
  unexpected: string[];
  /** Parameters loaded (numbers, not tensors). */
  numParameters: number;
  metadata: Record<string, string>;
}

export interface PretrainedViT {
  model: VisionTransformer;
  report: PretrainedReport;
}

/** The architecture a set of tensors describes, before any model is built. */
export interface InferredViT {
  config: ViTConfig;
  prefix: string;
  heads: { value: number; source: HeadsSource };
  normalization: NormalizeConfig & { source: NormalizationSource };
}

/** Metadata keys read for the head count and normalisation (first found wins). */
export const HEADS_METADATA_KEYS = ['num_heads', 'heads', 'numHeads'];
export const MEAN_METADATA_KEYS = ['mean', 'image_mean'];
export const STD_METADATA_KEYS = ['std', 'image_std'];

/**
 * Tensors of projection heads that sit next to backbones in DINO/iBOT and
 * timm files: a classifier (`head.*`, `head_dist.*`), the iBOT/DINO head's
 * MLP (`mlp.0.*` at the top level; the backbone's MLPs are `blocks.i.mlp.*`)
 * and its weight-normalised prototypes (`last_layer*`).
 */
const HEAD_KEY = /^(head(_dist)?(\.|$)|last_layer\d*(\.|$)|mlp\.\d+\.)/;

const POS = 'pos_embed';
const PATCH = 'patch_embed.proj.weight';

/**
 * Read a ViT backbone from a `.safetensors` file (or its bytes) with
 * timm/DINO/iBOT parameter names, infer its architecture and load it.
 * Async so it never blocks on a large file; no tensor is read back.
 */
export async function loadPretrainedViT(source: string | Uint8Array, opts: LoadPretrainedOptions = {}): Promise<PretrainedViT> {
  const name = typeof source === 'string' ? source : opts.name ?? '<bytes>';
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = await fs.promises.readFile(source);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `${source}: no such file. Check the path (relative paths start at ${process.cwd()}), or get known weights with 'ibotlab weights fetch NAME'.`
          : `${source}: cannot read the weights file (${(e as Error).message}).`,
      );
    }
  } else {
    bytes = source;
  }
  let parsed: { tensors: TensorMap; metadata: Record<string, string> };
  try {
    parsed = parseSafetensors(bytes, name);
  } catch (e) {
    // parseSafetensors names the file and the defect; a broken download is the usual cause.
    throw new Error(`${(e as Error).message} If it was downloaded, delete it and download it again.`);
  }
  return pretrainedViTFromTensors(parsed.tensors, parsed.metadata, { ...opts, name });
}

/** The same as `loadPretrainedViT` on tensors already in memory (e.g. from `readSafetensors`). */
export function pretrainedViTFromTensors(tensors: TensorMap, metadata: Record<string, string> = {}, opts: LoadPretrainedOptions = {}): PretrainedViT {
  const source = opts.name ?? '<tensors>';
  const inferred = inferViTConfig(tensors, metadata, opts);
  const { config, prefix } = inferred;
  const strict = opts.strict ?? true;

  // Sort every file tensor into used, ignored or unexpected before allocating anything.
  const own: TensorMap = {};
  const ignored: string[] = [];
  for (const key of Object.keys(tensors)) {
    if (!key.startsWith(prefix)) ignored.push(key);
    else own[key.slice(prefix.length)] = tensors[key];
  }

  const model = new VisionTransformer(config);
  try {
    const wanted = new Set(model.params.params.map((p) => p.name));
    const unexpected: string[] = [];
    for (const n of Object.keys(own)) {
      if (wanted.has(n)) continue;
      if (HEAD_KEY.test(n)) ignored.push(prefix + n);
      else unexpected.push(prefix + n);
      delete own[n];
    }
    if (unexpected.length && strict) {
      throw new Error(
        `${source}: ${unexpected.length} tensor(s) that a plain ViT does not use: ${list(unexpected)}. ` +
          'This looks like a ViT variant (layer scale, register tokens, …) that ibotlab does not implement; pass strict: false to load the rest anyway.',
      );
    }
    const missing: string[] = [];
    for (const p of model.params.params) {
      const entry = own[p.name];
      if (!entry) {
        missing.push(p.name);
        continue;
      }
      if (entry.dtype !== 'float32') {
        throw new Error(`${source}: '${prefix + p.name}' holds integers, but ViT weights are floating point; the file is not a weights file or is corrupt.`);
      }
      if (!sameShape(entry.shape, p.torchShape)) {
        throw new Error(
          `${source}: inconsistent shapes: '${prefix + p.name}' is [${entry.shape}] but a ViT of ${describe(config)} needs [${p.torchShape}]; the file is corrupt or not a plain timm/DINO/iBOT ViT.`,
        );
      }
    }
    // masked_embed is only built when the file has it, so anything missing here is required.
    if (missing.length) {
      throw new Error(`${source}: missing ${missing.length} backbone tensor(s): ${list(missing.map((m) => prefix + m))}. The file is truncated or holds another architecture.`);
    }
    const loaded = model.params.loadTorch(own, { strict: true, source });
    const report: PretrainedReport = {
      source,
      prefix,
      config,
      heads: inferred.heads,
      normalization: inferred.normalization,
      loaded,
      ignored: ignored.sort(),
      missing: config.maskedEmbed ? [] : ['masked_embed'],
      unexpected: unexpected.sort(),
      numParameters: model.params.numParameters(),
      metadata: { ...metadata },
    };
    return { model, report };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * The architecture, prefix, heads and normalisation that tensors with
 * timm/DINO/iBOT names describe. Pure: builds no model, so it is cheap for
 * `info`-style commands and for checking a file before loading it.
 */
export function inferViTConfig(tensors: TensorMap, metadata: Record<string, string> = {}, opts: LoadPretrainedOptions = {}): InferredViT {
  const source = opts.name ?? '<tensors>';
  const prefix = choosePrefix(tensors, opts.prefix, source);
  const get = (n: string): NamedArray | undefined => tensors[prefix + n];

  const patch = get(PATCH) as NamedArray;
  if (patch.shape.length !== 4) {
    throw new Error(`${source}: '${prefix}${PATCH}' has shape [${patch.shape}], expected a convolution kernel [width, channels, patch, patch]; the file is not a plain ViT.`);
  }
  const [embedDim, inChans, ph, pw] = patch.shape;
  if (ph !== pw) throw new Error(`${source}: non-square patches ${ph}×${pw} in '${prefix}${PATCH}' are not supported.`);

  const pos = get(POS) as NamedArray;
  const positions = pos.shape.length === 3 ? pos.shape[1] : pos.shape.length === 2 ? pos.shape[0] : NaN;
  const grid = Math.round(Math.sqrt(positions - 1));
  if (!Number.isInteger(positions) || grid < 1 || grid * grid !== positions - 1) {
    throw new Error(
      `${source}: '${prefix}${POS}' has shape [${pos.shape}]: ${positions} positions are not 1 class token + a square grid; ` +
        'ViTs with register tokens, without a class-token position, or trained on non-square images are not supported.',
    );
  }

  const blockIds = new Set<number>();
  for (const k of Object.keys(tensors)) {
    if (!k.startsWith(prefix)) continue;
    const m = /^blocks\.(\d+)\./.exec(k.slice(prefix.length));
    if (m) blockIds.add(Number(m[1]));
  }
  const depth = blockIds.size ? Math.max(...blockIds) + 1 : 0;
  if (depth === 0) throw new Error(`${source}: no '${prefix}blocks.0.…' tensors; the file has a patch embedding but no transformer blocks.`);
  const gaps = Array.from({ length: depth }, (_, i) => i).filter((i) => !blockIds.has(i));
  if (gaps.length) throw new Error(`${source}: inconsistent shapes: blocks ${gaps.join(', ')} are missing out of 0…${depth - 1}; the file is truncated or corrupt.`);

  const fc1 = get('blocks.0.mlp.fc1.weight');
  if (!fc1 || fc1.shape.length !== 2 || fc1.shape[1] !== embedDim) {
    throw new Error(
      `${source}: inconsistent shapes: '${prefix}blocks.0.mlp.fc1.weight' is ${fc1 ? `[${fc1.shape}]` : 'missing'} but the patch embedding has width ${embedDim}; expected [hidden, ${embedDim}].`,
    );
  }
  const mlpRatio = fc1.shape[0] / embedDim;

  const heads = chooseHeads(embedDim, metadata, opts.heads, source);
  const layerNormEps = opts.layerNormEps ?? metaNumber(metadata, ['layer_norm_eps'], source) ?? VIT_DEFAULTS.layerNormEps;
  const config: ViTConfig = {
    ...VIT_DEFAULTS,
    imgSize: grid * ph,
    patchSize: ph,
    inChans,
    embedDim,
    depth,
    numHeads: heads.value,
    mlpRatio,
    qkvBias: get('blocks.0.attn.qkv.bias') !== undefined,
    dropPathRate: opts.dropPathRate ?? 0,
    layerNormEps,
    maskedEmbed: get('masked_embed') !== undefined,
  };
  // LayerScale vectors are weights like any other: their presence is the architecture.
  if (get('blocks.0.ls1.gamma') !== undefined) config.layerScale = 1;
  return { config, prefix, heads, normalization: normalizationFor(metadata, inChans, source) };
}

/**
 * Mean/std that go with a weights file: its metadata's `mean`/`std` (or
 * `image_mean`/`image_std`) as a JSON list or comma-separated numbers;
 * otherwise ImageNet's for 3 channels, and for 1 channel the grayscale
 * default ibotlab pretrains with (Fashion-MNIST's), as `normalize: 'auto'` does.
 */
export function normalizationFor(metadata: Record<string, string>, channels: number, source = '<metadata>'): NormalizeConfig & { source: NormalizationSource } {
  const mean = metaList(metadata, MEAN_METADATA_KEYS, source);
  const std = metaList(metadata, STD_METADATA_KEYS, source);
  if (mean || std) {
    if (!mean || !std) throw new Error(`${source}: metadata has ${mean ? 'mean' : 'std'} but not ${mean ? 'std' : 'mean'}; give both or neither.`);
    if (mean.length !== channels || std.length !== channels) {
      throw new Error(`${source}: metadata mean/std have ${mean.length}/${std.length} values but the model takes ${channels} channel(s).`);
    }
    if (std.some((s) => !(s > 0))) throw new Error(`${source}: metadata std [${std}] must be positive.`);
    return { mean, std, source: 'metadata' };
  }
  if (channels === 3) return { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD], source: 'imagenet' };
  if (channels === 1) return { mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD], source: 'grayscale-default' };
  throw new Error(`${source}: no mean/std in the metadata and no default for ${channels} channels; add 'mean' and 'std' to the file's metadata.`);
}

/** A few human lines about what was loaded (what `ibotlab eval --weights` prints). */
export function formatPretrainedReport(r: PretrainedReport): string {
  const c = r.config;
  const headsWhy = r.heads.source === 'option' ? 'given' : r.heads.source === 'metadata' ? 'from metadata' : "width/64, timm's rule; pass --heads N if it was trained otherwise";
  const normWhy = r.normalization.source === 'metadata' ? 'from metadata' : r.normalization.source === 'imagenet' ? 'ImageNet default' : 'grayscale default';
  const lines = [
    `weights: ${r.source}${r.prefix ? ` (prefix '${r.prefix}')` : ''}`,
    `ViT: ${describe(c)}, ${c.numHeads} heads (${headsWhy}); ${(r.numParameters / 1e6).toFixed(1)}M parameters`,
    `loaded ${r.loaded.length} tensors` +
      (r.ignored.length ? `; ignored ${r.ignored.length} (${summarise(r.ignored)})` : '') +
      (r.missing.length ? `; absent: ${r.missing.join(', ')} (optional)` : '') +
      (r.unexpected.length ? `; NOT USED: ${list(r.unexpected)}` : ''),
    `normalisation: mean [${r.normalization.mean.map((v) => round(v)).join(', ')}], std [${r.normalization.std.map((v) => round(v)).join(', ')}] (${normWhy})`,
  ];
  return lines.join('\n');
}

function choosePrefix(tensors: TensorMap, wanted: string | undefined, source: string): string {
  const keys = Object.keys(tensors);
  const candidates = keys
    .filter((k) => k.endsWith(POS))
    .map((k) => k.slice(0, -POS.length))
    .filter((p) => (p === '' || p.endsWith('.')) && p + PATCH in tensors)
    .sort();
  if (wanted !== undefined) {
    const p = wanted === '' || wanted.endsWith('.') ? wanted : `${wanted}.`;
    if (p + POS in tensors && p + PATCH in tensors) return p;
    throw new Error(
      `${source}: no '${p}${POS}' / '${p}${PATCH}' for prefix '${p}'; ` +
        (candidates.length ? `the file's backbone prefixes are: ${candidates.map((c) => `'${c}'`).join(', ')}.` : 'the file holds no ViT backbone.'),
    );
  }
  if (candidates.length === 1) return candidates[0];
  if (candidates.length === 0) {
    const looksLikeHead = keys.some((k) => /(^|\.)last_layer\d*\./.test(k) || /(^|\.)mlp\.0\.weight$/.test(k));
    throw new Error(
      `${source}: not a ViT backbone: no '${POS}' with a '${PATCH}' among its ${keys.length} tensors (e.g. ${list(keys.slice(0, 3))})` +
        (looksLikeHead ? '; it looks like a projection head alone' : '') +
        '. Expected timm/DINO/iBOT names; convert PyTorch checkpoints as docs/convert-checkpoint.md shows.',
    );
  }
  // DINO/iBOT evaluate the teacher; a full training checkpoint holds both.
  const teachers = candidates.filter((p) => p.split('.').includes('teacher'));
  if (teachers.length === 1) return teachers[0];
  throw new Error(`${source}: the file holds ${candidates.length} backbones (${candidates.map((c) => `'${c}'`).join(', ')}); choose one with the prefix option (--prefix).`);
}

function chooseHeads(width: number, metadata: Record<string, string>, option: number | undefined, source: string): { value: number; source: HeadsSource } {
  const check = (h: number, from: string): number => {
    if (!Number.isInteger(h) || h < 1) throw new Error(`${source}: heads ${from} must be a positive integer, got ${h}.`);
    if (width % h !== 0) {
      const divisors = [1, 2, 3, 4, 6, 8, 12, 16].filter((d) => width % d === 0 && width / d >= 16);
      throw new Error(`${source}: heads = ${h} ${from} does not divide the width ${width}; choose a divisor (e.g. ${divisors.join(', ')}).`);
    }
    return h;
  };
  if (option !== undefined) return { value: check(option, '(option)'), source: 'option' };
  const meta = metaNumber(metadata, HEADS_METADATA_KEYS, source);
  if (meta !== undefined) return { value: check(meta, 'in the metadata'), source: 'metadata' };
  if (width % 64 === 0) return { value: width / 64, source: 'width/64' };
  throw new Error(
    `${source}: cannot tell the number of attention heads: the metadata has no ${HEADS_METADATA_KEYS[0]} and the width ${width} is not a multiple of 64 (timm's rule); pass heads (--heads N).`,
  );
}

function metaNumber(metadata: Record<string, string>, keys: string[], source: string): number | undefined {
  for (const k of keys) {
    if (metadata[k] === undefined) continue;
    const v = Number(String(metadata[k]).trim());
    if (!Number.isFinite(v)) throw new Error(`${source}: metadata '${k}' = '${metadata[k]}' is not a number.`);
    return v;
  }
  return undefined;
}

function metaList(metadata: Record<string, string>, keys: string[], source: string): number[] | undefined {
  for (const k of keys) {
    const raw = metadata[k];
    if (raw === undefined) continue;
    const text = String(raw).trim();
    let values: unknown;
    try {
      values = text.startsWith('[') ? JSON.parse(text) : text.split(/[,\s]+/).filter(Boolean).map(Number);
    } catch {
      values = undefined;
    }
    if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new Error(`${source}: metadata '${k}' = '${text}' is not a list of numbers (write e.g. "[0.485, 0.456, 0.406]").`);
    }
    return values as number[];
  }
  return undefined;
}

function describe(c: ViTConfig): string {
  const g = c.imgSize / c.patchSize;
  return `width ${c.embedDim}, depth ${c.depth}, patch ${c.patchSize}, ${c.inChans} channel(s), image ${c.imgSize} (${g}×${g} patches), mlp ratio ${round(c.mlpRatio)}, ${c.qkvBias ? 'qkv bias' : 'no qkv bias'}`;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function list(names: string[], max = 6): string {
  return names.slice(0, max).map((n) => `'${n}'`).join(', ') + (names.length > max ? `, … (${names.length} in all)` : '');
}

/** Group names by their first two dotted parts: `head.mlp.*`, `student.backbone.*`. */
function summarise(names: string[]): string {
  const groups = new Map<string, number>();
  for (const n of names) {
    const parts = n.split('.');
    const g = parts.length > 2 ? `${parts.slice(0, 2).join('.')}.*` : parts.length === 2 ? `${parts[0]}.*` : n;
    groups.set(g, (groups.get(g) ?? 0) + 1);
  }
  return [...groups.keys()].slice(0, 4).join(', ') + (groups.size > 4 ? ', …' : '');
}

function round(v: number): string {
  return String(Number(v.toFixed(4)));
}
