/**
 * The tfjs wasm backend with SIMD and a real multithreaded XNNPACK pool, in Node.
 *
 * tfjs 4.22 ships a threaded-SIMD build but never uses it under Node, for three reasons that are
 * each worked around here, only for the duration of the backend's initialisation:
 *  1. the flag WASM_HAS_MULTITHREAD_SUPPORT is hard-wired to false under Node → we set it;
 *  2. Emscripten starts its pthread workers from `blob:` URLs (worker script and main script), which
 *     `worker_threads.Worker` cannot open → Emscripten takes its Worker class from
 *     `require('worker_threads').Worker` when its factory runs, so we swap in a subclass that runs
 *     the package's exported worker source with `eval: true`, and tells each worker to load the
 *     package's own copy of the threaded main script (a file) instead of the Blob;
 *  3. the C++ side caps the pool at (logical cores / 2), computed from `os.cpus().length` in a
 *     static initialiser (it assumes 2 hyperthreads per core) → we report 2 × threads cores while
 *     the wasm module instantiates.
 * Emscripten also `ref()`s a worker while it runs a pthread, so XNNPACK's parked pool threads would
 * keep Node alive forever; our subclass ignores `ref()` (the pool only ever works synchronously for
 * the main thread, so nothing can be lost when the process ends).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { Worker as NodeWorker, WorkerOptions, TransferListItem } from 'worker_threads';
import { BackendHost } from './host';
import { TFJS_WASM } from './install';

/** Emscripten's pthread pool is pre-built with 8 workers, and the C++ side caps threads at 8. */
export const MAX_WASM_THREADS = 8;

