import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { subset } from '../src/data/dataset';
import { PRESET_NAMES, pretrainPreset } from '../src/train/presets';
import { PretrainConfig, epochsOf, modelConfig, upgradeConfig } from '../src/train/config';
import { maskingConfig } from '../src/augment/masking';
import { Pretrainer } from '../src/train/pretrain';
import { readSafetensors } from '../src/io/safetensors';
import { CHECKPOINT_TENSORS, TEACHER_EXPORT, readCheckpointState } from '../src/train/checkpoint';
import { VisionTransformer } from '../src/model/vit';

before(setup);

/** A few-second recipe: a 2-block ViT of width 32 on 96 images. */
const tinyConfig = (): PretrainConfig => pretrainPreset('tiny');

const data = () => subset(loadEmbeddedFashionMnist().train, Array.from({ length: 96 }, (_, i) => i), 'fmnist-96');
const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `ibotlab-${tag}-`));

async function drain(t: Pretrainer): Promise<void> {
  for await (const _ of t.run()) void _;
}

describe('presets', () => {
  it('every preset tiles its crops with its patches and its head fits its loss', async () => {
    for (const name of PRESET_NAMES) {
      const c = pretrainPreset(name);
      const p = c.model.vit.patchSize;
      assert.equal(c.crops.globalSize % p, 0, `${name}: global crop ${c.crops.globalSize} vs patch ${p}`);
      assert.equal(c.crops.localSize % p, 0, `${name}: local crop ${c.crops.localSize} vs patch ${p}`);
      assert.equal(c.crops.globalSize, c.model.vit.imgSize, `${name}: global crops are the evaluation size`);
      // The loss takes its crop counts, horizon and MIM start from the run, not from a copy.
      const m = modelConfig(c);
      assert.deepEqual([m.loss.globalCrops, m.loss.localCrops, m.loss.epochs, m.loss.mimStartEpoch], [c.crops.globalCrops, c.crops.localCrops, c.epochs, c.masking.predStartEpoch], name);
      assert.ok(c.model.head.outDim > 1 && c.batchSize >= 1, name);
    }
  });

  it('changing epochs or crops changes the model config: nothing to re-sync', async () => {
    const c = pretrainPreset('fashion-mnist', { epochs: 7 });
    const m = modelConfig({ ...c, epochs: 3, crops: { ...c.crops, localCrops: 5 }, masking: maskingConfig({ predStartEpoch: 2 }) });
    assert.deepEqual([m.loss.epochs, m.loss.localCrops, m.loss.mimStartEpoch], [3, 5, 2]);
  });

  it('the default Fashion-MNIST recipe scales its warm-ups with the run length', async () => {
    const short = pretrainPreset('fashion-mnist', { epochs: 5 });
    const long = pretrainPreset('fashion-mnist', { epochs: 50 });
    assert.ok(Math.abs(epochsOf(short.warmupEpochs, short.epochs) - 0.5) < 1e-9 && Math.abs(epochsOf(long.warmupEpochs, long.epochs) - 5) < 1e-9);
    assert.ok(Math.abs(modelConfig(long).freezeLastLayerEpochs - 1.5) < 1e-9);
    // Temperatures change per whole epoch: a share of the run is rounded.
    assert.equal(modelConfig(long).loss.warmupTeacherTempEpochs, 5);
    assert.equal(modelConfig(pretrainPreset('fashion-mnist', { epochs: 14 })).loss.warmupTeacherTempEpochs, 1);
    assert.equal(epochsOf(3, 100), 3);
    assert.throws(() => epochsOf('ten' as `${number}%`, 10), /not an epoch span.*'10%'/);
  });

  it('configs stored by earlier versions (relative warm-ups, loss copies of crops and epochs) read into today\'s shape', async () => {
    const now = pretrainPreset('fashion-mnist', { epochs: 20 });
    const { warmupEpochs: _w, ...rest } = now;
    void _w;
    const old = {
      ...rest,
      warmupEpochs: 2,
      relative: { warmup: 0.1, teacherTempWarmup: 0.1, freezeLastLayer: 0.03 },
      model: { ...now.model, freezeLastLayerEpochs: 0.6, loss: { ...now.model.loss, warmupTeacherTempEpochs: 2, epochs: 20, globalCrops: 2, localCrops: 2 } },
    } as unknown as PretrainConfig;
    const up = upgradeConfig(old);
    assert.deepEqual(up, now);
    assert.deepEqual(modelConfig(up), modelConfig(now));
  });
});

