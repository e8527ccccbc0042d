/**
 * Checks of the model and training code against reference fixtures: the
 * iBOT loss with its centers and temperature schedules, a ViT forward pass
 * from `.safetensors` weights, the iBOT head, and the lr / temperature
 * schedules. Each takes a fixture's parsed JSON and returns one result per
 * case (or per output); tensors run on the active backend.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { combine, compare, flatten, shapeOf } from './compare';
import { readSafetensors } from '../io/safetensors';
import { VisionTransformer, VIT_DEFAULTS } from '../model/vit';
import { IBOTHead } from '../model/head';
import { IBOTLoss, IBOTLossConfig } from '../train/loss';
import { cosineSchedule, teacherTempSchedule } from '../train/schedules';
import { tidy } from '../util/tidy';
import { readAndDispose } from '../util/read';
import type { FixtureResult } from './compare';

type Json = Record<string, unknown>;

const f32 = (x: unknown): Float32Array => Float32Array.from(flatten(x));
const tensor = (x: unknown): tf.Tensor => tf.tensor(f32(x), shapeOf(x));

export async function checkIbotLoss(json: Json, file: string): Promise<FixtureResult[]> {
  const out: FixtureResult[] = [];
  for (const [i, c] of (json.cases as Json[]).entries()) {
    const cfg = c.config as IBOTLossConfig;
    const inp = c.inputs as Json;
    const exp = c.expected as Json;
    const epoch = Number(c.epoch);
    const loss = new IBOTLoss(cfg);
    try {
      loss.setCenters(f32(inp.center), f32(inp.patchCenter));
      const v = await readAndDispose(
        tidy(() => {
          const student = { cls: tensor(inp.studentCls) as tf.Tensor2D, patch: tensor(inp.studentPatch) as tf.Tensor3D };
          const teacher = { cls: tensor(inp.teacherCls) as tf.Tensor2D, patch: tensor(inp.teacherPatch) as tf.Tensor3D };
          const l = loss.forward(student, teacher, tensor(inp.masks) as tf.Tensor2D, epoch);
          loss.updateCenter(teacher);
          return { ...l, center: loss.center.clone(), patchCenter: loss.patchCenter.clone() };
        }),
      );
      const parts = [
        compare(v.cls, [Number(exp.cls)]),
        compare(v.patch, [Number(exp.patch)]),
        compare(v.total, [Number(exp.total)]),
        compare([loss.teacherTemp(epoch), loss.teacherPatchTemp(epoch)], [Number(exp.teacherTemp), Number(exp.teacherPatchTemp)]),
        compare(v.center, flatten(exp.center)),
        compare(v.patchCenter, flatten(exp.patchCenter)),
      ];
      out.push({ file, kind: 'ibot_loss' as const, name: `case ${i} (G=${cfg.globalCrops}, L=${cfg.localCrops}, epoch ${c.epoch})`, ...combine(parts) });
    } finally {
      loss.dispose();
    }
  }
  return out;
}

export async function checkVitForward(json: Json, file: string): Promise<FixtureResult[]> {
  const cfg = json.config as Record<string, number | boolean>;
  const weights = readSafetensors(path.join(path.dirname(file), String(json.weights)));
  const vit = new VisionTransformer({
    ...VIT_DEFAULTS,
    imgSize: Number(cfg.imgSize),
    patchSize: Number(cfg.patchSize),
    inChans: Number(cfg.inChans),
    embedDim: Number(cfg.embedDim),
    depth: Number(cfg.depth),
    numHeads: Number(cfg.numHeads),
    mlpRatio: Number(cfg.mlpRatio ?? 4),
    qkvBias: cfg.qkvBias !== false,
    dropPathRate: 0,
    maskedEmbed: 'masked_embed' in weights.tensors,
  });
  try {
    vit.params.loadTorch(weights.tensors, { strict: true, source: String(json.weights) });
    const inp = json.inputs as Json;
    const exp = json.expected as Json;
    const got = await readAndDispose(
      tidy(() => {
        const images = tf.transpose(tensor(inp.imagesNCHW), [0, 2, 3, 1]) as tf.Tensor4D;
        const plain = vit.forward(images, { attentionOf: -1 });
        const { cls, patch } = VisionTransformer.split(plain.tokens);
        const outs: Record<string, tf.Tensor> = { cls, patch, lastBlockAttention: plain.attention as tf.Tensor };
        if (exp.maskedCls !== undefined) {
          const m = VisionTransformer.split(vit.forward(images, { masks: tensor(inp.masks) as tf.Tensor2D }).tokens);
          outs.maskedCls = m.cls;
          outs.maskedPatch = m.patch;
        }
        return outs;
      }),
    );
    return Object.entries(got).map(([name, values]) => ({ file, kind: 'vit_forward' as const, name, ...compare(values, flatten(exp[name])) }));
  } finally {
    vit.dispose();
  }
}

export async function checkIbotHead(json: Json, file: string): Promise<FixtureResult[]> {
  const cfg = json.config as Record<string, number | boolean>;
  const weights = readSafetensors(path.join(path.dirname(file), String(json.weights)));
  const shared = cfg.sharedHead === true;
  const lastV = weights.tensors['last_layer.weight_v'];
  const mlpLayers = Object.keys(weights.tensors).filter((k) => /^mlp\.\d+\.weight$/.test(k)).length;
  const head = new IBOTHead({
    inDim: Number(cfg.inDim),
    hiddenDim: Number(cfg.hiddenDim),
    bottleneckDim: Number(cfg.bottleneckDim),
    outDim: Number(cfg.outDim),
    patchOutDim: Number(cfg.patchOutDim ?? (shared ? cfg.outDim : weights.tensors['last_layer2.weight_v']?.shape[0] ?? lastV.shape[0])),
    nlayers: Number(cfg.nlayers ?? mlpLayers),
    normLastLayer: cfg.normLastLayer !== false,
    sharedHead: shared,
  });
  try {
    head.params.loadTorch(weights.tensors, { strict: true, source: String(json.weights) });
    const inp = json.inputs as Json;
    const exp = json.expected as Json;
    const got = await readAndDispose(
      tidy(() => {
        const z = head.embed(tensor(inp.tokens) as tf.Tensor2D);
        return { cls: head.project(z, 'cls'), patch: head.project(z, 'patch') };
      }),
    );
    return (['cls', 'patch'] as const).map((name) => ({ file, kind: 'ibot_head' as const, name, ...compare(got[name], flatten(exp[name])) }));
  } finally {
    head.dispose();
  }
}

export function checkSchedules(json: Json, file: string): FixtureResult[] {
  return (json.cases as Json[]).map((c, i) => {
    let got: Float64Array;
    if (c.kind === 'cosine') {
      got = cosineSchedule({
        base: Number(c.base),
        final: Number(c.final),
        epochs: Number(c.epochs),
        itersPerEpoch: Number(c.itersPerEpoch),
        warmupEpochs: Number(c.warmupEpochs ?? 0),
        startWarmup: Number(c.startWarmup ?? 0),
      });
    } else {
      // A late start (the patch temperature under pred_start_epoch) may be given as startEpoch or mimStartEpoch.
      got = teacherTempSchedule(Number(c.warmup), Number(c.final), Number(c.warmupEpochs), Number(c.epochs), Number(c.startEpoch ?? c.mimStartEpoch ?? 0));
    }
    // The fixture rounds to 8 significant digits; 1e-4 relative covers that.
    return { file, kind: 'schedules' as const, name: `case ${i} (${String(c.kind)})`, ...compare(got, flatten(c.expected)) };
  });
}

/** Run one fixture file. Unknown formats produce a failed result that says so. */
