/**
 * ibotlab: iBOT self-supervised learning on TensorFlow.js — the public API.
 *
 *   import * as ibot from 'ibotlab';          // from a notebook in this repository: from '..'
 *   await ibot.initBackend();
 *   const { train, test } = ibot.loadEmbeddedFashionMnist();
 *   const trainer = new ibot.Pretrainer(ibot.pretrainPreset('fashion-mnist'), train, { outDir: 'runs/demo' });
 *   for await (const ev of trainer.run()) if (ev.type === 'step') console.log(ev.step, ev.stats.loss);
 *
 * Names are grouped as a training step flows: backend → data → augmentation
 * → model → training → evaluation; then files, reference checks, figures
 * (`viz`) and the notebooks' shared session (`lab`). Each block names the
 * module that holds it; `src/README.md` draws the map.
 */
import './util/gradients';

export * as tf from '@tensorflow/tfjs-core';

// Backend: which TensorFlow.js backend computes (tensorflow, webgpu, wasm, cpu) and why.
export { initBackend, backendInfo, describeBackend, measureMatMulPeak } from './backend';
export type { BackendInfo, BackendName, BackendOptions } from './backend';

// Data: datasets by name, the embedded Fashion-MNIST split, image folders and photos, normalisation.
export { loadDataset, loadSplits, loadEmbeddedFashionMnist, findDataset, FASHION_MNIST_CLASSES, MNIST_CLASSES } from './data/registry';
export type { LoadDatasetOptions, Split } from './data/registry';
export { toTensor, subset, labelSubset, stratifiedSplit, classCounts } from './data/dataset';
export type { ImageDataset, LabelSubsetSpec } from './data/dataset';
export { readImageFolder } from './data/folder';
export { readPhotos, readPhotoFolder } from './data/photos';
export type { PhotoBatch, PhotoOptions } from './data/photos';
export { resolveNormalize, normalizeImages, IMAGENET_MEAN, IMAGENET_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD, CIFAR10_MEAN, CIFAR10_STD } from './data/normalize';
export type { NormalizeConfig, NormalizeSetting } from './data/normalize';

// Augmentation: multi-crop views and the blockwise MIM masks, one training batch at a time.
export { multiCrop, multiCropStacked, unstackViews, disposeViews } from './augment/multicrop';
export type { MultiCropViews, StackedViews } from './augment/multicrop';
export { multiCropConfig, multiCropPreset, viewConfigs, DEFAULT_MULTICROP } from './augment/crop-config';
export type { MultiCropConfig, ViewConfig } from './augment/crop-config';
export { sampleCropBox, sampleViewPlan } from './augment/crop-plan';
export type { CropBox, ViewPlan } from './augment/crop-plan';
export { applyViewPlan, augmentView, resizedCrops, gaussianBlur, solarize, rgbToGrayscale, adjustBrightness, adjustContrast, adjustSaturation, adjustHue } from './augment/crop-ops';
export { maskingConfig, sampleMask, blockMask, blockMaskWithBlocks, randomMask, sampleBatchMasks, masksToTensor, maskRatio, patchGrid, DEFAULT_MASKING } from './augment/masking';
export type { MaskingConfig } from './augment/masking';
export { ibotBatch, batchViews, disposeIBOTBatch } from './augment/batch';
export type { IBOTBatch, IBOTBatchOptions } from './augment/batch';

// Model: the ViT backbone and the iBOT head with timm/DINO/iBOT names; pretrained weights.
export { VisionTransformer, vitConfig, VIT_PRESETS, VIT_DEFAULTS } from './model/vit';
export type { ViTConfig, ViTForwardOptions, ViTOutput, PackedRowsInput } from './model/vit';
export { IBOTHead } from './model/head';
export type { HeadConfig } from './model/head';
export { ParamSet } from './model/params';
export type { Param } from './model/params';
export { loadPretrainedViT, inferViTConfig, formatPretrainedReport } from './model/pretrained';
export type { LoadPretrainedOptions, PretrainedReport, PretrainedViT } from './model/pretrained';