describe('pretraining loop', () => {
  it('a run stopped midway and resumed ends with exactly the weights of an uninterrupted run', async () => {
    const ds = data();
    const a = tmp('a');
    const b = tmp('b');
    const full = new Pretrainer(tinyConfig(), ds, { outDir: a, checkpointEvery: 4 });
    await drain(full);
    assert.equal(full.step, 12); // 2 epochs × 6 batches of 16
    full.dispose();

    const first = new Pretrainer(tinyConfig(), ds, { outDir: b, checkpointEvery: 4, stopAfter: 5 });
    await drain(first);
    first.dispose();
    assert.equal(readCheckpointState(b).step, 5);
    const n0 = tf.memory().numTensors;
    const second = new Pretrainer(tinyConfig(), ds, { outDir: b, checkpointEvery: 4, resume: true });
    const events: string[] = [];
    for await (const ev of second.run()) {
      events.push(ev.type);
      if (ev.type === 'start') assert.equal(ev.resumedFrom, 5);
    }
    assert.equal(second.step, 12);
    second.dispose();
    assert.equal(tf.memory().numTensors, n0, 'a finished and disposed run leaves no tensors behind');

    const ta = readSafetensors(path.join(a, CHECKPOINT_TENSORS)).tensors;
    const tb = readSafetensors(path.join(b, CHECKPOINT_TENSORS)).tensors;
    assert.deepEqual(Object.keys(ta).sort(), Object.keys(tb).sort());
    for (const k of Object.keys(ta)) assert.deepEqual(tb[k].data, ta[k].data, `tensor ${k} differs after resume`);
    // The exported teacher loads into a plain ViT with timm names.
    const teacher = readSafetensors(path.join(a, TEACHER_EXPORT)).tensors;
    const vit = new VisionTransformer(tinyConfig().model.vit);
    assert.equal(vit.params.loadTorch(teacher, { strict: true }).length, vit.params.params.length);
    vit.dispose();
    // Every step was logged once, across both sessions.
    assert.equal(fs.readFileSync(path.join(b, 'log.jsonl'), 'utf8').trim().split('\n').length, 12);
  });

  it('training moves the weights and keeps the tensor count flat across steps', async () => {
    const t = new Pretrainer(tinyConfig(), data(), {});
    const counts: number[] = [];
    const losses: number[] = [];
    let w0: Float32Array | undefined;
    for await (const ev of t.run()) {
      if (ev.type === 'start') w0 = t.model!.student.backbone.params.get('blocks.0.attn.qkv.weight').dataSync().slice() as Float32Array;
      if (ev.type === 'step') {
        counts.push(tf.memory().numTensors);
        losses.push(ev.stats.loss);
        assert.ok(Number.isFinite(ev.stats.teacherEntropy) && ev.stats.teacherMeanEntropy >= ev.stats.teacherEntropy - 1e-4);
      }
    }
    // Optimizer slots of the prototypes appear once freezing ends; after that the count is constant.
    assert.equal(new Set(counts.slice(4)).size, 1, `tensor counts ${counts}`);
    assert.ok(losses.every(Number.isFinite));
    const w1 = t.model!.student.backbone.params.get('blocks.0.attn.qkv.weight').dataSync();
    let moved = 0;
    for (let i = 0; i < w1.length; i++) moved += Math.abs(w1[i] - (w0 as Float32Array)[i]);
    assert.ok(moved / w1.length > 1e-5, 'AdamW moved the student weights');
    t.dispose();
  });

  it('runs sized in steps that end mid-epoch (as --minutes does) keep valid temperatures to the end', async () => {
    const t = new Pretrainer(tinyConfig(), data(), { totalSteps: 5 });
    const temps: number[] = [];
    for await (const ev of t.run()) if (ev.type === 'step') temps.push(ev.stats.teacherTemp, ev.stats.loss);
    assert.equal(t.step, 5);
    assert.ok(temps.every(Number.isFinite), `${temps}`);
    t.dispose();
  });

  it('a NaN loss stops the run with a clear error and keeps the last good checkpoint', async () => {
    const dir = tmp('nan');
    const t = new Pretrainer(tinyConfig(), data(), { outDir: dir, checkpointEvery: 2 });
    await assert.rejects(async () => {
      for await (const ev of t.run()) {
        if (ev.type === 'checkpoint' && ev.step === 2) {
          const w = t.model!.student.backbone.params.get('norm.weight');
          w.assign(tf.fill(w.shape, NaN));
        }
      }
    }, /loss became NaN at step 2.*last good checkpoint/s);
    assert.equal(readCheckpointState(dir).step, 2);
    t.dispose();
  });
});