interface WasmPackage {
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

export interface WasmSetup {
  threads: number;
  simd: boolean;
  /** Notes on what did not go as asked (threaded build failed, backend already initialised, …). */
  notes: string[];
}

const WORKER_MODULE = `${TFJS_WASM}/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js`;
const MAIN_SCRIPT = `${TFJS_WASM}/wasm-out/tfjs-backend-wasm-threaded-simd.js`;

type WorkerCtor = new (filename: string | URL, options?: WorkerOptions) => NodeWorker;

/** Subclass of worker_threads.Worker that can start Emscripten's pthread workers in Node. */
export function pthreadWorkerClass(Base: WorkerCtor, workerSource: string, mainScriptPath: string): WorkerCtor {
  const redirect = (filename: string | URL, options?: WorkerOptions): [string | URL, WorkerOptions | undefined] => {
    const url = String(filename);
    if (!url.startsWith('blob:')) return [filename, options];
    URL.revokeObjectURL(url); // the Blob is never read; free it
    return [workerSource, { ...options, eval: true }];
  };
  return class PthreadWorker extends Base {
    constructor(filename: string | URL, options?: WorkerOptions) {
      super(...redirect(filename, options));
    }

    override postMessage(value: unknown, transferList?: readonly TransferListItem[]): void {
      const msg = value as { cmd?: unknown; urlOrBlob?: unknown } | null;
      if (msg && msg.cmd === 'load' && typeof msg.urlOrBlob !== 'string') {
        value = { ...msg, urlOrBlob: mainScriptPath };
      }
      super.postMessage(value, transferList);
    }

    override ref(): void {
      // Deliberately not keeping the process alive for parked pool threads (see file comment).
    }
  };
}

/** Whether this JS engine can run shared-memory wasm threads at all. */
function engineHasWasmThreads(): boolean {
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return false;
  try {
    // A module with a shared memory and an atomic load (from wasm-feature-detect).
    return WebAssembly.validate(
      new Uint8Array([
        0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0, 254, 16,
        2, 0, 26, 11,
      ]),
    );
  } catch {
    return false;
  }
}

/**
 * Initialise (or reuse) the 'wasm' backend and make it current. `load` must already have succeeded
 * for TFJS_WASM (the caller classifies a missing package). Throws when no wasm build initialises.
 */
export async function initWasm(host: BackendHost, requestedThreads: number): Promise<WasmSetup> {
  const pkg = host.load(TFJS_WASM) as WasmPackage;
  const notes: string[] = [];
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;

  if (tf.findBackend('wasm') !== null) {
    // Already initialised (by us or by other code): thread count is fixed for the process lifetime.
    if (!(await tf.setBackend('wasm'))) throw new Error('the initialised wasm backend could not be selected');
    return { threads: pkg.getThreadsCount(), simd, notes };
  }

  // Only the SIMD build comes in a threaded flavour.
  const threaded = requestedThreads > 1 && simd && engineHasWasmThreads();
  if (requestedThreads > 1 && !threaded) {
    notes.push(`wasm threads unavailable (${simd ? 'no shared-memory wasm threads' : 'no SIMD'}); using 1 thread`);
  }
  if (threaded) {
    try {
      if (await initThreaded(host, pkg, requestedThreads)) {
        const threads = pkg.getThreadsCount();
        if (threads !== requestedThreads) notes.push(`asked for ${requestedThreads} threads, the pool has ${threads}`);
        return { threads, simd, notes };
      }
      notes.push('threaded wasm build failed to initialise; using the single-threaded build');
    } catch (err) {
      notes.push(`threaded wasm build unavailable (${(err as Error).message}); using the single-threaded build`);
    }
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  pkg.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) {
    throw new Error('the wasm backend failed to initialise (see the tfjs warning above)');
  }
  return { threads: pkg.getThreadsCount(), simd, notes };
}

async function initThreaded(host: BackendHost, pkg: WasmPackage, threads: number): Promise<boolean> {
  const { wasmWorkerContents } = host.load(WORKER_MODULE) as { wasmWorkerContents: string };
  const mainScriptPath = host.resolve(MAIN_SCRIPT);
  if (typeof wasmWorkerContents !== 'string' || !path.isAbsolute(mainScriptPath)) {
    throw new Error(`unexpected layout of ${TFJS_WASM}`);
  }
  // tfjs escapes newlines the same way before putting this source in a Blob: the source contains a
  // raw newline inside a string literal that must stay an escape sequence.
  const workerSource = wasmWorkerContents.replace(/\n/g, '\\n');

  // The real module objects (not TS namespace copies), since Emscripten reads them via require().
  const workerThreads = require('worker_threads') as { Worker: WorkerCtor };
  const osModule = require('os') as { cpus: () => import('os').CpuInfo[] };
  const RealWorker = workerThreads.Worker;
  const realCpus = osModule.cpus;

  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  pkg.setThreadsCount(threads);
  workerThreads.Worker = pthreadWorkerClass(RealWorker, workerSource, mainScriptPath);
  osModule.cpus = () => {
    const cpus = realCpus.call(osModule);
    const fake = cpus.length > 0 ? cpus : [{ model: 'unknown', speed: 0, times: { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 } }];
    while (fake.length < 2 * threads) fake.push(fake[fake.length - 1]);
    return fake;
  };
  let ok: boolean;
  try {
    // Emscripten copies the (patched) Worker class into global.Worker when its factory runs, so
    // workers it creates later still get the patch after we restore the module export.
    ok = await tf.setBackend('wasm');
  } finally {
    workerThreads.Worker = RealWorker;
    osModule.cpus = realCpus;
  }
  if (ok) releaseIdleWorkers();
  return ok;
}

/**
 * The build pre-starts 8 pthread workers whatever the thread count, but XNNPACK's pool creates all
 * its threads up front and never asks for more, so the spare ones (~8 MB each) can go. Should a
 * pthread ever be wanted later, Emscripten starts a fresh worker on demand.
 */
function releaseIdleWorkers(): void {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: { PThread?: { unusedWorkers?: NodeWorker[] } } } | null;
  const idle = backend?.wasm?.PThread?.unusedWorkers;
  if (!Array.isArray(idle)) return;
  for (const worker of idle.splice(0)) void worker.terminate();
}
