/**
 * Backend selection against an injectable `BackendHost`. The tfjs engine is process-global, so the
 * bookkeeping here (what was initialised, the last result) is module-level too.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendHost, tryLoad } from './host';
import { installHint, TFJS_CPU, TFJS_NODE, TFJS_NODE_GPU, TFJS_WASM, TFJS_WEBGPU } from './install';
import { BACKEND_NAMES, BackendInfo, BackendName, BackendOptions } from './types';
import { initWasm, MAX_WASM_THREADS } from './wasm-node';
import { initWebgpu } from './webgpu-node';

type Details = Omit<BackendInfo, 'reasons'>;
type Attempt = { ok: true; details: Details; notes: string[] } | { ok: false; reasons: string[]; package?: string };

interface Request {
  /** undefined = auto. */
  backend: BackendName | undefined;
  /** Where the forced backend came from, for error messages. */
  source: 'option' | 'IBOTLAB_BACKEND' | undefined;
  threads: number;
  /** The thread count asked for before capping at MAX_WASM_THREADS. */
  threadsAsked: number;
  /** Whether the thread count was asked for (option or env), rather than defaulted. */
  threadsExplicit: boolean;
  allowWebgpu: boolean;
  quiet: boolean;
}

/** Backends this process has initialised through us: re-selecting them is cheap. */
const initialised = new Map<BackendName, Details>();
let last: { info: BackendInfo; key: string; host: BackendHost } | undefined;
let chain: Promise<unknown> = Promise.resolve();

export function lastBackendInfo(): BackendInfo | undefined {
  return last ? copyInfo(last.info) : undefined;
}

/** `initBackend` with an explicit host. Calls are serialised: the tfjs engine has one current backend. */
export function selectBackend(opts: BackendOptions, host: BackendHost): Promise<BackendInfo> {
  const run = chain.then(() => select(opts, host));
  chain = run.catch(() => undefined);
  return run;
}

async function select(opts: BackendOptions, host: BackendHost): Promise<BackendInfo> {
  const req = parseRequest(opts, host);
  const key = `${req.backend ?? 'auto'}|${req.threads}|${req.allowWebgpu}`;
  if (last && last.key === key && last.host === host && tf.getBackend() === last.info.name) {
    return copyInfo(last.info);
  }

  const order: BackendName[] = req.backend ? [req.backend] : [...BACKEND_NAMES];
  const reasons: string[] = [];
  for (const name of order) {
    const attempt = await tryBackend(name, req, host);
    if (!attempt.ok) {
      reasons.push(...attempt.reasons);
      if (req.backend) throw unavailableError(name, req, attempt);
      continue;
    }
    reasons.push(...attempt.notes);
    const info: BackendInfo = { ...attempt.details, reasons };
    initialised.set(name, attempt.details);
    const changed = !last || last.info.name !== name || last.info.package !== info.package;
    last = { info, key, host };
    if (name === 'cpu') host.warn(cpuWarning(req, reasons));
    else if (changed && !req.quiet) host.warn(`ibotlab: TensorFlow.js backend: ${describeBackend(info)}`);
    return copyInfo(info);
  }
  // Unreachable in practice: cpu ships with ibotlab. Still say what to do.
  throw new Error(
    `No TensorFlow.js backend could be initialised: ${reasons.join('; ')}. ${installHint('wasm', tf.version_core)}`,
  );
}

