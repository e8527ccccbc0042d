import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import {
  backendInfo,
  BackendHost,
  BackendInfo,
  describeBackend,
  initBackend,
  measureMatMulPeak,
  selectBackend,
} from '../src/backend';
import { cudaGpuVisible, gpuDevices, isResolvable, nodeHost, tryLoad } from '../src/backend/host';
import { TFJS_NODE, TFJS_NODE_GPU, TFJS_WASM, TFJS_WEBGPU, WEBGPU_DAWN } from '../src/backend/install';

const CORES = Math.max(1, os.cpus().length);
const EXPECTED_THREADS = Math.min(CORES, 8);

function notFound(id: string): Error {
  return Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- ${__filename}`), {
    code: 'MODULE_NOT_FOUND',
  });
}

type FakeHost = BackendHost & { warnings: string[] };

/**
 * The real require, minus `hide` (answered like an uninstalled package), plus `fake` modules. The
 * optional native/webgpu packages are hidden by default so results do not depend on this machine.
 */
function fakeHost(
  opts: { hide?: string[]; fake?: Record<string, unknown>; env?: Record<string, string>; cuda?: boolean } = {},
): FakeHost {
  const hide = opts.hide ?? [TFJS_NODE, TFJS_NODE_GPU, TFJS_WEBGPU, WEBGPU_DAWN];
  const hidden = (id: string) => hide.some((h) => id === h || id.startsWith(`${h}/`));
  const warnings: string[] = [];
  return {
    load: (id) => {
      if (opts.fake && id in opts.fake) return opts.fake[id];
      if (hidden(id)) throw notFound(id);
      return require(id) as unknown;
    },
    resolve: (id) => {
      if (opts.fake && id in opts.fake) return `/fake/${id}`;
      if (hidden(id)) throw notFound(id);
      return require.resolve(id);
    },
    env: opts.env ?? {},
    cpuCount: CORES,
    cudaGpuVisible: () => opts.cuda ?? false,
    warn: (line) => warnings.push(line),
    warnings,
  };
}

/** Restores the normal backend after tests that switch away from it. */
async function backToWasm(): Promise<BackendInfo> {
  return selectBackend({ backend: 'wasm', quiet: true }, fakeHost());
}

describe('backend selection (auto)', () => {
  it('skips absent tfjs-node and webgpu packages with reasons, then picks wasm with SIMD and threads', async () => {
    const host = fakeHost();
    const info = await selectBackend({ quiet: true }, host);
    assert.equal(info.name, 'wasm');
    assert.equal(info.package, TFJS_WASM);
    assert.equal(info.simd, true);
    assert.equal(info.gpu, false);
    // The first wasm init in this process defaults to one thread per core (capped at 8).
    assert.equal(info.threads, EXPECTED_THREADS);
    assert.equal(getThreadsCount(), EXPECTED_THREADS);
    if (CORES >= 2) assert.equal(info.threads >= 2, true);
    assert.equal(tf.getBackend(), 'wasm');
    assert.deepEqual(info.reasons, [
      `tensorflow: ${TFJS_NODE_GPU} skipped (no CUDA GPU visible)`,
      `tensorflow: ${TFJS_NODE} is not installed`,
      `webgpu: ${TFJS_WEBGPU} and ${WEBGPU_DAWN} not installed`,
    ]);
    assert.deepEqual(host.warnings, [], 'quiet: no info line');
  });

  it('tries tfjs-node-gpu first when a CUDA GPU is visible', async () => {
    const info = await selectBackend({ quiet: true }, fakeHost({ cuda: true }));
    assert.equal(info.name, 'wasm');
    assert.deepEqual(info.reasons.slice(0, 2), [
      `tensorflow: ${TFJS_NODE_GPU} is not installed`,
      `tensorflow: ${TFJS_NODE} is not installed`,
    ]);
  });

  it('skips a tfjs-node that loads but registers no backend in our tfjs-core (a duplicate copy)', async () => {
    const info = await selectBackend({ quiet: true }, fakeHost({ fake: { [TFJS_NODE]: {} } }));
    assert.equal(info.name, 'wasm');
    assert.match(info.reasons[1], /tfjs-node loaded but registered its backend with another copy of @tensorflow\/tfjs-core/);
    assert.match(info.reasons[1], new RegExp(`install @tensorflow/tfjs-node@${tf.version_core.replace(/\./g, '\\.')}`));
  });

  it('keeps auto off webgpu when it is turned off (option or IBOTLAB_WEBGPU=0), and says so', async () => {
    for (const [opts, env] of [
      [{ allowWebgpu: false }, {}],
      [{}, { IBOTLAB_WEBGPU: '0' }],
    ] as const) {
      const info = await selectBackend({ ...opts, quiet: true }, fakeHost({ env }));
      assert.equal(info.name, 'wasm');
      assert.equal(info.reasons[2], 'webgpu: turned off (allowWebgpu: false or IBOTLAB_WEBGPU=0)');
    }
  });

  it('falls back to cpu with a loud warning when wasm is missing', async () => {
    const host = fakeHost({ hide: [TFJS_NODE, TFJS_NODE_GPU, TFJS_WEBGPU, WEBGPU_DAWN, TFJS_WASM] });
    const info = await selectBackend({ quiet: true }, host);
    assert.equal(info.name, 'cpu');
    assert.equal(info.threads, 1);
    assert.equal(info.simd, false);
    assert.equal(info.reasons.at(-1), `wasm: ${TFJS_WASM} is not installed`);
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(host.warnings.length, 1);
    assert.match(host.warnings[0], /WARNING.*'cpu' backend.*slower than wasm/);
    assert.match(host.warnings[0], /tfjs-backend-wasm is not installed/);
    await backToWasm();
    assert.equal(tf.getBackend(), 'wasm');
  });

  it('prints one informational line unless quiet', async () => {
    const host = fakeHost();
    await selectBackend({ backend: 'cpu', quiet: true }, host);
    host.warnings.length = 0;
    const info = await selectBackend({}, host);
    assert.equal(info.name, 'wasm');
    assert.deepEqual(host.warnings, [`ibotlab: TensorFlow.js backend: ${describeBackend(info)}`]);
  });
});

/** A stand-in for the `webgpu` (Dawn) package whose only adapter is `adapter`. */
function fakeDawn(adapter: object | null): Record<string, unknown> {
  return {
    [WEBGPU_DAWN]: { create: () => ({ requestAdapter: async () => adapter }), globals: { GPUBufferUsage: { MAP_READ: 1 } } },
    [TFJS_WEBGPU]: {},
  };
}

/** Runs `fn`, then undoes what the webgpu setup put on globalThis. */
async function withGlobalsRestored(fn: () => Promise<void>): Promise<void> {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const g = globalThis as { navigator?: { gpu?: unknown }; GPUBufferUsage?: unknown };
  try {
    await fn();
  } finally {
    if (g.navigator && Object.getOwnPropertyDescriptor(g.navigator, 'gpu')) delete g.navigator.gpu;
    if (saved) Object.defineProperty(globalThis, 'navigator', saved);
    else delete g.navigator;
    delete g.GPUBufferUsage;
  }
}

describe('webgpu detection (with a stand-in for the webgpu package)', () => {
  it('records a missing adapter and leaves navigator.gpu and the globals alone', () =>
    withGlobalsRestored(async () => {
      const info = await selectBackend({ allowWebgpu: true, quiet: true }, fakeHost({ fake: fakeDawn(null) }));
      assert.equal(info.name, 'wasm');
      assert.match(info.reasons[2], /^webgpu: no WebGPU adapter \(is a Vulkan loader and driver installed\?\)$/);
      const g = globalThis as { navigator?: { gpu?: { requestAdapter?: unknown } }; GPUBufferUsage?: unknown };
      assert.equal(g.navigator?.gpu, undefined);
      assert.equal(g.GPUBufferUsage, undefined);
    }));

  it('a hardware adapter becomes navigator.gpu, with the globals, before the backend loads', () =>
    withGlobalsRestored(async () => {
      const adapter = { info: { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' } };
      // The stand-in backend package registers nothing, so selection stops there; the globals are in place by then.
      const info = await selectBackend({ quiet: true }, fakeHost({ fake: fakeDawn(adapter) }));
      assert.equal(info.name, 'wasm');
      assert.match(info.reasons[2], /webgpu: @tensorflow\/tfjs-backend-webgpu registered with another copy/);
      const g = globalThis as { navigator?: { gpu?: { requestAdapter?: unknown } }; GPUBufferUsage?: unknown };
      assert.equal(typeof g.navigator?.gpu?.requestAdapter, 'function');
      assert.deepEqual(g.GPUBufferUsage, { MAP_READ: 1 });
    }));

  it("'auto' does not probe Dawn where no GPU device node exists; forcing webgpu still does", () =>
    withGlobalsRestored(async () => {
      let probed = 0;
      const dawn = { [WEBGPU_DAWN]: { create: () => ({ requestAdapter: async () => ((probed += 1), null) }) }, [TFJS_WEBGPU]: {} };
      const host = { ...fakeHost({ fake: dawn }), gpuDevices: () => [] as string[] };
      const info = await selectBackend({ quiet: true }, host);
      assert.equal(info.name, 'wasm');
      assert.match(info.reasons[2], /^webgpu: no GPU device visible/);
      assert.equal(probed, 0);
      await assert.rejects(selectBackend({ backend: 'webgpu', quiet: true }, host), /no WebGPU adapter/);
      assert.equal(probed, 1);
      const withGpu = { ...fakeHost({ fake: dawn }), gpuDevices: () => ['/dev/dri/renderD128'] };
      await selectBackend({ quiet: true }, withGpu);
      assert.equal(probed, 2);
    }));

  it('gpuDevices lists render nodes, NVIDIA devices and WSL\'s dxg, nothing else', async () => {
    const fakeDev: Record<string, string[]> = { '/dev/dri': ['card0', 'renderD128'], '/dev': ['nvidia0', 'nvidiactl', 'null', 'dxg'] };
    assert.deepEqual(gpuDevices((d) => fakeDev[d] ?? []), ['/dev/dri/renderD128', '/dev/nvidia0', '/dev/dxg']);
    assert.deepEqual(gpuDevices(() => { throw new Error('ENOENT'); }), []);
  });

  it("'auto' passes over a software adapter (llvmpipe is slower than wasm)", () =>
    withGlobalsRestored(async () => {
      const adapter = { info: { vendor: 'mesa', architecture: '', device: '', description: 'llvmpipe (LLVM 19.1.7, 256 bits)' } };
      const info = await selectBackend({ allowWebgpu: true, quiet: true }, fakeHost({ fake: fakeDawn(adapter) }));
      assert.equal(info.name, 'wasm');
      assert.match(info.reasons[2], /webgpu: only a software adapter \('mesa llvmpipe.*'\), slower than wasm/);
    }));

  it('forcing webgpu accepts a software adapter but reports a backend registered elsewhere', () =>
    withGlobalsRestored(async () => {
      const adapter = { isFallbackAdapter: true, info: { vendor: 'google', description: 'SwiftShader' } };
      await assert.rejects(
        selectBackend({ backend: 'webgpu', quiet: true }, fakeHost({ fake: fakeDawn(adapter) })),
        /webgpu: @tensorflow\/tfjs-backend-webgpu registered with another copy of @tensorflow\/tfjs-core/,
      );
      assert.equal(tf.getBackend(), 'wasm');
    }));
});

describe('forcing a backend', () => {
  it("forcing 'tensorflow' without tfjs-node throws with the install command", async () => {
    await assert.rejects(selectBackend({ backend: 'tensorflow', quiet: true }, fakeHost()), (err: Error) => {
      assert.match(err.message, /backend 'tensorflow' is not available/);
      assert.match(err.message, /@tensorflow\/tfjs-node is not installed/);
      assert.ok(err.message.includes(`\`npm install @tensorflow/tfjs-node@${tf.version_core}\``), err.message);
      assert.match(err.message, /network access/);
      // libtensorflow 2.9.1 (what tfjs-node-gpu 4.22 downloads) was built against CUDA 11.2 / cuDNN 8.1.
      assert.match(err.message, /CUDA 11\.2 and cuDNN 8\.1/);
      return true;
    });
    assert.equal(tf.getBackend(), 'wasm', 'a failed request leaves the current backend alone');
  });

  it("forcing 'tensorflow' with a GPU visible names tfjs-node-gpu first", async () => {
    await assert.rejects(selectBackend({ backend: 'tensorflow' }, fakeHost({ cuda: true })), (err: Error) => {
      const gpuAt = err.message.indexOf(`npm install ${TFJS_NODE_GPU}`);
      const cpuAt = err.message.indexOf(`npm install ${TFJS_NODE}@`);
      assert.ok(gpuAt >= 0 && cpuAt > gpuAt, err.message);
      return true;
    });
  });

  it("forcing 'webgpu' without its packages throws with the install command", async () => {
    await assert.rejects(selectBackend({ backend: 'webgpu' }, fakeHost()), (err: Error) => {
      assert.ok(err.message.includes(`npm install ${TFJS_WEBGPU}@${tf.version_core} ${WEBGPU_DAWN}`), err.message);
      assert.match(err.message, /Vulkan/);
      return true;
    });
  });

  it("forcing 'wasm' when it is missing throws with the install command", async () => {
    await assert.rejects(selectBackend({ backend: 'wasm' }, fakeHost({ hide: [TFJS_WASM] })), (err: Error) => {
      assert.ok(err.message.includes(`npm install ${TFJS_WASM}@${tf.version_core}`), err.message);
      return true;
    });
  });

  it("forcing 'cpu' works, with a warning, and computes", async () => {
    const host = fakeHost();
    const info = await selectBackend({ backend: 'cpu', quiet: true }, host);
    assert.equal(info.name, 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    assert.equal(host.warnings.length, 1);
    assert.match(host.warnings[0], /WARNING.*requested explicitly/);
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0]);
    assert.equal(y, 11);
    await backToWasm();
  });

  it('IBOTLAB_BACKEND forces a backend; an explicit option wins over it', async () => {
    const host = fakeHost({ env: { IBOTLAB_BACKEND: 'cpu' } });
    assert.equal((await selectBackend({ quiet: true }, host)).name, 'cpu');
    assert.equal((await selectBackend({ backend: 'auto', quiet: true }, host)).name, 'cpu');
    assert.equal((await selectBackend({ backend: 'wasm', quiet: true }, host)).name, 'wasm');
    await assert.rejects(
      selectBackend({ quiet: true }, fakeHost({ env: { IBOTLAB_BACKEND: 'tensorflow' } })),
      /requested by IBOTLAB_BACKEND=tensorflow/,
    );
    assert.equal(tf.getBackend(), 'wasm');
  });

  it('rejects unknown backend names and bad thread counts with what to do', async () => {
    await assert.rejects(
      selectBackend({}, fakeHost({ env: { IBOTLAB_BACKEND: 'gpu' } })),
      /Unknown TensorFlow.js backend 'gpu' in IBOTLAB_BACKEND: use one of auto, tensorflow, webgpu, wasm, cpu/,
    );
    await assert.rejects(
      selectBackend({ backend: 'metal' as unknown as 'cpu' }, fakeHost()),
      /Unknown TensorFlow.js backend 'metal'/,
    );
    await assert.rejects(selectBackend({ threads: 0 }, fakeHost()), /threads must be a positive integer/);
    await assert.rejects(selectBackend({ threads: 1.5 }, fakeHost()), /threads must be a positive integer/);
    await assert.rejects(
      selectBackend({}, fakeHost({ env: { IBOTLAB_THREADS: 'two' } })),
      /IBOTLAB_THREADS must be a positive integer \(e\.g\. IBOTLAB_THREADS=2\), got 'two'/,
    );
  });
});

