/** `ibotlab pretrain`: train, checkpoint, log, then a k-NN evaluation of the teacher next to its baselines. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findDataset, loadSplits } from '../data/registry';
import { subset } from '../data/dataset';
import { resolveNormalize } from '../data/normalize';
import { PRESET_NAMES, pretrainPreset } from '../train/presets';
import { Pretrainer } from '../train/pretrain';
import { hasCheckpoint, readCheckpointState } from '../train/checkpoint';
import { backboneKnn, pixelKnn } from '../eval/protocols';
import { PretrainConfig, buildModel } from '../train/config';
import { ProgressBar, formatDuration } from '../util/progress';
import { CommandSpec, OptionValues, flag, num, str } from './args';
import { makeDirs } from '../util/fs';

export const PRETRAIN_COMMAND: CommandSpec = {
  name: 'pretrain',
  summary: 'iBOT pretraining with checkpoints, then k-NN: the teacher against the untrained network and raw pixels',
  options: [
    { name: 'preset', type: 'string', value: 'NAME', help: `recipe: ${PRESET_NAMES.join(', ')} (default fashion-mnist; fashion-mnist-gpu on a GPU)` },
    { name: 'dataset', type: 'string', value: 'NAME', help: "data to train on (default: the preset's own; fashion-mnist-embedded needs no download)" },
    { name: 'data-path', type: 'string', value: 'DIR', help: "where the dataset's files are (default: datasets/<name>, then /usr/share/datasets/<name>)" },
    { name: 'epochs', type: 'number', value: 'N', help: 'run length in epochs (the schedules follow)' },
    { name: 'minutes', type: 'number', value: 'M', help: 'size the run to about M minutes on this machine (overrides --epochs)' },
    { name: 'out', type: 'string', value: 'DIR', help: 'run folder: checkpoints, log.jsonl, teacher weights (default runs/<preset>)' },
    { name: 'resume', type: 'boolean', help: 'continue the run in --out from its last checkpoint' },
    { name: 'batch-size', type: 'integer', value: 'N', help: 'images per step' },
    { name: 'lr', type: 'number', value: 'X', help: 'learning rate per 256 images' },
    { name: 'seed', type: 'integer', value: 'N', help: 'random seed' },
    { name: 'checkpoint-every', type: 'integer', value: 'N', help: 'steps between checkpoints (default 50)' },
    { name: 'subset', type: 'integer', value: 'N', help: 'train on the first N training images only (smoke runs)' },
    { name: 'no-eval', type: 'boolean', help: 'skip the closing k-NN evaluation' },
  ],
};

/**
 * Make sure `dir` can hold a run before anything is trained: a folder that
 * cannot be created or written fails now, in one line, not after minutes of
 * training (or never, as a process stuck on an unwritable path).
 */