/** One line, e.g. "wasm (SIMD, 2 threads)". */
export function describeBackend(info: BackendInfo): string {
  const threads = `${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  switch (info.name) {
    case 'tensorflow':
      return info.gpu ? `tensorflow (${info.package}, GPU)` : `tensorflow (${info.package}, ${threads})`;
    case 'webgpu': {
      const on = info.adapter ? `: ${info.adapter}` : '';
      return info.gpu ? `webgpu (GPU${on})` : `webgpu (software adapter${on})`;
    }
    case 'wasm':
      return `wasm (${info.simd ? 'SIMD' : 'no SIMD'}, ${threads})`;
    case 'cpu':
      return 'cpu (plain JavaScript, 1 thread)';
  }
}

function copyInfo(info: BackendInfo): BackendInfo {
  return { ...info, reasons: [...info.reasons] };
}

function parseRequest(opts: BackendOptions, host: BackendHost): Request {
  let backend: BackendName | undefined;
  let source: Request['source'];
  if (opts.backend !== undefined && opts.backend !== 'auto') {
    backend = checkName(opts.backend, 'the backend option');
    source = 'option';
  } else {
    const fromEnv = host.env.IBOTLAB_BACKEND?.trim().toLowerCase();
    if (fromEnv && fromEnv !== 'auto') {
      backend = checkName(fromEnv, 'IBOTLAB_BACKEND');
      source = 'IBOTLAB_BACKEND';
    }
  }

  let threads = host.cpuCount;
  let threadsExplicit = false;
  if (opts.threads !== undefined) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1) {
      throw new Error(`threads must be a positive integer (e.g. { threads: 2 }), got ${String(opts.threads)}`);
    }
    threads = opts.threads;
    threadsExplicit = true;
  } else if (host.env.IBOTLAB_THREADS !== undefined && host.env.IBOTLAB_THREADS.trim() !== '') {
    const raw = host.env.IBOTLAB_THREADS.trim();
    if (!/^\d+$/.test(raw) || Number(raw) < 1) {
      throw new Error(`IBOTLAB_THREADS must be a positive integer (e.g. IBOTLAB_THREADS=2), got '${raw}'`);
    }
    threads = Number(raw);
    threadsExplicit = true;
  }
  const threadsAsked = threads;
  threads = Math.max(1, Math.min(threads, MAX_WASM_THREADS));

  const envWebgpu = (host.env.IBOTLAB_WEBGPU ?? '').trim().toLowerCase();
  const allowWebgpu = opts.allowWebgpu ?? !(envWebgpu === '0' || envWebgpu === 'false');
  return { backend, source, threads, threadsAsked, threadsExplicit, allowWebgpu, quiet: opts.quiet === true };
}

function checkName(name: string, where: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new Error(`Unknown TensorFlow.js backend '${name}' in ${where}: use one of auto, ${BACKEND_NAMES.join(', ')}`);
}

function tryBackend(name: BackendName, req: Request, host: BackendHost): Promise<Attempt> {
  switch (name) {
    case 'tensorflow':
      return tryTensorflow(host);
    case 'webgpu':
      return tryWebgpu(req, host);
    case 'wasm':
      return tryWasm(req, host);
    case 'cpu':
      return tryCpu(host);
  }
}

/** Load-or-explain for one package: a reason string when it cannot be used. */
function loadFailure(host: BackendHost, name: BackendName, pkg: string): string | undefined {
  const r = tryLoad(host, pkg);
  if (r.ok) return undefined;
  return r.missing ? `${name}: ${pkg} is not installed` : `${name}: ${pkg} is installed but failed to load (${r.message})`;
}

async function tryTensorflow(host: BackendHost): Promise<Attempt> {
  const reasons: string[] = [];
  const packages = [TFJS_NODE];
  if (host.cudaGpuVisible()) packages.unshift(TFJS_NODE_GPU);
  else reasons.push(`tensorflow: ${TFJS_NODE_GPU} skipped (no CUDA GPU visible)`);
  for (const pkg of packages) {
    const failure = loadFailure(host, 'tensorflow', pkg);
    if (failure) {
      reasons.push(failure);
      continue;
    }
    const details: Details = {
      name: 'tensorflow',
      package: pkg,
      threads: host.cpuCount,
      simd: true,
      gpu: pkg === TFJS_NODE_GPU,
    };
    const known = initialised.get('tensorflow');
    if (known && known.package === pkg && tf.findBackend('tensorflow') !== null && (await tf.setBackend('tensorflow'))) {
      return { ok: true, details: known, notes: reasons };
    }
    if (tf.findBackendFactory('tensorflow') === null) {
      reasons.push(
        `tensorflow: ${pkg} loaded but registered its backend with another copy of @tensorflow/tfjs-core ` +
          `(ibotlab uses ${tf.version_core}; install ${pkg}@${tf.version_core})`,
      );
      continue;
    }
    if (!(await tf.setBackend('tensorflow'))) {
      reasons.push(`tensorflow: ${pkg} loaded but its backend failed to initialise`);
      continue;
    }
    return { ok: true, details, notes: reasons };
  }
  // The install hint leads with the package that suits this machine best.
  return { ok: false, reasons, package: packages[0] };
}

async function tryWebgpu(req: Request, host: BackendHost): Promise<Attempt> {
  const forced = req.backend === 'webgpu';
  if (!forced && !req.allowWebgpu) {
    return { ok: false, reasons: ['webgpu: turned off (allowWebgpu: false or IBOTLAB_WEBGPU=0)'] };
  }
  const known = initialised.get('webgpu');
  if (known && tf.findBackend('webgpu') !== null && (forced || known.gpu) && (await tf.setBackend('webgpu'))) {
    return { ok: true, details: known, notes: [] };
  }
  const r = await initWebgpu(host, forced);
  if (!r.ok) return { ok: false, reasons: [`webgpu: ${r.reason}`], package: TFJS_WEBGPU };
  const notes = r.gpu ? [] : [`webgpu: adapter '${r.adapter}' is a software rasteriser, slower than wasm`];
  return { ok: true, details: { name: 'webgpu', package: TFJS_WEBGPU, threads: 1, simd: false, gpu: r.gpu, adapter: r.adapter }, notes };
}

async function tryWasm(req: Request, host: BackendHost): Promise<Attempt> {
  const failure = loadFailure(host, 'wasm', TFJS_WASM);
  if (failure) return { ok: false, reasons: [failure], package: TFJS_WASM };
  const notes: string[] = [];
  if (req.threadsExplicit && req.threadsAsked > req.threads) {
    notes.push(`wasm: ${req.threadsAsked} threads asked for, capped at ${MAX_WASM_THREADS} (the build's pthread pool)`);
  }
  const known = initialised.get('wasm');
  if (known && tf.findBackend('wasm') !== null) {
    if (req.threadsExplicit && known.threads !== req.threads) {
      const note =
        `wasm: already initialised with ${known.threads} thread(s) in this process; the thread count can ` +
        'only be chosen before the first wasm initialisation (restart the process or notebook kernel)';
      notes.push(note);
      if (!req.quiet) host.warn(`ibotlab: ${note}`);
    }
    if (await tf.setBackend('wasm')) return { ok: true, details: known, notes };
  }
  try {
    const setup = await initWasm(host, req.threads);
    notes.push(...setup.notes.map((n) => `wasm: ${n}`));
    const details: Details = { name: 'wasm', package: TFJS_WASM, threads: setup.threads, simd: setup.simd, gpu: false };
    return { ok: true, details, notes };
  } catch (err) {
    return { ok: false, reasons: [`wasm: ${(err as Error).message}`], package: TFJS_WASM };
  }
}

