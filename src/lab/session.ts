/**
 * What the notebooks share: quick/full mode, where runs live, the data they
 * use, and the pretrained checkpoint that 01-pretraining writes and 02–05
 * read (training a small one themselves when it is missing).
 *
 * Environment:
 *   IBOTLAB_QUICK=1   smoke mode: tiny model, a few dozen steps, ~1000 images
 *                     (what `npm run notebooks:test` runs)
 *   IBOTLAB_RUNS=DIR  where run folders go (default <repo>/runs)
 *   IBOTLAB_CHECKPOINT=DIR  use this run folder instead (e.g. one written by
 *                     `ibotlab pretrain --out runs/x`) in 02–05
 *
 * Run folders: <runs>/notebook-fashion-mnist (full) and
 * <runs>/notebook-fashion-mnist-quick (quick), so a smoke run never replaces
 * a real checkpoint.
 */
import * as path from 'node:path';
import { ImageDataset, subset } from '../data/dataset';
import { loadEmbeddedFashionMnist, packageRoot } from '../data/registry';
import { PretrainConfig } from '../train/config';
import { pretrainPreset } from '../train/presets';
import { backendInfo } from '../backend';
import { PretrainEvent, Pretrainer } from '../train/pretrain';
import { LoadedRun, hasCheckpoint, loadRun, readCheckpointState } from '../train/checkpoint';

export interface NotebookSettings {
  /** IBOTLAB_QUICK=1: shrink everything to a smoke run of a minute or two. */
  quick: boolean;
  /** Repository (package) root. */
  root: string;
  /** Folder holding run folders. */
  runsDir: string;
  /** The pretraining run the notebooks share. */
  pretrainDir: string;
  /** Pretraining images (all 8000 embedded train images in full mode). */
  trainImages: number;
  /** Evaluation test images (all 2000 in full mode). */
  testImages: number;
  /** Pretraining length in minutes (full mode; sized by measured speed). */
  pretrainMinutes: number;
  /** Pretraining steps in quick mode (2 whole epochs of `quickPretrainImages`, so every schedule runs its course). */
  quickSteps: number;
  /** Images pretrained on in quick mode. */
  quickPretrainImages: number;
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** Settings from the environment (see the module comment). */
export function notebookSettings(env: Record<string, string | undefined> = process.env): NotebookSettings {
  const quick = envFlag(env.IBOTLAB_QUICK);
  const root = packageRoot();
  const runsDir = path.resolve(root, env.IBOTLAB_RUNS || 'runs');
  return {
    quick,
    root,
    runsDir,
    pretrainDir: env.IBOTLAB_CHECKPOINT
      ? path.resolve(root, env.IBOTLAB_CHECKPOINT)
      : path.join(runsDir, quick ? 'notebook-fashion-mnist-quick' : 'notebook-fashion-mnist'),
    trainImages: quick ? 1000 : 8000,
    testImages: quick ? 500 : 2000,
    pretrainMinutes: 10,
    quickSteps: 40,
    quickPretrainImages: 640,
  };
}

/** The embedded Fashion-MNIST split, cut to the mode's sizes (first images of each split; both stay class-balanced within a few %). */
export function notebookData(s: NotebookSettings): { train: ImageDataset; test: ImageDataset } {
  const { train, test } = loadEmbeddedFashionMnist();
  const first = (ds: ImageDataset, n: number): ImageDataset =>
    n >= ds.n ? ds : subset(ds, Int32Array.from({ length: n }, (_, i) => i), `${ds.name}[:${n}]`);
  return { train: first(train, s.trainImages), test: first(test, s.testImages) };
}

/**
 * The notebooks' recipe: the `fashion-mnist` preset in full mode (ViT of 4
 * blocks × 128 on 7 px patches, 64 prototypes, KoLeo) — its GPU version
 * (`fashion-mnist-gpu`, batch 256) when the backend is a GPU —, and
 * `fashion-mnist-quick` in quick mode (the same recipe on a 2-block width-64
 * ViT: seconds per epoch). The data is always the notebooks' own.
 */
export function notebookPretrainConfig(quick: boolean): PretrainConfig {
  if (quick) return pretrainPreset('fashion-mnist-quick');
  return backendInfo()?.gpu ? pretrainPreset('fashion-mnist-gpu', { dataset: 'fashion-mnist-embedded' }) : pretrainPreset('fashion-mnist');
}

/** A Pretrainer for the notebooks' shared run (resumes a partial run in `pretrainDir`). */
export function notebookPretrainer(s: NotebookSettings, train: ImageDataset, opts: { resume?: boolean } = {}): Pretrainer {
  const data =
    s.quick && train.n > s.quickPretrainImages
      ? subset(train, Int32Array.from({ length: s.quickPretrainImages }, (_, i) => i), `${train.name}[:${s.quickPretrainImages}]`)
      : train;
  return new Pretrainer(notebookPretrainConfig(s.quick), data, {
    outDir: s.pretrainDir,
    resume: opts.resume ?? true,
    ...(s.quick ? { totalSteps: s.quickSteps, checkpointEvery: s.quickSteps } : { minutes: s.pretrainMinutes, checkpointEvery: 100 }),
  });
}

export interface EnsureOptions {
  /** Called with every pretraining event when a run has to be trained here (e.g. `LiveTrainingCurves.push`). */
  onEvent?: (ev: PretrainEvent) => void | Promise<void>;
  /** Progress lines (default: console.log). */
  log?: (line: string) => void;
}

/**
 * The shared pretrained model: loaded from `pretrainDir` when a checkpoint is
 * there, otherwise trained now (quick or full recipe, as 01-pretraining would)
 * and then loaded.
 */
export async function ensurePretrained(s: NotebookSettings, opts: EnsureOptions = {}): Promise<LoadedRun> {
  const log = opts.log ?? ((line: string) => console.log(line));
  if (hasCheckpoint(s.pretrainDir)) {
    const st = readCheckpointState(s.pretrainDir);
    log(
      `using the checkpoint in ${path.relative(s.root, s.pretrainDir) || s.pretrainDir}: step ${st.step}/${st.totalSteps}` +
        (st.step < st.totalSteps ? ' (unfinished: run 01-pretraining to complete it)' : ''),
    );
    return loadRun(s.pretrainDir);
  }
  log(
    `no checkpoint in ${path.relative(s.root, s.pretrainDir) || s.pretrainDir}: training one now ` +
      (s.quick ? `(quick: ${s.quickSteps} steps on ${s.quickPretrainImages} images)` : `(about ${s.pretrainMinutes} minutes; 01-pretraining does the same with live curves)`),
  );
  const { train } = notebookData(s);
  const trainer = notebookPretrainer(s, train);
  try {
    let nextReport = 0;
    for await (const ev of trainer.run()) {
      await opts.onEvent?.(ev);
      if (ev.type === 'step' && ev.step >= nextReport) {
        log(`  step ${ev.step}/${ev.totalSteps}  loss ${ev.stats.loss.toFixed(3)}  (${ev.imagesPerSec.toFixed(0)} img/s)`);
        nextReport = ev.step + Math.max(1, Math.round(ev.totalSteps / 10));
      }
      if (ev.type === 'done') log(`  done: ${ev.step} steps in ${ev.elapsedSec.toFixed(0)} s → ${s.pretrainDir}`);
    }
  } finally {
    trainer.dispose();
  }
  return loadRun(s.pretrainDir);
}
