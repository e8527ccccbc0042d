/**
 * Pretrained ViTs: loading timm/DINO/iBOT-named `.safetensors` with the
 * architecture inferred from the shapes (checked against the independent
 * PyTorch forward fixture), the error messages, photos of mixed sizes at a
 * model's input size, fetching weights from a local HTTP server (never the
 * network), and the checkpoint converter of docs/convert-checkpoint.md.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { REFERENCE_DIR, setup } from './helpers';
import * as tf from '@tensorflow/tfjs-core';
import { NamedArray, TensorMap, readSafetensors, serializeSafetensors } from '../src/io/safetensors';
import { formatPretrainedReport, inferViTConfig, loadPretrainedViT, normalizationFor } from '../src/model/pretrained';
import { VisionTransformer, VIT_DEFAULTS, ViTConfig } from '../src/model/vit';
import { compare, flatten, shapeOf } from '../src/reference/compare';
import { evalResizeShape, readPhotoFolder, readPhotos } from '../src/data/photos';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeImages } from '../src/data/normalize';
import { KNOWN_WEIGHTS, WeightsSpec, cachedWeightsPath, defaultWeightsCacheDir, fetchWeights } from '../src/io/weights-fetch';

const repo = path.resolve(__dirname, '..', '..');
const refDir = REFERENCE_DIR;
const haveRef = fs.existsSync(path.join(refDir, 'vit_forward.json')) && fs.existsSync(path.join(refDir, 'vit.safetensors'));
const photosDir = path.join(repo, 'datasets', 'photos');

let tmp: string;
before(async () => {
  await setup();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-pretrained-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileNo = 0;
function writeWeights(tensors: TensorMap, metadata: Record<string, string> = {}): string {
  const file = path.join(tmp, `w${fileNo++}.safetensors`);
  fs.writeFileSync(file, serializeSafetensors(tensors, metadata));
  return file;
}

function withPrefix(tensors: TensorMap, prefix: string): TensorMap {
  return Object.fromEntries(Object.entries(tensors).map(([k, v]) => [prefix + k, v]));
}

function without(tensors: TensorMap, ...names: string[]): TensorMap {
  return Object.fromEntries(Object.entries(tensors).filter(([k]) => !names.includes(k)));
}

/** Small deterministic values (no tf, no sync reads). */
function pseudoRandom(n: number, seed: number, scale = 0.05): Float32Array {
  const out = new Float32Array(n);
  let s = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

function arr(shape: number[], seed: number, fill?: number): NamedArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, dtype: 'float32', data: fill === undefined ? pseudoRandom(n, seed) : new Float32Array(n).fill(fill) };
}

/** timm-named tensors for a ViT of this configuration (as PyTorch would save them). */
function synthViT(c: { img: number; p: number; C: number; D: number; depth: number; hidden: number; qkvBias: boolean }): TensorMap {
  const n = (c.img / c.p) ** 2;
  const t: TensorMap = {
    cls_token: arr([1, 1, c.D], 1),
    pos_embed: arr([1, 1 + n, c.D], 2),
    'patch_embed.proj.weight': arr([c.D, c.C, c.p, c.p], 3),
    'patch_embed.proj.bias': arr([c.D], 4),
    'norm.weight': arr([c.D], 0, 1),
    'norm.bias': arr([c.D], 5),
  };
  for (let b = 0; b < c.depth; b++) {
    const s = 10 + 20 * b;
    t[`blocks.${b}.norm1.weight`] = arr([c.D], 0, 1);
    t[`blocks.${b}.norm1.bias`] = arr([c.D], s);
    t[`blocks.${b}.attn.qkv.weight`] = arr([3 * c.D, c.D], s + 1);
    if (c.qkvBias) t[`blocks.${b}.attn.qkv.bias`] = arr([3 * c.D], s + 2);
    t[`blocks.${b}.attn.proj.weight`] = arr([c.D, c.D], s + 3);
    t[`blocks.${b}.attn.proj.bias`] = arr([c.D], s + 4);
    t[`blocks.${b}.norm2.weight`] = arr([c.D], 0, 1);
    t[`blocks.${b}.norm2.bias`] = arr([c.D], s + 5);
    t[`blocks.${b}.mlp.fc1.weight`] = arr([c.hidden, c.D], s + 6);
    t[`blocks.${b}.mlp.fc1.bias`] = arr([c.hidden], s + 7);
    t[`blocks.${b}.mlp.fc2.weight`] = arr([c.D, c.hidden], s + 8);
    t[`blocks.${b}.mlp.fc2.bias`] = arr([c.D], s + 9);
  }
  return t;
}

const SMALL = { img: 16, p: 8, C: 3, D: 64, depth: 2, hidden: 128, qkvBias: false };

async function rejects(p: Promise<unknown>, re: RegExp): Promise<Error> {
  let err: Error | undefined;
  try {
    await p;
  } catch (e) {
    err = e as Error;
  }
  assert.ok(err, `expected an error matching ${re}`);
  assert.match(err.message, re);
  assert.doesNotMatch(err.message, /\n/, 'errors are one line');
  return err;
}