describe('repeated and concurrent initialisation', () => {
  it('initBackend twice returns the same info cheaply; backendInfo() is the last result', async () => {
    const a = await initBackend({ backend: 'wasm', quiet: true });
    const t0 = performance.now();
    const b = await initBackend({ backend: 'wasm', quiet: true });
    assert.ok(performance.now() - t0 < 50, 'second call does not re-initialise');
    assert.deepEqual(b, a);
    assert.deepEqual(backendInfo(), b);
    b.reasons.push('mutated');
    assert.notDeepEqual(backendInfo(), b, 'callers get copies');
  });

  it('concurrent calls are serialised and agree', async () => {
    const host = fakeHost();
    const [a, b] = await Promise.all([
      selectBackend({ quiet: true }, host),
      selectBackend({ quiet: true }, host),
    ]);
    assert.deepEqual(a, b);
  });

  it('a different thread count after wasm is initialised keeps the pool and says why', async () => {
    const host = fakeHost();
    const want = EXPECTED_THREADS === 1 ? 2 : 1;
    const info = await selectBackend({ backend: 'wasm', threads: want }, host);
    assert.equal(info.threads, EXPECTED_THREADS);
    assert.match(info.reasons.join('\n'), /already initialised with \d+ thread\(s\).*restart the process/);
    assert.equal(host.warnings.length, 1);
  });
});

