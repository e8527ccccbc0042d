/**
 * The iBOT pretraining loop: data → multi-crop → masks → `IBOTModel.step`,
 * with schedules, checkpoints, resume, a JSONL log and events that a notebook
 * cell or the CLI's progress bar consume.
 *
 *   const trainer = new Pretrainer(pretrainPreset('fashion-mnist'), data, { outDir: 'runs/demo' });
 *   for await (const ev of trainer.run()) if (ev.type === 'step') console.log(ev.stats.loss);
 *
 * Randomness: the batch order of epoch e comes from (seed, e) alone; crops,
 * masks and stochastic depth come from one Rng whose state is checkpointed,
 * so a resumed run continues exactly as if it had never stopped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageDataset, toTensor } from '../data/dataset';
import { IBOTBatch, disposeIBOTBatch, ibotBatch } from '../augment/batch';
import { IBOTModel, StepStats } from './ibot';
import { PretrainConfig, buildModel, epochsOf } from './config';
import { cosineSchedule, scaledLr } from './schedules';
import { Rng } from '../util/rng';
import { median } from '../util/stats';
import { CheckpointState, TEACHER_EXPORT, exportTeacher, hasCheckpoint, loadCheckpoint, readCheckpointState, saveCheckpoint } from './checkpoint';
import { resolveNormalize } from '../data/normalize';
import { makeDirs } from '../util/fs';

export interface PretrainOptions {
  /** Run folder for checkpoints, `log.jsonl` and the exported teacher; none = in memory only. */
  outDir?: string;
  /** Continue from the checkpoint in outDir if there is one (its config wins). */
  resume?: boolean;
  /** Fix the schedule length in steps (default: epochs × iterations per epoch). */
  totalSteps?: number;
  /** Size the run to take about this many minutes (measured speed), overriding epochs. */
  minutes?: number;
  /** Write a checkpoint every this many steps (default 50) and at the end. */
  checkpointEvery?: number;
  /** Stop this session after this many steps (the run stays resumable); for tests and notebooks. */
  stopAfter?: number;
}

export type PretrainEvent =
  | { type: 'start'; totalSteps: number; itersPerEpoch: number; epochs: number; resumedFrom: number; config: PretrainConfig }
  | { type: 'step'; step: number; totalSteps: number; epoch: number; lr: number; wd: number; momentum: number; stats: StepStats; imagesPerSec: number; elapsedSec: number; msAugment: number }
  | { type: 'epoch'; epoch: number; meanLoss: number; step: number }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'done'; step: number; totalSteps: number; elapsedSec: number; finished: boolean };

export class Pretrainer {
  config: PretrainConfig;
  readonly data: ImageDataset;
  readonly opts: PretrainOptions;
  model?: IBOTModel;
  /** Steps done so far. */
  step = 0;
  totalSteps = 0;
  readonly itersPerEpoch: number;
  private rng: Rng;
  private elapsedSec = 0;

  constructor(config: PretrainConfig, data: ImageDataset, opts: PretrainOptions = {}) {
    this.data = data;
    this.opts = opts;
    const saved = opts.resume && opts.outDir && hasCheckpoint(opts.outDir) ? readCheckpointState(opts.outDir) : undefined;
    if (saved) config = saved.config;
    this.config = config;
    if (data.channels !== config.model.vit.inChans) {
      throw new Error(`dataset ${data.name} has ${data.channels} channel(s) but the model expects ${config.model.vit.inChans}; pick a preset for this data`);
    }
    this.itersPerEpoch = Math.floor(data.n / config.batchSize);
    if (this.itersPerEpoch < 1) throw new Error(`dataset ${data.name} has ${data.n} images, fewer than one batch of ${config.batchSize}; lower batchSize`);
    // The epoch permutation and the schedules are indexed by steps per epoch: other data cannot continue the run.
    if (saved && saved.itersPerEpoch !== this.itersPerEpoch) {
      throw new Error(
        `cannot resume ${opts.outDir}: the run took ${saved.itersPerEpoch} steps per epoch, but ${data.name} (${data.n} images, batch ${config.batchSize}) gives ${this.itersPerEpoch}; resume with the run's own data (the same --dataset and --subset)`,
      );
    }
    this.rng = new Rng(config.seed);
  }