function ensureWritable(dir: string): boolean {
  const existed = fs.existsSync(dir);
  try {
    makeDirs(dir);
    const probe = path.join(dir, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
    return !existed;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new Error(`cannot write the run folder '${dir}' (${code}); pass --out with a folder you can write to, e.g. --out runs/my-run`);
  }
}

/**
 * The preset when none is named: the GPU recipe on a GPU (on the full 60k
 * Fashion-MNIST when it is installed, else on the embedded images), the CPU
 * default otherwise.
 */
function defaultPreset(v: OptionValues, gpu: boolean): { name: string; dataset?: string; note?: string } {
  if (!gpu) return { name: 'fashion-mnist' };
  const name = 'fashion-mnist-gpu';
  if (str(v, 'dataset') !== undefined) return { name };
  try {
    findDataset(pretrainPreset(name).dataset, { split: 'train', path: str(v, 'data-path') });
    return { name };
  } catch {
    return { name, dataset: 'fashion-mnist-embedded', note: "the full Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or datasets/fetch.sh): the GPU recipe runs on the embedded 8,000 images" };
  }
}

export async function runPretrain(v: OptionValues, env: { gpu: boolean } = { gpu: false }): Promise<number> {
  const chosen = str(v, 'preset') !== undefined ? { name: str(v, 'preset') as string } : defaultPreset(v, env.gpu);
  if (chosen.note) process.stderr.write(`note: ${chosen.note}\n`);
  const presetName = chosen.name;
  const overrides: Partial<PretrainConfig> = {};
  if (num(v, 'epochs') !== undefined) overrides.epochs = num(v, 'epochs');
  if (num(v, 'batch-size') !== undefined) overrides.batchSize = num(v, 'batch-size');
  if (num(v, 'lr') !== undefined) overrides.lr = num(v, 'lr');
  if (num(v, 'seed') !== undefined) overrides.seed = num(v, 'seed');
  const dataset = str(v, 'dataset') ?? chosen.dataset;
  if (dataset !== undefined) overrides.dataset = dataset;
  for (const k of ['epochs', 'minutes', 'batch-size', 'lr', 'checkpoint-every', 'subset'] as const) {
    const x = num(v, k);
    if (x !== undefined && !(x > 0) && k !== 'lr') throw new Error(`--${k} must be positive, got ${x}`);
  }
  const out = str(v, 'out') ?? path.join('runs', presetName);
  const resume = flag(v, 'resume');
  if (resume && !hasCheckpoint(out)) {
    throw new Error(`--resume: there is no checkpoint in '${out}' to continue (checkpoint.json and checkpoint.safetensors are missing); start the run without --resume, or point --out at a run folder`);
  }
  // A resumed run continues with the config in its checkpoint (recipe, length, dataset): the flags
  // that would change it are ignored, with a note, so `--out DIR --resume` alone is enough.
  const cfg = resume ? readCheckpointState(out).config : pretrainPreset(presetName, overrides);
  if (resume) {
    const ignored = ['preset', 'epochs', 'minutes', 'batch-size', 'lr', 'seed'].filter((k) => v[k] !== undefined);
    if (ignored.length) process.stderr.write(`note: --resume continues with the run's own config; ignoring ${ignored.map((k) => `--${k}`).join(', ')}\n`);
    if (dataset !== undefined) cfg.dataset = dataset;
  }
  const created = ensureWritable(out);
  try {
    return await pretrainInto(v, cfg, out, resume);
  } catch (e) {
    // Nothing half-written: a run folder made for this run and still empty goes again.
    if (created && fs.existsSync(out) && fs.readdirSync(out).length === 0) fs.rmdirSync(out);
    throw e;
  }
}

async function pretrainInto(v: OptionValues, cfg: PretrainConfig, out: string, resume: boolean): Promise<number> {
  process.stderr.write(`loading ${cfg.dataset}…\n`);
  // Image folders are resized to the recipe's image size (images of any size and mix of sizes).
  const splits = await loadSplits(cfg.dataset, str(v, 'data-path'), { imageSize: cfg.model.vit.imgSize, channels: cfg.model.vit.inChans as 1 | 3 });
  const n = num(v, 'subset');
  const train = n ? subset(splits.train, Array.from({ length: Math.min(n, splits.train.n) }, (_, i) => i)) : splits.train;
  const trainer = new Pretrainer(cfg, train, { outDir: out, resume, minutes: num(v, 'minutes'), checkpointEvery: num(v, 'checkpoint-every') });
  let bar: ProgressBar | undefined;
  try {
    for await (const ev of trainer.run()) {
      switch (ev.type) {
        case 'start':
          process.stderr.write(
            `${ev.resumedFrom ? `resuming at step ${ev.resumedFrom}; ` : ''}pretraining ${ev.config.preset} on ${train.name} (${train.n} images): ` +
              `${ev.totalSteps} steps = ${ev.epochs.toFixed(2)} epochs of ${ev.itersPerEpoch}, batch ${ev.config.batchSize} → ${out}\n`,
          );
          bar = new ProgressBar(ev.totalSteps, { label: 'pretrain' });
          break;
        case 'step': {
          const s = ev.stats;
          bar?.update(
            ev.step,
            `ep ${ev.epoch.toFixed(2)} loss ${s.loss.toFixed(3)} (cls ${s.clsLoss.toFixed(2)} mim ${s.patchLoss.toFixed(2)}) ` +
              `lr ${ev.lr.toExponential(1)} H ${s.teacherEntropy.toFixed(2)}/${s.teacherMeanEntropy.toFixed(2)} ${ev.imagesPerSec.toFixed(0)} img/s`,
          );
          break;
        }
        case 'done':
          bar?.done(`${ev.finished ? 'finished' : 'stopped'} at step ${ev.step}/${ev.totalSteps} after ${formatDuration(ev.elapsedSec)} of training`);
          break;
        default:
          break;
      }
    }
    if (!flag(v, 'no-eval') && trainer.model) {
      // A learner's first question: is the run better than what it started from? The same k-NN on the
      // same split for the teacher, the same network at its initialisation (the run's seed), and raw pixels.
      process.stderr.write('k-NN evaluation ([CLS], k=20, T=0.07): the teacher, the untrained network, raw pixels…\n');
      const normalize = resolveNormalize(trainer.config.crops.normalize, train.channels);
      const r = await backboneKnn(trainer.model.teacher.backbone, train, splits.test, { normalize, progress: true });
      const initial = buildModel(trainer.config);
      const init = await backboneKnn(initial.teacher.backbone, train, splits.test, { normalize }).finally(() => initial.dispose());
      const pixels = (await pixelKnn(train, splits.test)).top1;
      const rows: Array<[string, number]> = [
        [`this run's teacher (step ${trainer.step})`, r.top1],
        ['the same ViT untrained', init.top1],
        ['raw pixels', pixels],
      ];
      console.log(`k-NN top-1 (k=20, T=0.07) on ${splits.test.name} (train ${r.numTrain}, test ${r.numTest}):`);
      for (const [name, top1] of rows) console.log(`  ${name.padEnd(34)} ${top1.toFixed(2).padStart(6)}%`);
      console.log(`every protocol of the paper (linear probe, 1%/10% labels, clustering): npx ibotlab eval --checkpoint ${out}`);
      fs.writeFileSync(path.join(out, 'knn.json'), JSON.stringify({ ...r, step: trainer.step, untrainedTop1: init.top1, pixelsTop1: pixels }, null, 1));
    }
    return 0;
  } finally {
    trainer.dispose();
  }
}