// Training: the loss, optimisation, the student/teacher step, recipes, the loop and its checkpoints.
export { IBOTLoss, LOSS_DEFAULTS } from './train/loss';
export type { IBOTLossConfig } from './train/loss';
export { AdamW, clipPerParam, clipCoefficients, clipGlobalNorm, freezeLastLayer } from './train/optim';
export type { GradScale } from './train/optim';
export { emaUpdate } from './train/teacher';
export { cosineSchedule, teacherTempSchedule, scaledLr } from './train/schedules';
export { IBOTModel, collapseMonitors } from './train/ibot';
export type { IBOTModelConfig, Crops, StepSchedule, StepStats } from './train/ibot';
export { buildModel, modelConfig, epochsOf } from './train/config';
export type { PretrainConfig, EpochSpan } from './train/config';
export { pretrainPreset, PRESET_NAMES } from './train/presets';
export type { PresetName } from './train/presets';
export { Pretrainer } from './train/pretrain';
export type { PretrainEvent, PretrainOptions } from './train/pretrain';
export { loadRun, hasCheckpoint, readCheckpointState, saveCheckpoint, exportTeacher, TEACHER_EXPORT } from './train/checkpoint';
export type { CheckpointState, LoadedRun } from './train/checkpoint';

// Evaluation: frozen features and the paper's protocols, as tables.
export { extractFeatures, pixelFeatures, modelInput, backboneFeatureSet, pixelFeatureSet, disposeFeatureSet, cachedFeatures } from './eval/features';
export type { FeatureOptions, FeatureSet } from './eval/features';
export { knnClassify, knnClassifyMulti, l2NormalizeRows, nearestNeighbours, DINO_KNN_KS } from './eval/knn';
export type { KnnOptions, KnnResult } from './eval/knn';
export { kmeans } from './eval/kmeans';
export type { KMeansOptions, KMeansResult } from './eval/kmeans';
export { accuracy, predictLinear } from './eval/classifier';
export type { LinearClassifier } from './eval/classifier';
export { linearProbe, trainLinearClassifiers } from './eval/linear';
export type { LinearProbeResult, LinearProbeOptions } from './eval/linear';
export { logisticRegression, fitLogisticRegression } from './eval/logistic';
export type { LogisticResult, LogisticEvalOptions } from './eval/logistic';
export { semiSupervised, semiSplits, fineTune, semiFineTune } from './eval/semi';
export type { SemiResult, FineTuneResult } from './eval/semi';
export { headAssignments, headClustering, kmeansClustering, evaluateClusters } from './eval/cluster';
export type { ClusterResult } from './eval/cluster';
export { nmi, ari, fmi, hungarianAccuracy, purity, clusterMetrics, confusionMatrix } from './eval/metrics';
export type { ClusterMetrics } from './eval/metrics';
export { evaluateFeatures, knnEvaluation, backboneKnn, pixelKnn, ALL_PROTOCOLS } from './eval/protocols';
export type { EvalReport, EvalResult, KnnEvalResult, ProtocolName, BackboneKnnResult } from './eval/protocols';
export { resultsTable, compareRuns, sweepTable, confusionTable, formatTable, saveTable, loadTable, tableRows, reportJson } from './eval/results';

// Files: safetensors, downloads of known pretrained weights.
export { readSafetensors, writeSafetensors, parseSafetensors } from './io/safetensors';
export type { TensorMap, NamedArray } from './io/safetensors';
export { fetchWeights, cachedWeightsPath, defaultWeightsCacheDir, KNOWN_WEIGHTS } from './io/weights-fetch';
export type { WeightsSpec, FetchWeightsResult } from './io/weights-fetch';

// Reference checks against an independent PyTorch / scikit-learn implementation.
export { checkFixtureFile, fixtureFiles } from './reference/fixtures';
export type { FixtureResult } from './reference/fixtures';
export { compare, FLOAT32_TOLERANCE } from './reference/compare';

// Utilities.
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export { ProgressBar } from './util/progress';

/** Figures (plotly) and tslab display helpers. */
export * as viz from './viz';
/** The notebooks' shared session: quick/full mode, data, the shared pretrained run. */
export * as lab from './lab';