  /** Train, yielding events. Safe to stop iterating at any point: the last checkpoint stays valid. */
  async *run(): AsyncGenerator<PretrainEvent> {
    const { outDir } = this.opts;
    let resumedFrom = 0;
    if (this.opts.resume && outDir && hasCheckpoint(outDir)) {
      const st = readCheckpointState(outDir);
      this.totalSteps = st.totalSteps;
      this.model = buildModel(this.config);
      loadCheckpoint(outDir, this.model);
      this.step = st.step;
      this.rng.setState(st.rng);
      this.elapsedSec = st.elapsedSec;
      resumedFrom = st.step;
    } else {
      this.totalSteps = this.opts.totalSteps ?? (this.opts.minutes ? await this.calibrate(this.opts.minutes) : Math.round(this.config.epochs * this.itersPerEpoch));
      // The run's length is the schedules' horizon (and the loss's, through buildModel).
      this.config = { ...this.config, epochs: this.totalSteps / this.itersPerEpoch };
      this.model = buildModel(this.config);
    }
    const model = this.model;
    const cfg = this.config;
    const epochs = this.totalSteps / this.itersPerEpoch;
    const sched = {
      lr: cosineSchedule({ base: scaledLr(cfg.lr, cfg.batchSize), final: cfg.minLr, epochs, itersPerEpoch: this.itersPerEpoch, warmupEpochs: epochsOf(cfg.warmupEpochs, epochs) }),
      wd: cosineSchedule({ base: cfg.weightDecay, final: cfg.weightDecayEnd, epochs, itersPerEpoch: this.itersPerEpoch }),
      momentum: cosineSchedule({ base: cfg.momentumTeacher, final: 1, epochs, itersPerEpoch: this.itersPerEpoch }),
    };
    yield { type: 'start', totalSteps: this.totalSteps, itersPerEpoch: this.itersPerEpoch, epochs, resumedFrom, config: cfg };

    const logFile = outDir ? path.join(outDir, 'log.jsonl') : undefined;
    if (outDir) makeDirs(outDir);
    const every = this.opts.checkpointEvery ?? 50;
    const sessionStart = this.step;
    let epochLoss = 0;
    let epochSteps = 0;
    let perm: Int32Array | undefined;
    let permEpoch = -1;

    while (this.step < this.totalSteps) {
      if (this.opts.stopAfter !== undefined && this.step - sessionStart >= this.opts.stopAfter) break;
      const epoch = Math.floor(this.step / this.itersPerEpoch);
      if (epoch !== permEpoch) {
        perm = epochPermutation(this.data.n, cfg.seed, epoch);
        permEpoch = epoch;
      }
      const it = this.step % this.itersPerEpoch;
      const idx = (perm as Int32Array).subarray(it * cfg.batchSize, (it + 1) * cfg.batchSize);
      const t0 = performance.now();
      const crops = this.makeCrops(idx, epoch);
      const t1 = performance.now();
      const s = this.step;
      let stats: StepStats;
      try {
        stats = await model.step(crops, { lr: sched.lr[s], wd: sched.wd[s], momentum: sched.momentum[s], epoch: s / this.itersPerEpoch }, this.rng.seed());
      } finally {
        disposeIBOTBatch(crops);
      }
      if (!Number.isFinite(stats.loss)) {
        throw new Error(
          `loss became ${stats.loss} at step ${s} (cls ${stats.clsLoss}, patch ${stats.patchLoss}); training stopped. ` +
            (outDir && hasCheckpoint(outDir) ? `The last good checkpoint in ${outDir} is kept. ` : '') +
            'Try a lower lr, a stronger gradient clip, or a higher teacher temperature.',
        );
      }
      const dt = (performance.now() - t0) / 1000;
      this.elapsedSec += dt;
      this.step++;
      epochLoss += stats.loss;
      epochSteps++;
      const ev: PretrainEvent = {
        type: 'step',
        step: this.step,
        totalSteps: this.totalSteps,
        epoch: s / this.itersPerEpoch,
        lr: sched.lr[s],
        wd: sched.wd[s],
        momentum: sched.momentum[s],
        stats,
        imagesPerSec: cfg.batchSize / dt,
        elapsedSec: this.elapsedSec,
        msAugment: t1 - t0,
      };
      if (logFile) fs.appendFileSync(logFile, JSON.stringify({ ...ev, type: undefined, stats: { ...stats } }) + '\n');
      yield ev;
      if (this.step % this.itersPerEpoch === 0 || this.step === this.totalSteps) {
        yield { type: 'epoch', epoch: Math.ceil(this.step / this.itersPerEpoch) - 1, meanLoss: epochLoss / Math.max(1, epochSteps), step: this.step };
        epochLoss = 0;
        epochSteps = 0;
      }
      if (outDir && (this.step % every === 0 || this.step === this.totalSteps)) {
        await this.checkpoint();
        yield { type: 'checkpoint', step: this.step, dir: outDir };
      }
    }
    if (outDir && this.step !== this.totalSteps && this.step > sessionStart && this.step % every !== 0) {
      await this.checkpoint();
      yield { type: 'checkpoint', step: this.step, dir: outDir };
    }
    if (outDir && this.step === this.totalSteps) await exportTeacher(path.join(outDir, TEACHER_EXPORT), model, resolveNormalize(cfg.crops.normalize, cfg.model.vit.inChans));
    yield { type: 'done', step: this.step, totalSteps: this.totalSteps, elapsedSec: this.elapsedSec, finished: this.step === this.totalSteps };
  }

