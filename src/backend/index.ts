/**
 * Which TensorFlow.js backend ibotlab computes on, and setting it up in Node.
 *
 * 'auto' tries, fastest first: native TensorFlow (`@tensorflow/tfjs-node-gpu` when a CUDA GPU is
 * visible, then `@tensorflow/tfjs-node`; both optional and usually absent), WebGPU on a hardware
 * adapter (the optional `webgpu` + `@tensorflow/tfjs-backend-webgpu` packages and a GPU driver; any
 * vendor), wasm with SIMD and a multithreaded XNNPACK pool (the normal CPU case: ~2x over stock
 * tfjs on 2 cores), and last the plain-JS cpu backend with a loud warning. See `wasm-node.ts` for
 * the threading work, `webgpu-node.ts` for Dawn.
 *
 * Environment: IBOTLAB_BACKEND (tensorflow|webgpu|wasm|cpu|auto) forces a backend when the option
 * is absent or 'auto'; IBOTLAB_THREADS sets the wasm thread count; IBOTLAB_WEBGPU=0 keeps 'auto'
 * off the GPU.
 */
import { BackendHost, nodeHost } from './host';
import { lastBackendInfo, selectBackend } from './select';
import type { BackendInfo, BackendOptions } from './types';

export type { BackendInfo, BackendName, BackendOptions } from './types';
export type { BackendHost } from './host';
export { describeBackend, selectBackend } from './select';
export { measureMatMulPeak } from './peak';

let host: BackendHost | undefined;

/**
 * Select and initialise a backend and make it tfjs's current one. Cheap when called again with the
 * same request. Throws, with the package and the install command, when a requested backend cannot
 * load; 'auto' never throws for a missing optional package.
 */
export function initBackend(opts: BackendOptions = {}): Promise<BackendInfo> {
  host ??= nodeHost();
  return selectBackend(opts, host);
}

/** The result of the last successful `initBackend`, or undefined before the first. */
export function backendInfo(): BackendInfo | undefined {
  return lastBackendInfo();
}