describe('detection helpers', () => {
  it('tryLoad tells "not installed" from "installed but broken"', async () => {
    const real = tryLoad(nodeHost(), '@ibotlab/certainly-not-installed');
    assert.deepEqual(real.ok ? 'loaded' : real.missing, true);
    // A package whose own dependency (e.g. the native binding) is missing is broken, not absent.
    const broken = tryLoad({ load: () => { throw notFound('/x/tfjs_binding.node'); } }, TFJS_NODE);
    assert.equal(broken.ok ? 'loaded' : broken.missing, false);
    const throws = tryLoad({ load: () => { throw new Error('libtensorflow.so.2: cannot open shared object'); } }, TFJS_NODE);
    assert.ok(!throws.ok && !throws.missing && /libtensorflow/.test(throws.message));
    assert.equal(isResolvable(nodeHost(), TFJS_WASM), true);
    assert.equal(isResolvable(nodeHost(), '@ibotlab/certainly-not-installed'), false);
  });

  it('cudaGpuVisible honours CUDA_VISIBLE_DEVICES and the driver files', async () => {
    const gpus = () => ['0000:00:1e.0'];
    const none = () => {
      throw notFound('/proc/driver/nvidia/gpus');
    };
    assert.equal(cudaGpuVisible({}, gpus, () => false), true);
    assert.equal(cudaGpuVisible({ CUDA_VISIBLE_DEVICES: '' }, gpus, () => true), false);
    assert.equal(cudaGpuVisible({ CUDA_VISIBLE_DEVICES: '-1' }, gpus, () => true), false);
    assert.equal(cudaGpuVisible({ CUDA_VISIBLE_DEVICES: '0' }, none, (f) => f === '/dev/nvidia0'), true);
    assert.equal(cudaGpuVisible({}, none, () => false), false);
  });

  it('describeBackend gives one line per backend kind', async () => {
    const base = { reasons: [] as string[], simd: true, gpu: false };
    assert.equal(describeBackend({ ...base, name: 'wasm', package: TFJS_WASM, threads: 2 }), 'wasm (SIMD, 2 threads)');
    assert.equal(
      describeBackend({ ...base, name: 'wasm', package: TFJS_WASM, threads: 1, simd: false }),
      'wasm (no SIMD, 1 thread)',
    );
    assert.equal(
      describeBackend({ ...base, name: 'tensorflow', package: TFJS_NODE_GPU, threads: 2, gpu: true }),
      `tensorflow (${TFJS_NODE_GPU}, GPU)`,
    );
    assert.equal(describeBackend({ ...base, name: 'webgpu', package: TFJS_WEBGPU, threads: 1 }), 'webgpu (software adapter)');
    assert.equal(describeBackend({ ...base, name: 'cpu', package: '', threads: 1 }), 'cpu (plain JavaScript, 1 thread)');
  });
});

