/**
 * A pretraining run's configuration (`PretrainConfig`): one place for every
 * fact of a recipe. What the model needs and the recipe already says — the
 * crop counts, the loss horizon (the run's epochs), when masking starts — is
 * derived when the model is built (`modelConfig`, `buildModel`), never stored
 * twice. Warm-ups may be a share of the run ('10%'), so a recipe meant for
 * minutes-long runs scales with `--epochs` and `--minutes`.
 */
import { MultiCropConfig } from '../augment/crop-config';
import { MaskingConfig } from '../augment/masking';
import { IBOTModel, IBOTModelConfig } from './ibot';
import { IBOTLossConfig } from './loss';

/** A length of training in epochs, or a share of the whole run ('10%') for recipes whose length is set at run time. */
export type EpochSpan = number | `${number}%`;

/** Epochs of a span in a run of `runEpochs` epochs. */
export function epochsOf(span: EpochSpan, runEpochs: number): number {
  if (typeof span === 'number') return span;
  const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(span);
  if (!m) throw new Error(`'${span}' is not an epoch span: give a number of epochs or a share of the run such as '10%'`);
  return (Number(m[1]) / 100) * runEpochs;
}

/** The loss of a recipe: everything but what the run supplies (prototype counts, crop counts, horizon, MIM start). */
export type LossRecipe = Omit<IBOTLossConfig, 'outDim' | 'patchOutDim' | 'globalCrops' | 'localCrops' | 'epochs' | 'warmupTeacherTempEpochs' | 'mimStartEpoch'> & {
  /** Teacher-temperature warm-up (official 30 epochs); a share of the run is rounded to whole epochs, as temperatures change per epoch. */
  warmupTeacherTempEpochs: EpochSpan;
};

/** The model of a recipe (`IBOTModelConfig` before the run fills in the loss). */
export type ModelRecipe = Omit<IBOTModelConfig, 'loss' | 'freezeLastLayerEpochs'> & {
  loss: LossRecipe;
  /** Epochs during which the prototypes get no gradient (official `freeze_last_layer` 1). */
  freezeLastLayerEpochs: EpochSpan;
};

export interface PretrainConfig {
  /** Preset name this config came from (informational). */
  preset: string;
  /** The dataset the recipe is made for (`loadSplits` name); the CLI's `--dataset` overrides it. */
  dataset: string;
  model: ModelRecipe;
  crops: MultiCropConfig;
  masking: MaskingConfig;
  batchSize: number;
  /** Length of the run in epochs: the horizon of every schedule (lr, wd, momentum, temperatures). */
  epochs: number;
  /** Learning rate per 256 images (scaled by batch/256 as in the paper; official 5e-4). */
  lr: number;
  /** Final learning rate of the cosine (official 1e-6). */
  minLr: number;
  /** Linear lr warm-up (official 10 epochs). */
  warmupEpochs: EpochSpan;
  /** Weight decay cosine from → to (official 0.04 → 0.4). */
  weightDecay: number;
  weightDecayEnd: number;
  /** Teacher EMA momentum start (official 0.996), cosine to 1. */
  momentumTeacher: number;
  seed: number;
}

/** The complete model configuration of a run: the recipe's model with the loss filled in from the run. */
export function modelConfig(cfg: PretrainConfig): IBOTModelConfig {
  const { loss, freezeLastLayerEpochs, ...rest } = cfg.model;
  const tempWarmup = loss.warmupTeacherTempEpochs;
  return {
    ...rest,
    loss: {
      ...loss,
      globalCrops: cfg.crops.globalCrops,
      localCrops: cfg.crops.localCrops,
      epochs: cfg.epochs,
      // Temperatures change per whole epoch (as in the official code); a short run may get no warm-up.
      warmupTeacherTempEpochs: typeof tempWarmup === 'number' ? tempWarmup : Math.round(epochsOf(tempWarmup, cfg.epochs)),
      mimStartEpoch: cfg.masking.predStartEpoch,
    },
    freezeLastLayerEpochs: epochsOf(freezeLastLayerEpochs, cfg.epochs),
  };
}

/** The student/teacher pair a run config describes, freshly initialised (seed: the config's). */
export function buildModel(cfg: PretrainConfig, seed = cfg.seed): IBOTModel {
  return new IBOTModel(modelConfig(cfg), seed);
}

/**
 * A config as stored by an earlier ibotlab (checkpoint.json): short-run
 * warm-ups as a separate `relative` block and a loss that repeated the run's
 * crop counts and epochs. Read into today's shape; current configs pass
 * through unchanged.
 */
export function upgradeConfig(stored: PretrainConfig): PretrainConfig {
  const old = stored as PretrainConfig & { relative?: { warmup: number; teacherTempWarmup: number; freezeLastLayer: number } };
  const loss: Record<string, unknown> = { ...old.model.loss };
  for (const k of ['epochs', 'globalCrops', 'localCrops', 'outDim', 'patchOutDim', 'mimStartEpoch']) delete loss[k];
  const cfg: PretrainConfig = { ...old, model: { ...old.model, loss: loss as LossRecipe } };
  delete (cfg as { relative?: unknown }).relative;
  if (old.relative) {
    const pct = (f: number): EpochSpan => `${Math.round(f * 1e6) / 1e4}%`;
    cfg.warmupEpochs = pct(old.relative.warmup);
    cfg.model.freezeLastLayerEpochs = pct(old.relative.freezeLastLayer);
    cfg.model.loss.warmupTeacherTempEpochs = pct(old.relative.teacherTempWarmup);
  }
  return cfg;
}
