/**
 * Checkpoints of a pretraining run: one `.safetensors` with every tensor
 * (student, teacher, optimizer moments, centers) under official-style names,
 * and a JSON with everything else (config, step, RNG state). Both are written
 * to temporary files and renamed, JSON last, so a run killed at any moment
 * leaves the previous complete checkpoint readable.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TensorMap, readSafetensors, writeFileAtomic, writeSafetensors } from '../io/safetensors';
import { NormalizeConfig, resolveNormalize } from '../data/normalize';
import { IBOTModel } from './ibot';
import { PretrainConfig, buildModel, upgradeConfig } from './config';
import { RngState } from '../util/rng';
import { makeDirs } from '../util/fs';

export interface CheckpointState {
  /** Format version of this file. */
  version: 1;
  config: PretrainConfig;
  /** Optimizer steps done (= next step index). */
  step: number;
  /** Total steps of the schedules. */
  totalSteps: number;
  itersPerEpoch: number;
  rng: RngState;
  optimizerSteps: Record<string, number>;
  /** Wall-clock seconds trained so far, over all sessions. */
  elapsedSec: number;
  /** Free-form extras (last metrics, dataset name…). */
  extra?: Record<string, unknown>;
}

export const CHECKPOINT_TENSORS = 'checkpoint.safetensors';
export const CHECKPOINT_STATE = 'checkpoint.json';
export const TEACHER_EXPORT = 'teacher_backbone.safetensors';

/** All tensors of the model pair and its optimizer, read back from the device. */
export async function modelTensors(model: IBOTModel): Promise<TensorMap> {
  const out: TensorMap = {
    ...(await model.student.backbone.params.toTorch('student.backbone.')),
    ...(await model.student.head.params.toTorch('student.head.')),
    ...(await model.teacher.backbone.params.toTorch('teacher.backbone.')),
    ...(await model.teacher.head.params.toTorch('teacher.head.')),
  };
  const c = (await model.loss.center.data()) as Float32Array;
  const pc = (await model.loss.patchCenter.data()) as Float32Array;
  out['loss.center'] = { shape: [1, c.length], dtype: 'float32', data: c };
  out['loss.center2'] = { shape: [1, pc.length], dtype: 'float32', data: pc };
  // Moments in internal layout: they are only ever read back by ibotlab.
  const st = await model.optimizer.getState();
  for (const name of Object.keys(st.m)) {
    out[`optimizer.m.${name}`] = { shape: [st.m[name].length], dtype: 'float32', data: st.m[name] };
    out[`optimizer.v.${name}`] = { shape: [st.v[name].length], dtype: 'float32', data: st.v[name] };
  }
  return out;
}

export async function saveCheckpoint(dir: string, model: IBOTModel, state: Omit<CheckpointState, 'version' | 'optimizerSteps'>): Promise<void> {
  // Every tensor is read before anything is written, so the files on disk are from one step.
  const tensors = await modelTensors(model);
  const full: CheckpointState = { ...state, version: 1, optimizerSteps: (await model.optimizer.getState()).steps };
  makeDirs(dir);
  writeSafetensors(path.join(dir, CHECKPOINT_TENSORS), tensors, { format: 'ibotlab-checkpoint', step: String(state.step) });
  writeFileAtomic(path.join(dir, CHECKPOINT_STATE), JSON.stringify(full, null, 1));
}

export function hasCheckpoint(dir: string): boolean {
  return fs.existsSync(path.join(dir, CHECKPOINT_STATE)) && fs.existsSync(path.join(dir, CHECKPOINT_TENSORS));
}

/** The run state in `dir` (config in today's shape, whichever ibotlab wrote it). */
export function readCheckpointState(dir: string): CheckpointState {
  const file = path.join(dir, CHECKPOINT_STATE);
  if (!fs.existsSync(file)) throw new Error(`no checkpoint in ${dir} (${CHECKPOINT_STATE} missing); train first with 'ibotlab pretrain --out ${dir}'`);
  let st: CheckpointState;
  try {
    st = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); the checkpoint is damaged`);
  }
  if (st.version !== 1) throw new Error(`${file}: unsupported checkpoint version ${String(st.version)}`);
  if (!st.config || !st.config.model) throw new Error(`${file} has no model config; it was not written by 'ibotlab pretrain'`);
  return { ...st, config: upgradeConfig(st.config) };
}

/** Load tensors into a model built from the checkpoint's config; returns the state. */
export function loadCheckpoint(dir: string, model: IBOTModel): CheckpointState {
  const st = readCheckpointState(dir);
  const { tensors } = readSafetensors(path.join(dir, CHECKPOINT_TENSORS));
  const src = path.join(dir, CHECKPOINT_TENSORS);
  model.student.backbone.params.loadTorch(tensors, { prefix: 'student.backbone.', strict: true, source: src });
  model.student.head.params.loadTorch(tensors, { prefix: 'student.head.', strict: true, source: src });
  model.teacher.backbone.params.loadTorch(tensors, { prefix: 'teacher.backbone.', strict: true, source: src });
  model.teacher.head.params.loadTorch(tensors, { prefix: 'teacher.head.', strict: true, source: src });
  const need = (n: string): Float32Array => {
    const t = tensors[n];
    if (!t) throw new Error(`${src}: missing '${n}'`);
    return t.data as Float32Array;
  };
  model.loss.setCenters(need('loss.center'), need('loss.center2'));
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const name of Object.keys(st.optimizerSteps)) {
    m[name] = need(`optimizer.m.${name}`);
    v[name] = need(`optimizer.v.${name}`);
  }
  model.optimizer.setState({ steps: st.optimizerSteps, m, v });
  return st;
}

/** A finished or stopped run, loaded: the model pair as trained, its config and state. */
export interface LoadedRun {
  dir: string;
  model: IBOTModel;
  config: PretrainConfig;
  state: CheckpointState;
  /** Pixel normalisation the model was trained with (apply it before `forward`). */
  normalize: NormalizeConfig | null;
}

/** Build the model a run folder describes and load its weights (dispose `model` when done). */
export function loadRun(dir: string): LoadedRun {
  const state = readCheckpointState(dir);
  const model = buildModel(state.config);
  try {
    loadCheckpoint(dir, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  const normalize = resolveNormalize(state.config.crops.normalize, state.config.model.vit.inChans);
  return { dir, model, config: state.config, state, normalize };
}

/**
 * The teacher backbone alone, with timm/DINO names (what downstream users
 * load), and in the metadata what the weights cannot tell: the number of
 * heads and the pixel normalisation.
 */
export async function exportTeacher(file: string, model: IBOTModel, normalize?: NormalizeConfig | null): Promise<void> {
  const meta: Record<string, string> = { format: 'pt', source: 'ibotlab teacher backbone', num_heads: String(model.teacher.backbone.config.numHeads) };
  if (normalize) {
    meta.mean = JSON.stringify(normalize.mean);
    meta.std = JSON.stringify(normalize.std);
  }
  writeSafetensors(file, await model.teacher.backbone.params.toTorch(), meta);
}