describe('measureMatMulPeak', () => {
  it('returns a positive GFLOP/s and leaks no tensors', async () => {
    await backToWasm();
    const before = tf.memory().numTensors;
    const g = await measureMatMulPeak(64, 3);
    assert.ok(Number.isFinite(g) && g > 0, String(g));
    assert.equal(tf.memory().numTensors, before);
    await assert.rejects(measureMatMulPeak(0), /size must be a positive integer/);
  });
});

/** Runs in a fresh Node process (so it can pick its own thread count) and prints one JSON line. */
const CHILD = `
const fs = require('fs');
const tf = require('@tensorflow/tfjs-core');
const { initBackend, measureMatMulPeak } = require(process.env.BACKEND_MODULE);
function taskTicks() {
  const ticks = new Map();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(tid, Number(f[11]) + Number(f[12]));
    } catch {}
  }
  return ticks;
}
(async () => {
  const info = await initBackend({ quiet: true });
  const M = 128, K = 256, N = 192;
  const a = new Float32Array(M * K).map((_, i) => Math.sin(i * 0.37));
  const b = new Float32Array(K * N).map((_, i) => Math.cos(i * 0.11));
  const c = tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N]));
  const s = tf.softmax(tf.mul(c, 0.1));
  const mm = Buffer.from((await c.data()).buffer).toString('base64');
  const sm = Buffer.from((await s.data()).buffer).toString('base64');
  // Which threads do the arithmetic of a matMul loop: with a real pool, not only the main one.
  let helperShare = null;
  if (fs.existsSync('/proc/self/task')) {
    const x = tf.randomUniform([512, 512], -1, 1, 'float32', 1);
    for (let i = 0; i < 5; i++) tf.matMul(x, x).dispose(); // JIT tiering and GC settle on V8's threads
    const t0 = taskTicks();
    for (let i = 0; i < 40; i++) tf.matMul(x, x).dispose();
    const t1 = taskTicks();
    let total = 0, helpers = 0;
    for (const [tid, t] of t1) {
      const d = t - (t0.get(tid) ?? 0);
      total += d;
      if (tid !== String(process.pid)) helpers += d;
    }
    helperShare = total > 0 ? helpers / total : null;
    x.dispose();
  }
  const gflops = await measureMatMulPeak(512, 15);
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  process.stdout.write(JSON.stringify({ info, reported: wasm.getThreadsCount(), mm, sm, helperShare, gflops }) + '\\n');
  // No process.exit: the parent checks that the process ends on its own.
})();
`;