describe('loadPretrainedViT on the reference ViT (independent PyTorch forward)', { skip: haveRef ? false : `no reference fixtures at ${refDir}; they come with the project's shared folder` }, () => {
  type Json = Record<string, unknown>;
  let fixture: { config: Record<string, number | boolean>; inputs: Json; expected: Json };
  let ref: TensorMap;

  before(() => {
    fixture = JSON.parse(fs.readFileSync(path.join(refDir, 'vit_forward.json'), 'utf8'));
    ref = readSafetensors(path.join(refDir, 'vit.safetensors')).tensors;
  });

  /** The fixture's forward through a loaded model: cls and patch tokens (and the masked ones when it can). */
  async function assertForward(model: VisionTransformer, masked: boolean): Promise<void> {
    const inp = fixture.inputs;
    const exp = fixture.expected;
    const nested = (x: unknown): tf.Tensor => tf.tensor(flatten(x), shapeOf(x));
    const images = tf.tidy(() => tf.transpose(nested(inp.imagesNCHW), [0, 2, 3, 1])) as tf.Tensor4D;
    const masks = nested(inp.masks) as tf.Tensor2D;
    try {
      const check = async (opts: { masks?: tf.Tensor2D }, clsKey: string, patchKey: string): Promise<void> => {
        const out = model.forward(images, opts);
        const { cls, patch } = VisionTransformer.split(out.tokens);
        const c = compare(await cls.data(), flatten(exp[clsKey]));
        const p = compare(await patch.data(), flatten(exp[patchKey]));
        tf.dispose([out.tokens, cls, patch]);
        assert.ok(c.passed, `${clsKey}: ${c.worst} (max rel ${c.maxRelErr})`);
        assert.ok(p.passed, `${patchKey}: ${p.worst} (max rel ${p.maxRelErr})`);
      };
      await check({}, 'cls', 'patch');
      if (masked) await check({ masks }, 'maskedCls', 'maskedPatch');
      else assert.throws(() => model.forward(images, { masks }), /maskedEmbed: false/);
    } finally {
      tf.dispose([images, masks]);
    }
  }

  function assertFixtureConfig(c: ViTConfig): void {
    const f = fixture.config;
    assert.deepEqual(
      [c.embedDim, c.depth, c.patchSize, c.imgSize, c.inChans, c.mlpRatio, c.qkvBias],
      [f.embedDim, f.depth, f.patchSize, f.imgSize, f.inChans, f.mlpRatio, f.qkvBias],
    );
    assert.equal(c.dropPathRate, 0);
    assert.equal(c.layerNormEps, 1e-6);
  }

  it('plain names, heads from metadata: architecture, report and the fixture forward (masked too)', async () => {
    const before = tf.memory().numTensors;
    const file = writeWeights(ref, { num_heads: '4' });
    const { model, report } = await loadPretrainedViT(file);
    try {
      assertFixtureConfig(model.config);
      assert.equal(model.config.numHeads, 4);
      assert.deepEqual(report.heads, { value: 4, source: 'metadata' });
      assert.equal(report.prefix, '');
      assert.equal(report.loaded.length, Object.keys(ref).length);
      assert.deepEqual([report.ignored, report.missing, report.unexpected], [[], [], []]);
      assert.equal(model.config.maskedEmbed, true);
      // One channel, no mean/std in the file: the grayscale default ibotlab pretrains with.
      assert.equal(report.normalization.source, 'grayscale-default');
      await assertForward(model, true);
      assert.match(formatPretrainedReport(report), /width 32, depth 2, patch 4, 1 channel\(s\), image 28 \(7×7 patches\).*4 heads \(from metadata\)/);
    } finally {
      model.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
  });

  it("module.backbone. prefix, no masked_embed, heads option: detected, reported absent, same forward", async () => {
    const before = tf.memory().numTensors;
    const file = writeWeights(withPrefix(without(ref, 'masked_embed'), 'module.backbone.'));
    const { model, report } = await loadPretrainedViT(file, { heads: 4 });
    try {
      assertFixtureConfig(model.config);
      assert.equal(report.prefix, 'module.backbone.');
      assert.deepEqual(report.heads, { value: 4, source: 'option' });
      assert.deepEqual(report.missing, ['masked_embed']);
      assert.equal(model.config.maskedEmbed, false);
      await assertForward(model, false);
      assert.match(formatPretrainedReport(report), /prefix 'module\.backbone\.'.*\n.*heads \(given\)[\s\S]*absent: masked_embed \(optional\)/);
    } finally {
      model.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
  });

  it('a full iBOT-style checkpoint: takes the teacher, ignores the student and the heads', async () => {
    const head = readSafetensors(path.join(refDir, 'head.safetensors')).tensors;
    const student = Object.fromEntries(Object.entries(ref).map(([k, v]) => [k, { ...v, data: (v.data as Float32Array).map((x) => x + 0.5) }])) as TensorMap;
    const file = writeWeights(
      {
        ...withPrefix(ref, 'teacher.backbone.'),
        ...withPrefix(head, 'teacher.head.'),
        ...withPrefix(student, 'student.module.backbone.'),
        ...withPrefix(head, 'student.module.head.'),
      },
      { heads: '4' },
    );
    const { model, report } = await loadPretrainedViT(file);
    try {
      assert.equal(report.prefix, 'teacher.backbone.');
      assert.equal(report.heads.source, 'metadata');
      assert.equal(report.ignored.length, Object.keys(ref).length + 2 * Object.keys(head).length);
      assert.ok(report.ignored.includes('student.module.backbone.pos_embed'));
      assert.ok(report.ignored.includes('teacher.head.last_layer2.weight_v'));
      await assertForward(model, true);
      assert.match(formatPretrainedReport(report), /ignored \d+ \(student\.module\.\*, teacher\.head\.\*\)/);
    } finally {
      model.dispose();
    }
    // The student on request (prefix without its trailing dot): it differs, so the fixture no longer matches.
    const s = await loadPretrainedViT(file, { prefix: 'student.module.backbone' });
    try {
      assert.equal(s.report.prefix, 'student.module.backbone.');
      const cls = s.model.params.get('cls_token');
      const got = await cls.data();
      assert.ok(Math.abs(got[0] - ((ref.cls_token.data[0] as number) + 0.5)) < 1e-6);
    } finally {
      s.model.dispose();
    }
  });

  it('head tensors next to the backbone (timm classifier, iBOT head) are ignored', async () => {
    const head = readSafetensors(path.join(refDir, 'head.safetensors')).tensors;
    const file = writeWeights({ ...ref, ...head, 'head.weight': arr([10, 32], 7), 'head.bias': arr([10], 8) }, { num_heads: '4' });
    const { model, report } = await loadPretrainedViT(file);
    try {
      assert.equal(report.prefix, '');
      assert.deepEqual(report.ignored, [...Object.keys(head), 'head.bias', 'head.weight'].sort());
      await assertForward(model, true);
    } finally {
      model.dispose();
    }
  });

  it('bytes in memory load the same way', async () => {
    const bytes = serializeSafetensors(ref, { num_heads: '4' });
    const { model, report } = await loadPretrainedViT(new Uint8Array(bytes), { name: 'mem' });
    try {
      assert.equal(report.source, 'mem');
      await assertForward(model, true);
    } finally {
      model.dispose();
    }
  });

  it('errors: width not a multiple of 64 without heads; heads that do not divide the width', async () => {
    const file = writeWeights(ref);
    await rejects(loadPretrainedViT(file), /cannot tell the number of attention heads.*width 32 is not a multiple of 64.*pass heads \(--heads N\)/);
    await rejects(loadPretrainedViT(file, { heads: 5 }), /heads = 5 \(option\) does not divide the width 32; choose a divisor/);
    await rejects(loadPretrainedViT(writeWeights(ref, { num_heads: '3' })), /heads = 3 in the metadata does not divide the width 32/);
    await rejects(loadPretrainedViT(writeWeights(ref, { num_heads: 'six' })), /metadata 'num_heads' = 'six' is not a number/);
  });

  it('errors: truncated and corrupt files, missing file', async () => {
    const good = serializeSafetensors(ref, { num_heads: '4' });
    const cut = path.join(tmp, 'cut.safetensors');
    fs.writeFileSync(cut, good.subarray(0, Math.floor(good.length / 2)));
    await rejects(loadPretrainedViT(cut), /cut\.safetensors: not a valid \.safetensors file.*truncated.*download it again/);
    const junk = path.join(tmp, 'junk.safetensors');
    fs.writeFileSync(junk, Buffer.from('<!DOCTYPE html><html>rate limited</html>'));
    await rejects(loadPretrainedViT(junk), /junk\.safetensors: not a valid \.safetensors file/);
    await rejects(loadPretrainedViT(path.join(tmp, 'nope.safetensors')), /nope\.safetensors: no such file.*ibotlab weights fetch/);
  });

  it('errors: inconsistent shapes, missing blocks and tensors, integer weights', async () => {
    const T = (over: TensorMap, drop: string[] = []): Promise<unknown> => loadPretrainedViT(writeWeights({ ...without(ref, ...drop), ...over }, { num_heads: '4' }));
    await rejects(T({ 'blocks.1.mlp.fc1.weight': arr([64, 32], 1), 'blocks.1.mlp.fc1.bias': arr([64], 2) }), /inconsistent shapes: 'blocks\.1\.mlp\.fc1\.weight' is \[64,32\] but a ViT of width 32.*needs \[128,32\]/);
    await rejects(T({ pos_embed: arr([1, 50, 16], 1) }), /inconsistent shapes: 'pos_embed' is \[1,50,16\]/);
    await rejects(T({ pos_embed: arr([1, 48, 32], 1) }), /'pos_embed' has shape \[1,48,32\]: 48 positions are not 1 class token \+ a square grid/);
    await rejects(T({}, ['blocks.0.norm1.weight', 'blocks.0.norm1.bias', ...Object.keys(ref).filter((k) => k.startsWith('blocks.0.'))]), /blocks 0 are missing out of 0…1/);
    await rejects(T({}, ['norm.weight']), /missing 1 backbone tensor\(s\): 'norm\.weight'/);
    await rejects(T({ 'blocks.0.mlp.fc1.weight': arr([128, 16], 1) }), /inconsistent shapes: 'blocks\.0\.mlp\.fc1\.weight' is \[128,16\] but the patch embedding has width 32/);
    await rejects(T({ 'norm.bias': { shape: [32], dtype: 'int32', data: new Int32Array(32) } }), /'norm\.bias' holds integers/);
    await rejects(T({ 'patch_embed.proj.weight': arr([32, 1, 4, 2], 1) }), /non-square patches 4×2/);
  });

  it('errors: not a ViT (a head alone, no patch embedding), several backbones, a wrong prefix', async () => {
    await rejects(loadPretrainedViT(path.join(refDir, 'head.safetensors')), /not a ViT backbone: no 'pos_embed' with a 'patch_embed\.proj\.weight'.*looks like a projection head alone.*docs\/convert-checkpoint\.md/);
    await rejects(loadPretrainedViT(writeWeights(without(ref, 'patch_embed.proj.weight'))), /not a ViT backbone/);
    const two = writeWeights({ ...withPrefix(ref, 'a.'), ...withPrefix(ref, 'b.') }, { num_heads: '4' });
    await rejects(loadPretrainedViT(two), /holds 2 backbones \('a\.', 'b\.'\); choose one with the prefix option/);
    await rejects(loadPretrainedViT(two, { prefix: 'c.' }), /no 'c\.pos_embed'.*prefix 'c\.'; the file's backbone prefixes are: 'a\.', 'b\.'/);
  });

  it('tensors a plain ViT does not use: an error, or listed with strict: false; LayerScale is read', async () => {
    // A DINOv2-like file: LayerScale in every block (which ibotlab implements) and a register token (which it does not).
    const depth = new Set(Object.keys(ref).filter((k) => k.startsWith('blocks.')).map((k) => k.split('.')[1])).size;
    const ls: Record<string, NamedArray> = {};
    for (let i = 0; i < depth; i++) for (const g of ['ls1', 'ls2']) ls[`blocks.${i}.${g}.gamma`] = arr([32], 3 + i);
    const file = writeWeights({ ...ref, ...ls, reg_token: arr([1, 4, 32], 4) }, { num_heads: '4' });
    await rejects(loadPretrainedViT(file), /1 tensor\(s\) that a plain ViT does not use: 'reg_token'.*strict: false/);
    const { model, report } = await loadPretrainedViT(file, { strict: false });
    try {
      assert.ok(model.config.layerScale, 'LayerScale inferred from blocks.0.ls1.gamma');
      assert.deepEqual(report.unexpected, ['reg_token']);
      assert.match(formatPretrainedReport(report), /NOT USED: 'reg_token'/);
    } finally {
      model.dispose();
    }
    // LayerScale in some blocks only: the file is inconsistent, and the error names what is missing.
    await rejects(loadPretrainedViT(writeWeights({ ...ref, 'blocks.0.ls1.gamma': arr([32], 3) }, { num_heads: '4' })), /missing \d+ backbone tensor\(s\): .*ls2\.gamma/);
  });

  it('a failed load leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    await rejects(loadPretrainedViT(writeWeights({ ...ref, 'norm.bias': arr([31], 1) }, { num_heads: '4' })), /inconsistent shapes/);
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('architecture inference on synthetic timm-named weights', () => {
  it('width/64 heads, no qkv bias, mlp ratio 2, image size from pos_embed; same forward as a hand-built model', async () => {
    const before = tf.memory().numTensors;
    const t = synthViT(SMALL);
    const { model, report } = await loadPretrainedViT(writeWeights(withPrefix(t, 'backbone.')));
    const twin = new VisionTransformer({ ...VIT_DEFAULTS, imgSize: 16, patchSize: 8, inChans: 3, embedDim: 64, depth: 2, numHeads: 1, mlpRatio: 2, qkvBias: false, dropPathRate: 0, maskedEmbed: false });
    try {
      const c = model.config;
      assert.deepEqual([c.embedDim, c.depth, c.patchSize, c.imgSize, c.inChans, c.mlpRatio, c.qkvBias, c.numHeads], [64, 2, 8, 16, 3, 2, false, 1]);
      assert.deepEqual(report.heads, { value: 1, source: 'width/64' });
      assert.equal(report.prefix, 'backbone.');
      assert.deepEqual(report.normalization, { mean: IMAGENET_MEAN, std: IMAGENET_STD, source: 'imagenet' });
      assert.match(formatPretrainedReport(report), /no qkv bias, 1 heads \(width\/64, timm's rule; pass --heads N/);
      twin.params.loadTorch(t, { strict: true });
      const x = tf.randomUniform([2, 24, 24, 3], -1, 1, 'float32', 3) as tf.Tensor4D; // another size: position embeddings interpolated
      const a = model.forward(x).tokens;
      const b = twin.forward(x).tokens;
      const cmp = compare(await a.data(), await b.data());
      tf.dispose([x, a, b]);
      assert.ok(cmp.passed, cmp.worst);
    } finally {
      model.dispose();
      twin.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
  });

  it('ViT-S/16 and ViT-B/16 shapes: 6 and 12 heads by timm’s rule (inference only, nothing built)', () => {
    for (const [D, heads] of [[384, 6], [768, 12]] as const) {
      // Only shapes matter to inference: tensors of length 1 would be rejected by serialize, so fake the map directly.
      const shapes: TensorMap = {};
      const put = (k: string, s: number[]): void => void (shapes[k] = { shape: s, dtype: 'float32', data: new Float32Array(0) });
      put('pos_embed', [1, 197, D]);
      put('patch_embed.proj.weight', [D, 3, 16, 16]);
      for (let b = 0; b < 12; b++) {
        put(`blocks.${b}.mlp.fc1.weight`, [4 * D, D]);
        put(`blocks.${b}.attn.qkv.bias`, [3 * D]);
      }
      const inf = inferViTConfig(shapes);
      assert.deepEqual([inf.config.imgSize, inf.config.patchSize, inf.config.depth, inf.config.mlpRatio, inf.config.qkvBias, inf.config.numHeads], [224, 16, 12, 4, true, heads]);
    }
  });

  it('mean/std from metadata (JSON list or comma-separated), with checks', () => {
    assert.deepEqual(normalizationFor({ mean: '[0.5, 0.5, 0.5]', std: '0.25,0.25,0.25' }, 3), { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], source: 'metadata' });
    assert.deepEqual(normalizationFor({ image_mean: '0.1 0.2 0.3', image_std: '[1,2,3]' }, 3).mean, [0.1, 0.2, 0.3]);
    assert.throws(() => normalizationFor({ mean: '[0.5]', std: '[0.5]' }, 3, 'f'), /^Error: f: metadata mean\/std have 1\/1 values but the model takes 3 channel\(s\)\.$/);
    assert.throws(() => normalizationFor({ mean: '[0.5, 0.5, 0.5]' }, 3), /metadata has mean but not std/);
    assert.throws(() => normalizationFor({ mean: 'a,b,c', std: '1,1,1' }, 3), /is not a list of numbers/);
    assert.throws(() => normalizationFor({ mean: '0,0,0', std: '1,0,1' }, 3), /must be positive/);
    assert.throws(() => normalizationFor({}, 4), /no default for 4 channels/);
  });
});

describe('photos at a model input size', () => {
  it('the shipped photos: 5 files of mixed sizes to [5, S, S, 3] in [0, 1]', async () => {
    const before = tf.memory().numTensors;
    const b = await readPhotoFolder(photosDir, { size: 32 });
    try {
      assert.deepEqual(b.images.shape, [5, 32, 32, 3]);
      assert.deepEqual(b.names, ['astronaut.jpg', 'camera.png', 'chelsea.jpg', 'coffee.jpg', 'rocket.jpg']);
      assert.deepEqual(b.sizes, [[512, 512], [512, 512], [300, 451], [341, 512], [342, 512]]);
      const v = await b.images.data();
      let lo = Infinity;
      let hi = -Infinity;
      for (const x of v) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      assert.ok(lo >= 0 && hi <= 1, `values in [0, 1]: ${lo}..${hi}`);
      assert.ok(lo < 0.1 && hi > 0.9, 'real photos span the range');
      // camera.png is greyscale: repeated over the three channels.
      const per = 32 * 32 * 3;
      for (let i = per; i < 2 * per; i += 3) assert.ok(v[i] === v[i + 1] && v[i] === v[i + 2]);
      // Photos differ from one another.
      assert.notEqual(v[0], v[3 * per]);
    } finally {
      b.images.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it("timm's eval resize: shorter side to floor(S / 0.875), then the centre square", async () => {
    assert.deepEqual(evalResizeShape(300, 451, 224), [256, 384]);
    assert.deepEqual(evalResizeShape(451, 300, 224), [384, 256]);
    assert.deepEqual(evalResizeShape(512, 512, 224), [256, 256]);
    assert.deepEqual(evalResizeShape(10, 1000, 16, 1), [16, 1600]);
    // A landscape and a portrait image whose middle third is white and the rest black, a square with a white centre.
    const dir = path.join(tmp, 'mixed');
    fs.mkdirSync(dir);
    const stripes = async (w: number, h: number, file: string): Promise<void> => {
      const px = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const inMiddle = w > h ? x >= w / 3 && x < (2 * w) / 3 : y >= h / 3 && y < (2 * h) / 3;
          if (inMiddle) px.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
        }
      await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(dir, file));
    };
    await stripes(48, 16, 'a-landscape.png');
    await stripes(16, 48, 'b-portrait.png');
    const sq = Buffer.alloc(32 * 32 * 3);
    for (let y = 8; y < 24; y++) sq.fill(255, (y * 32 + 8) * 3, (y * 32 + 24) * 3);
    await sharp(sq, { raw: { width: 32, height: 32, channels: 3 } }).jpeg({ quality: 100 }).toFile(path.join(dir, 'c-square.jpg'));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an image');

    const before = tf.memory().numTensors;
    const full = await readPhotoFolder(dir, { size: 16, cropFraction: 1 });
    const half = await readPhotos([path.join(dir, 'c-square.jpg')], { size: 16, cropFraction: 0.5 });
    try {
      assert.deepEqual(full.names, ['a-landscape.png', 'b-portrait.png', 'c-square.jpg']);
      assert.deepEqual(full.sizes, [[16, 48], [48, 16], [32, 32]]);
      const v = await full.images.data();
      const per = 16 * 16 * 3;
      // The centre crop of the stripes is their white middle, exactly (no resize at this size).
      for (let i = 0; i < 2 * per; i++) assert.equal(v[i], 1);
      // The square is shrunk to 16: white centre, black corners.
      assert.ok(v[2 * per + (8 * 16 + 8) * 3] > 0.9 && v[2 * per] < 0.1);
      // cropFraction 0.5: resized to 32 (no change), the centre 16×16 is the white square.
      const h = await half.images.data();
      assert.ok(Math.min(...h) > 0.9, `centre crop is white: min ${Math.min(...h)}`);
      const grey = await readPhotos([path.join(dir, 'c-square.jpg')], { size: 8, channels: 1 });
      assert.deepEqual(grey.images.shape, [1, 8, 8, 1]);
      grey.images.dispose();
    } finally {
      full.images.dispose();
      half.images.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it('normalizeImages applies the weights’ mean/std per channel', async () => {
    const before = tf.memory().numTensors;
    const x = tf.tensor4d([0, 0.5, 1, 1, 0.5, 0], [1, 1, 2, 3]);
    const y = normalizeImages(x, { mean: IMAGENET_MEAN, std: IMAGENET_STD });
    const got = Array.from(await y.data());
    const want = [0, 0.5, 1, 1, 0.5, 0].map((v, i) => (v - IMAGENET_MEAN[i % 3]) / IMAGENET_STD[i % 3]);
    assert.ok(compare(got, want).passed);
    assert.throws(() => normalizeImages(x, { mean: [0.5], std: [0.5] }), /mean\/std have 1\/1 entries for 3 channel/);
    tf.dispose([x, y]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('errors: missing or empty folder, corrupt image, bad options', async () => {
    await rejects(readPhotoFolder(path.join(tmp, 'absent'), { size: 8 }), /Photo folder not found/);
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'README.md'), '# nothing');
    await rejects(readPhotoFolder(empty, { size: 8 }), /has no images with extensions \.png, \.jpg, \.jpeg/);
    const bad = path.join(empty, 'broken.png');
    fs.writeFileSync(bad, Buffer.from('\x89PNG\r\n\x1a\n garbage'));
    await rejects(readPhotoFolder(empty, { size: 8 }), /Cannot decode image .*broken\.png.*replace or delete it/);
    await rejects(readPhotos([bad], { size: 0 }), /size must be a positive integer/);
    await rejects(readPhotos([bad], { size: 8, cropFraction: 1.5 }), /cropFraction must be in \(0, 1\]/);
  });
});

describe('fetchWeights against a local HTTP server', () => {
  const payload = Buffer.from(pseudoRandom(50_000, 9).buffer); // 200 kB: several chunks
  const sha = createHash('sha256').update(payload).digest('hex');
  let server: http.Server;
  let base = '';
  const hits: Record<string, number> = {};

  before(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      hits[url] = (hits[url] ?? 0) + 1;
      if (url === '/file.safetensors') {
        res.writeHead(200, { 'content-length': String(payload.length) });
        // Several writes so the client sees several chunks.
        for (let i = 0; i < payload.length; i += 32_768) res.write(payload.subarray(i, i + 32_768));
        res.end();
      } else if (url === '/redirect') {
        res.writeHead(302, { location: '/file.safetensors' });
        res.end();
      } else if (url === '/truncated') {
        res.writeHead(200, { 'content-length': String(payload.length) });
        res.write(payload.subarray(0, 1000), () => res.socket?.destroy());
      } else if (url === '/error') {
        res.writeHead(500, 'Internal Server Error');
        res.end('boom');
      } else {
        res.writeHead(404, 'Not Found');
        res.end('no such file');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const cacheOf = (name: string): string => path.join(tmp, `cache-${name}`);
  const spec = (name: string, route: string, sha256?: string): WeightsSpec => ({ name, url: base + route, sha256 });
  const listing = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);

  it('downloads into the cache with progress, checks the SHA-256, then serves the cached file', async () => {
    const cacheDir = cacheOf('ok');
    const progress: Array<{ received: number; total?: number }> = [];
    const r = await fetchWeights(spec('tiny.dino', '/redirect', sha.toUpperCase()), { cacheDir, onProgress: (p) => progress.push({ received: p.received, total: p.total }) });
    assert.equal(r.file, path.join(cacheDir, 'tiny.dino.safetensors'));
    assert.deepEqual([r.downloaded, r.verified, r.sha256], [true, 'registry', sha]);
    assert.ok(fs.readFileSync(r.file).equals(payload));
    assert.ok(progress.length >= 2, `several progress calls (${progress.length})`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].received >= progress[i - 1].received);
    assert.deepEqual(progress[progress.length - 1], { received: payload.length, total: payload.length });
    assert.deepEqual(listing(cacheDir), ['tiny.dino.safetensors'], 'no temporary file left');
    const n = hits['/file.safetensors'];
    const again = await fetchWeights(spec('tiny.dino', '/redirect', sha), { cacheDir });
    assert.deepEqual([again.downloaded, again.verified], [false, 'registry']);
    assert.equal(hits['/file.safetensors'], n, 'no second download');
  });

  it('a checksum mismatch caches nothing', async () => {
    const cacheDir = cacheOf('mismatch');
    await rejects(fetchWeights(spec('m', '/file.safetensors', '0'.repeat(64)), { cacheDir }), new RegExp(`SHA-256 mismatch: got ${sha}, expected 0{64}.*Nothing was cached`));
    assert.deepEqual(listing(cacheDir), []);
  });

  it('HTTP errors and broken downloads cache nothing', async () => {
    const cacheDir = cacheOf('http');
    await rejects(fetchWeights(spec('a', '/missing'), { cacheDir }), /fetchWeights\('a'\): HTTP 404 Not Found from http:\/\/127\.0\.0\.1:\d+\/missing; check the name and URL/);
    await rejects(fetchWeights(spec('b', '/error'), { cacheDir }), /HTTP 500/);
    await rejects(fetchWeights(spec('c', '/truncated'), { cacheDir }), /fetchWeights\('c'\): the download (is truncated|broke off)/);
    assert.deepEqual(listing(cacheDir), []);
    // A port nobody listens on.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await rejects(fetchWeights({ name: 'd', url: `http://127.0.0.1:${port}/x` }, { cacheDir }), /cannot reach http:\/\/127\.0\.0\.1:\d+\/x \(ECONNREFUSED\)/);
    assert.deepEqual(listing(cacheDir), []);
  });

  it('without a known hash: recorded on first download and enforced afterwards', async () => {
    const cacheDir = cacheOf('tofu');
    const s = spec('org/model', '/file.safetensors');
    const r = await fetchWeights(s, { cacheDir });
    assert.deepEqual([r.downloaded, r.verified, r.sha256], [true, 'first-use', sha]);
    assert.equal(r.file, path.join(cacheDir, 'org--model.safetensors'));
    assert.equal(fs.readFileSync(`${r.file}.sha256`, 'utf8'), `${sha}  org--model.safetensors\n`);
    assert.equal((await fetchWeights(s, { cacheDir })).verified, 'recorded');
    fs.appendFileSync(r.file, 'x');
    await rejects(fetchWeights(s, { cacheDir }), /the cached .*org--model\.safetensors has SHA-256 [0-9a-f]{64} but its first download had [0-9a-f]{64}; it was modified or is corrupt/);
    assert.equal((await fetchWeights(s, { cacheDir, verifyCached: false })).verified, 'unchecked');
    const forced = await fetchWeights(s, { cacheDir, force: true });
    assert.deepEqual([forced.downloaded, forced.sha256], [true, sha]);
    assert.ok(fs.readFileSync(forced.file).equals(payload));
  });

  it('the registry and the cache location', async () => {
    await rejects(fetchWeights('vit_huge_nope', { cacheDir: cacheOf('none') }), /unknown weights 'vit_huge_nope'; known: vit_small_patch16_224\.dino, vit_base_patch16_224\.dino/);
    assert.equal(KNOWN_WEIGHTS['vit_small_patch16_224.dino'].heads, 6);
    assert.equal(KNOWN_WEIGHTS['vit_base_patch16_224.dino'].heads, 12);
    for (const w of Object.values(KNOWN_WEIGHTS)) {
      assert.equal(w.url, `https://huggingface.co/timm/${w.name}/resolve/main/model.safetensors`);
      assert.deepEqual([w.mean, w.std], [IMAGENET_MEAN, IMAGENET_STD]);
      if (w.sha256) assert.match(w.sha256, /^[0-9a-f]{64}$/);
    }
    assert.equal(defaultWeightsCacheDir({ IBOTLAB_CACHE: '/data/c' }), path.join('/data/c', 'weights'));
    assert.equal(defaultWeightsCacheDir({ XDG_CACHE_HOME: '/x' }), path.join('/x', 'ibotlab', 'weights'));
    assert.equal(defaultWeightsCacheDir({}), path.join(os.homedir(), '.cache', 'ibotlab', 'weights'));
    assert.equal(cachedWeightsPath(KNOWN_WEIGHTS['vit_small_patch16_224.dino'], '/c'), path.join('/c', 'vit_small_patch16_224.dino.safetensors'));
  });
});

/** A Python with PyTorch, for the converter of docs/convert-checkpoint.md (Debian's python3-torch). */
function pythonWithTorch(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return undefined;
}

describe('docs/convert-checkpoint.md', () => {
  const py = pythonWithTorch();
  it('its script turns an iBOT-style .pth into a .safetensors that loadPretrainedViT reads', { skip: py ? false : 'no Python with PyTorch (apt-get install python3-torch)' }, async () => {
    const doc = fs.readFileSync(path.join(repo, 'docs', 'convert-checkpoint.md'), 'utf8');
    const script = /```python\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(script, 'the page has a python block');
    const conv = path.join(tmp, 'convert_checkpoint.py');
    fs.writeFileSync(conv, script);
    // A small random checkpoint laid out as iBOT saves it: student (DDP) and teacher, heads, args.
    const make = `
import argparse, json, sys, torch
torch.manual_seed(0)
D, depth, p, n = 96, 2, 8, 4
def backbone(masked):
    s = {"cls_token": torch.randn(1, 1, D), "pos_embed": torch.randn(1, 1 + n, D),
         "patch_embed.proj.weight": torch.randn(D, 3, p, p), "patch_embed.proj.bias": torch.randn(D),
         "norm.weight": torch.ones(D), "norm.bias": torch.zeros(D)}
    if masked: s["masked_embed"] = torch.zeros(1, D)
    for b in range(depth):
        for k, shape in [("norm1.weight", [D]), ("norm1.bias", [D]), ("attn.qkv.weight", [3 * D, D]), ("attn.qkv.bias", [3 * D]),
                         ("attn.proj.weight", [D, D]), ("attn.proj.bias", [D]), ("norm2.weight", [D]), ("norm2.bias", [D]),
                         ("mlp.fc1.weight", [4 * D, D]), ("mlp.fc1.bias", [4 * D]), ("mlp.fc2.weight", [D, 4 * D]), ("mlp.fc2.bias", [D])]:
            s[f"blocks.{b}.{k}"] = torch.randn(*shape)
    return s
head = {"mlp.0.weight": torch.randn(32, D), "mlp.0.bias": torch.randn(32), "last_layer.weight_g": torch.ones(16, 1), "last_layer.weight_v": torch.randn(16, 32)}
teacher = {**{"backbone." + k: v for k, v in backbone(False).items()}, **{"head." + k: v for k, v in head.items()}}
student = {**{"module.backbone." + k: v for k, v in backbone(True).items()}, **{"module.head." + k: v for k, v in head.items()}}
ckpt = {"student": student, "teacher": teacher, "epoch": 3, "args": argparse.Namespace(arch="vit_small", patch_size=p)}
torch.save(ckpt, sys.argv[1])
print(json.dumps({"cls": teacher["backbone.cls_token"].flatten()[:4].tolist(), "qkv": teacher["backbone.blocks.1.attn.qkv.weight"][5, :3].tolist()}))
`;
    const pth = path.join(tmp, 'checkpoint.pth');
    const out = path.join(tmp, 'converted.safetensors');
    const made = spawnSync(py as string, ['-c', make, pth], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(made.status, 0, made.stderr);
    const expected = JSON.parse(made.stdout) as { cls: number[]; qkv: number[] };
    const ran = spawnSync(py as string, [conv, pth, out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(ran.stdout, /wrote 30 tensors to .*converted\.safetensors \(dropped 4 head\/other entries; heads: 6\)/);

    const before = tf.memory().numTensors;
    const { model, report } = await loadPretrainedViT(out);
    try {
      assert.equal(report.prefix, '');
      assert.deepEqual(report.heads, { value: 6, source: 'metadata' });
      assert.equal(report.normalization.source, 'metadata');
      assert.deepEqual(report.missing, ['masked_embed'], 'the teacher has no mask token');
      assert.deepEqual([model.config.embedDim, model.config.depth, model.config.patchSize, model.config.imgSize], [96, 2, 8, 16]);
      const cls = Array.from(await model.params.get('cls_token').data()).slice(0, 4);
      assert.ok(compare(cls, expected.cls).passed, 'values survive the conversion');
      // Internal dense layout is [in, out]: torch's row 5 is column 5 here.
      const qkv = model.params.get('blocks.1.attn.qkv.weight');
      const col = tf.tidy(() => tf.slice(qkv, [0, 5], [3, 1]));
      assert.ok(compare(Array.from(await col.data()), expected.qkv).passed);
      col.dispose();
      const text = formatPretrainedReport(report);
      assert.match(text, /^weights: .*converted\.safetensors\nViT: width 96, depth 2, patch 8, 3 channel\(s\), image 16 \(2×2 patches\), mlp ratio 4, qkv bias, 6 heads \(from metadata\); 0\.2M parameters\nloaded 30 tensors; absent: masked_embed \(optional\)\nnormalisation: mean \[0\.485, 0\.456, 0\.406\], std \[0\.229, 0\.224, 0\.225\] \(from metadata\)$/);
    } finally {
      model.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
    // The file is also what readSafetensors sees: names sorted, metadata kept.
    const meta = readSafetensors(out).metadata;
    assert.equal(meta.arch, 'vit_small');
  });
});
