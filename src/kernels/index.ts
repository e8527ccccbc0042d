/** Custom SIMD kernels for the tfjs wasm backend; see register.ts for what they replace. */
export { registerWasmKernels, setParallelThresholds, unregisterWasmKernels, wasmKernelsRegistered, wasmKernelOptions, KERNEL_NAMES, simplifyPermutation } from './register';
export type { KernelOptions } from './register';
export type { AdamWStepConstants } from './ops';
export type { StackedBatches } from './stacked';
export { hasFusedKernels, hasKernel, setAutoRegisterKernels, fusedDenseGelu, fusedGelu, fusedGeluGrad, fusedAttention, fusedAttentionGrad, fusedAttentionStacked, fusedAttentionStackedGrad, fusedLayerNorm, fusedLayerNormGrad, fusedAdamW, fusedEma, qkvHeads, softmaxGrad } from './ops';
export { registerWebGPUKernels, unregisterWebGPUKernels, webgpuDispatches } from './webgpu';
export { kernelsFor, releaseKernels, gemmScratchBytes, attentionScratchBytes, splitRange, defaultKernelThreads, instantiateKernels, relaxedSimd } from './wasm-kernels';
export type { WasmBackendLike, KernelExports, SimdChoice } from './wasm-kernels';