interface ChildResult {
  info: BackendInfo;
  reported: number;
  mm: string;
  sm: string;
  helperShare: number | null;
  gflops: number;
}

function runChild(threads: number): Promise<ChildResult> {
  const root = path.resolve(__dirname, '..');
  // Compiled tests run dist/test → dist/src/backend; under tsx, execArgv carries its loader.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    IBOTLAB_BACKEND: 'wasm',
    IBOTLAB_THREADS: String(threads),
    BACKEND_MODULE: path.resolve(__dirname, '../src/backend'),
  };
  delete env.IBOTLAB_WEBGPU;
  const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...execArgv, '-e', CHILD],
      { cwd: root, env, timeout: 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`child (${threads} threads) failed or did not exit by itself: ${err.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as ChildResult);
      },
    );
  });
}

function floats(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

describe('multithreaded wasm in a fresh process', () => {
  it('runs on the requested threads, matches the single-threaded build bit for bit, and exits by itself', async (t) => {
    const one = await runChild(1);
    const many = await runChild(Math.max(2, EXPECTED_THREADS));
    assert.equal(one.info.threads, 1);
    assert.equal(one.reported, 1);
    assert.equal(many.info.threads, Math.max(2, EXPECTED_THREADS));
    assert.equal(many.reported, many.info.threads, 'getThreadsCount() agrees');
    assert.equal(many.info.simd, true);

    // Independent float64 reference for the matMul and the row softmax.
    const M = 128, K = 256, N = 192;
    const a = new Float32Array(M * K).map((_, i) => Math.sin(i * 0.37));
    const b = new Float32Array(K * N).map((_, i) => Math.cos(i * 0.11));
    const ref = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let k = 0; k < K; k++) {
        const aik = a[i * K + k];
        for (let j = 0; j < N; j++) ref[i * N + j] += aik * b[k * N + j];
      }
    const mm1 = floats(one.mm), mm2 = floats(many.mm);
    let maxErr = 0;
    for (let i = 0; i < M * N; i++) maxErr = Math.max(maxErr, Math.abs(mm1[i] - ref[i]));
    assert.ok(maxErr < 1e-3, `matMul vs float64 reference: ${maxErr}`);
    const sm1 = floats(one.sm);
    let smErr = 0;
    for (let i = 0; i < M; i++) {
      const row = Array.from(ref.subarray(i * N, (i + 1) * N), (v) => v * 0.1);
      const mx = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - mx), 0);
      for (let j = 0; j < N; j++) smErr = Math.max(smErr, Math.abs(sm1[i * N + j] - Math.exp(row[j] - mx) / z));
    }
    assert.ok(smErr < 1e-5, `softmax vs float64 reference: ${smErr}`);
    assert.deepEqual(mm2, mm1, 'matMul: threaded == single-threaded, bit for bit');
    assert.deepEqual(floats(many.sm), sm1, 'softmax: threaded == single-threaded, bit for bit');

    // Proof that the pool computes, robust to a busy machine: CPU time of non-main threads.
    if (one.helperShare !== null && many.helperShare !== null) {
      assert.ok(one.helperShare < 0.15, `1 thread: helper threads did ${one.helperShare} of the work`);
      assert.ok(many.helperShare > 0.3, `${many.info.threads} threads: helper threads did only ${many.helperShare}`);
    }
    t.diagnostic(
      `512x512 matMul: ${one.gflops.toFixed(1)} GFLOP/s on 1 thread, ${many.gflops.toFixed(1)} GFLOP/s on ` +
        `${many.info.threads} threads (timings depend on machine load); helper-thread CPU share ` +
        `${one.helperShare?.toFixed(2)} vs ${many.helperShare?.toFixed(2)}`,
    );
  });
});
