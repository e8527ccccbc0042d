/** Public types of the backend selection (re-exported by `src/backend/index.ts`). */

/** TensorFlow.js backends ibotlab knows how to set up in Node, fastest first. */
export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** npm package that provides the backend, e.g. '@tensorflow/tfjs-backend-wasm'. */
  package: string;
  /** CPU threads the backend computes with (wasm: XNNPACK pool size; cpu/webgpu: 1). */
  threads: number;
  /** Whether vectorised kernels are in use (wasm SIMD build, native TensorFlow). */
  simd: boolean;
  /** Whether a GPU does the arithmetic (tfjs-node-gpu, or webgpu on a hardware adapter). */
  gpu: boolean;
  /** webgpu: the adapter in use (vendor, architecture, device, description as Dawn reports them). */
  adapter?: string;
  /** Why each earlier candidate was skipped, in the order they were tried. */
  reasons: string[];
}

export interface BackendOptions {
  /**
   * Backend to use. Default 'auto': tensorflow (tfjs-node-gpu, then tfjs-node) → webgpu (only when
   * allowed) → wasm → cpu. Env `IBOTLAB_BACKEND` is used when this is absent or 'auto'.
   */
  backend?: BackendName | 'auto';
  /**
   * wasm threads (XNNPACK pool size, 1–8). Default: env `IBOTLAB_THREADS`, else the number of logical
   * cores. Only takes effect on the first wasm initialisation in a process.
   */
  threads?: number;
  /** Suppress the informational one-liner on stderr (the slow-`cpu` warning is always printed). */
  quiet?: boolean;
  /**
   * Let 'auto' use webgpu on a hardware adapter (default true; env `IBOTLAB_WEBGPU=0` turns it
   * off). In Node it needs the optional `@tensorflow/tfjs-backend-webgpu` + `webgpu` packages and a
   * Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver. A software adapter (llvmpipe) is never
   * picked by 'auto': it is ~10x slower than wasm. Force it with backend 'webgpu'.
   */
  allowWebgpu?: boolean;
}
