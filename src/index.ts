/**
 * ibotlab: iBOT self-supervised learning on TensorFlow.js.
 *
 *   import { initBackend, pretrainPreset, Pretrainer, loadEmbeddedFashionMnist } from 'ibotlab';
 */
import './util/gradients';
export * as tf from '@tensorflow/tfjs-core';
export * from './backend';
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export { ProgressBar } from './util/progress';
export * from './io/safetensors';
export * from './io/checkpoint';
export * from './model/params';
export * from './model/layers';
export * from './model/attention';
export * from './model/vit';
export * from './model/head';
export * from './train/schedules';
export * from './train/loss';
export * from './train/optim';
export * from './train/teacher';
export * from './train/ibot';
export * from './train/presets';
export * from './train/pretrain';
export * from './augment';
export * from './data';
export * from './eval';
export * from './reference/compare';
export * from './reference/fixtures';
export * as viz from './viz';