  /** Run to the end, calling back on each event; resolves with the last step's stats. */
  async train(onEvent?: (ev: PretrainEvent) => void): Promise<StepStats | undefined> {
    let last: StepStats | undefined;
    for await (const ev of this.run()) {
      if (ev.type === 'step') last = ev.stats;
      onEvent?.(ev);
    }
    return last;
  }

  /** Crops and masks for the images at `idx` (dispose with `disposeIBOTBatch`). */
  makeCrops(idx: ArrayLike<number>, epoch: number): IBOTBatch {
    const cfg = this.config;
    const images = toTensor(this.data, idx);
    try {
      return ibotBatch(images, { multiCrop: cfg.crops, masking: cfg.masking, patchSize: cfg.model.vit.patchSize, epoch }, this.rng);
    } finally {
      images.dispose();
    }
  }

  private async checkpoint(): Promise<void> {
    const dir = this.opts.outDir as string;
    const state: Omit<CheckpointState, 'version' | 'optimizerSteps'> = {
      config: this.config,
      step: this.step,
      totalSteps: this.totalSteps,
      itersPerEpoch: this.itersPerEpoch,
      rng: this.rng.getState(),
      elapsedSec: this.elapsedSec,
      extra: { dataset: this.data.name },
    };
    await saveCheckpoint(dir, this.model as IBOTModel, state);
  }

  /**
   * Time full steps of a throwaway model and size the run to `minutes`.
   * V8 runs WebAssembly on its baseline compiler first and swaps in optimised
   * code for the hot functions over the first seconds: on a 2-core machine the
   * `fashion-mnist` step took ~150 ms for its first ~20 steps and ~118 ms from
   * then on, so a few early steps sized 10-minute runs to 7½ minutes of
   * training. So the probe runs for about 2% of the budget (6–30 s, 7 to 60
   * steps) and the run is sized from the median of its last five steps.
   */
  private async calibrate(minutes: number): Promise<number> {
    const probe = buildModel(this.config, this.config.seed + 7);
    const rng = this.rng;
    this.rng = new Rng(this.config.seed + 7);
    try {
      const perm = epochPermutation(this.data.n, this.config.seed + 7, 0);
      const batches = Math.floor(this.data.n / this.config.batchSize);
      const probeSec = Math.min(30, Math.max(6, 0.02 * minutes * 60));
      const started = performance.now();
      const times: number[] = [];
      for (let i = 0; i < 60 && (i < 7 || (performance.now() - started) / 1000 < probeSec); i++) {
        const t0 = performance.now();
        const b = i % batches;
        const crops = this.makeCrops(perm.subarray(b * this.config.batchSize, (b + 1) * this.config.batchSize), 0);
        await probe.step(crops, { lr: 0, wd: 0, momentum: 1, epoch: 0 }, i);
        disposeIBOTBatch(crops);
        times.push((performance.now() - t0) / 1000);
      }
      // +3% for checkpoints and logging.
      const perStep = median(times.slice(-5)) * 1.03;
      return Math.max(1, Math.floor((minutes * 60) / perStep));
    } finally {
      probe.dispose();
      this.rng = rng;
    }
  }

  dispose(): void {
    this.model?.dispose();
  }
}

/** The batch order of one epoch, from (seed, epoch) alone so a resumed run needs no saved permutation. */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const rng = new Rng(((seed >>> 0) * 1000003 + epoch * 7919 + 1) >>> 0);
  return Int32Array.from(rng.permutation(n));
}
