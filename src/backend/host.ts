/**
 * Everything backend selection needs from the outside world, behind one interface so tests can
 * pretend packages are missing or present, GPUs visible, env vars set — without touching the real
 * process. `nodeHost()` is the real thing.
 */
import * as fs from 'fs';
import * as os from 'os';

export interface BackendHost {
  /** `require`-like: the module's exports, or a throw (code MODULE_NOT_FOUND when not installed). */
  load(id: string): unknown;
  /** `require.resolve`-like: the file a module id resolves to, or a throw. */
  resolve(id: string): string;
  /** Environment variables (IBOTLAB_BACKEND, IBOTLAB_THREADS, IBOTLAB_WEBGPU, CUDA_VISIBLE_DEVICES). */
  env: Readonly<Record<string, string | undefined>>;
  /** Logical CPU cores. */
  cpuCount: number;
  /** Whether an NVIDIA GPU is visible to CUDA (decides whether tfjs-node-gpu is worth loading). */
  cudaGpuVisible(): boolean;
  /** Where warnings and the informational line go (one line per call, no trailing newline). */
  warn(line: string): void;
  /**
   * Linux: the GPU device nodes a driver could use (/dev/dri/renderD*, /dev/nvidia*, WSL's /dev/dxg);
   * absent where the platform has none to list (macOS, Windows) or for stand-in hosts in tests.
   */
  gpuDevices?(): string[];
}

export type LoadResult =
  | { ok: true; module: unknown }
  /** missing: the package itself is not installed (as opposed to installed but failing to load). */
  | { ok: false; missing: boolean; message: string };

/**
 * `require` a package and classify failure. "Cannot find module '<id>'" means not installed (the
 * normal case for the optional tfjs-node packages); any other error — a missing native binding, a
 * missing libtensorflow.so, an incompatible CUDA — means installed but broken.
 */
export function tryLoad(host: Pick<BackendHost, 'load'>, id: string): LoadResult {
  try {
    return { ok: true, module: host.load(id) };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    const message = typeof e?.message === 'string' ? e.message.split('\n')[0] : String(err);
    const missing = e?.code === 'MODULE_NOT_FOUND' && message.includes(`'${id}'`);
    return { ok: false, missing, message };
  }
}

/** Whether `id` is installed, without executing it (no side effects such as backend registration). */
export function isResolvable(host: Pick<BackendHost, 'resolve'>, id: string): boolean {
  try {
    host.resolve(id);
    return true;
  } catch {
    return false;
  }
}

/**
 * CUDA sees a GPU when the NVIDIA kernel driver exposes one and CUDA_VISIBLE_DEVICES does not hide
 * them all. Cheaper and quieter than spawning nvidia-smi or loading libcuda.
 */
export function cudaGpuVisible(
  env: Readonly<Record<string, string | undefined>>,
  listDir: (dir: string) => string[] = (dir) => fs.readdirSync(dir),
  exists: (file: string) => boolean = (file) => fs.existsSync(file),
): boolean {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined && (visible.trim() === '' || visible.trim() === '-1')) return false;
  try {
    if (listDir('/proc/driver/nvidia/gpus').length > 0) return true;
  } catch {
    // No NVIDIA driver loaded (or no /proc): fall through to the device node check.
  }
  return exists('/dev/nvidia0');
}

/** The real process: Node's require, process.env, os.cpus(), stderr. */
export function nodeHost(): BackendHost {
  return {
    load: (id) => require(id) as unknown,
    resolve: (id) => require.resolve(id),
    env: process.env,
    cpuCount: Math.max(1, os.cpus().length),
    cudaGpuVisible: () => cudaGpuVisible(process.env),
    warn: (line) => {
      process.stderr.write(`${line}\n`);
    },
    gpuDevices: process.platform === 'linux' ? () => gpuDevices() : undefined,
  };
}

/** GPU device nodes under /dev that a hardware WebGPU adapter would need on Linux. */
export function gpuDevices(listDir: (dir: string) => string[] = (dir) => fs.readdirSync(dir)): string[] {
  const list = (dir: string, re: RegExp): string[] => {
    try {
      return listDir(dir)
        .filter((f) => re.test(f))
        .map((f) => `${dir}/${f}`);
    } catch {
      return [];
    }
  };
  return [...list('/dev/dri', /^renderD\d+$/), ...list('/dev', /^(nvidia\d+|dxg)$/)];
}