async function tryCpu(host: BackendHost): Promise<Attempt> {
  const failure = loadFailure(host, 'cpu', TFJS_CPU);
  if (failure) return { ok: false, reasons: [failure], package: TFJS_CPU };
  if (!(await tf.setBackend('cpu'))) return { ok: false, reasons: ['cpu: backend failed to initialise'], package: TFJS_CPU };
  return { ok: true, details: { name: 'cpu', package: TFJS_CPU, threads: 1, simd: false, gpu: false }, notes: [] };
}

function unavailableError(name: BackendName, req: Request, attempt: Extract<Attempt, { ok: false }>): Error {
  const why = req.source === 'IBOTLAB_BACKEND' ? ` (requested by IBOTLAB_BACKEND=${name})` : '';
  const fallback = name === 'tensorflow' || name === 'webgpu' ? " Or use backend 'auto' to fall back to wasm." : '';
  return new Error(
    `TensorFlow.js backend '${name}' is not available${why}: ${attempt.reasons.join('; ')}. ` +
      `${installHint(name, tf.version_core, attempt.package)}${fallback}`,
  );
}

function cpuWarning(req: Request, reasons: string[]): string {
  const why = req.backend === 'cpu' ? 'it was requested explicitly' : `nothing faster loaded (${reasons.join('; ')})`;
  return (
    "ibotlab: WARNING: TensorFlow.js is running on the plain-JavaScript 'cpu' backend because " +
    `${why}. It is about 40-100x slower than wasm (~0.5 vs 20-40 GFLOP/s); training will crawl. ` +
    `Use backend 'wasm' (${TFJS_WASM}) unless you are debugging.`
  );
}
