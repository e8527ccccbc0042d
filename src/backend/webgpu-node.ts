/**
 * tfjs-backend-webgpu in Node through the `webgpu` npm package (Dawn). Neither package is a
 * dependency of ibotlab: they are only used when the user installed them and opted in.
 *
 * Node has no `navigator.gpu`; the package's `create([])` gives a GPU object and its `globals` the
 * GPU* constants/classes the backend expects on globalThis; both must be in place before the
 * backend module is loaded. Dawn has no CPU fallback of its own: without a Vulkan driver there is
 * no adapter. Results must be read with `await t.data()` (dataSync needs OffscreenCanvas).
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendHost, isResolvable, tryLoad } from './host';
import { TFJS_WEBGPU, WEBGPU_DAWN } from './install';

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}
interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<AdapterInfoLike>;
}
interface GpuLike {
  requestAdapter(options?: object): Promise<AdapterLike | null>;
}
interface DawnPackage {
  create(flags: string[]): GpuLike;
  globals?: Record<string, unknown>;
}

export type WebgpuSetup = { ok: true; gpu: boolean; adapter: string } | { ok: false; missing: string[]; reason: string };

/** Software rasterisers that Dawn may expose as an adapter: correct but slower than wasm. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

/**
 * Set up navigator.gpu and make 'webgpu' the current backend. With `acceptSoftware` false, a
 * software adapter (llvmpipe: ~2 GFLOP/s) is refused, since wasm is ten times faster.
 */
export async function initWebgpu(host: BackendHost, acceptSoftware: boolean): Promise<WebgpuSetup> {
  const missing = [TFJS_WEBGPU, WEBGPU_DAWN].filter((id) => !isResolvable(host, id));
  if (missing.length > 0) return { ok: false, missing, reason: `${missing.join(' and ')} not installed` };

  // Probing Dawn costs a few hundred ms, and on a software driver it prints warnings about its
  // limits. Without a GPU device node no hardware adapter can exist, so 'auto' need not ask.
  const devices = host.gpuDevices?.();
  if (!acceptSoftware && devices && devices.length === 0) {
    return { ok: false, missing: [], reason: 'no GPU device visible (/dev/dri/renderD*, /dev/nvidia*), so no hardware adapter' };
  }
  const dawn = tryLoad(host, WEBGPU_DAWN);
  if (!dawn.ok) return { ok: false, missing: [], reason: `${WEBGPU_DAWN} failed to load: ${dawn.message}` };
  const { create, globals } = dawn.module as DawnPackage;
  let gpu: GpuLike;
  try {
    gpu = create([]);
  } catch (err) {
    return { ok: false, missing: [], reason: `${WEBGPU_DAWN}.create failed: ${(err as Error).message}` };
  }
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) {
    return { ok: false, missing: [], reason: 'no WebGPU adapter (is a Vulkan loader and driver installed?)' };
  }
  let info: AdapterInfoLike = adapter.info ?? {};
  if (!adapter.info && adapter.requestAdapterInfo) info = await adapter.requestAdapterInfo().catch(() => ({}));
  const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' ') || 'unknown';
  const software = adapter.isFallbackAdapter === true || SOFTWARE_ADAPTER.test(name);
  if (software && !acceptSoftware) {
    return { ok: false, missing: [], reason: `only a software adapter ('${name}'), slower than wasm` };
  }

  // Only now, with an adapter we will use, does navigator.gpu exist for the backend (and for the
  // process: a referenced Dawn instance can keep Node from exiting).
  if (globals) Object.assign(globalThis, globals);
  // Node ≥ 21 has its own navigator (a getter on globalThis): extend it rather than replace it.
  const existing = (globalThis as { navigator?: object }).navigator;
  if (existing) {
    Object.defineProperty(existing, 'gpu', { value: gpu, configurable: true, writable: true });
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }

  const backendPkg = tryLoad(host, TFJS_WEBGPU);
  if (!backendPkg.ok) return { ok: false, missing: [], reason: `${TFJS_WEBGPU} failed to load: ${backendPkg.message}` };
  if (tf.findBackendFactory('webgpu') === null) {
    return { ok: false, missing: [], reason: `${TFJS_WEBGPU} registered with another copy of @tensorflow/tfjs-core` };
  }
  if (!(await tf.setBackend('webgpu'))) {
    return { ok: false, missing: [], reason: `webgpu backend failed to initialise on adapter '${name}'` };
  }
  return { ok: true, gpu: !software, adapter: name };
}
