/**
 * Downloading known pretrained weights into a local cache:
 *
 *   const { file, spec } = await fetchWeights('vit_small_patch16_224.dino');
 *   const { model } = await loadPretrainedViT(file, { heads: spec.heads });
 *
 * (the entry behind `ibotlab weights fetch NAME`). A download goes to a
 * temporary file next to its final name and is renamed only once complete and
 * checked, so an interrupted or corrupt download never looks like a cached
 * file. Files whose SHA-256 is not recorded in the registry are trusted on
 * first use: their hash is written next to them and checked on every later use.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/normalize';
import { makeDirs } from '../util/fs';

export interface WeightsSpec {
  /** Registry name, also the cached file's name (`<name>.safetensors`). */
  name: string;
  url: string;
  /** Expected SHA-256 (hex) of the file; without it the first download's hash is recorded and enforced afterwards. */
  sha256?: string;
  /** Attention heads (not recoverable from the weights). */
  heads?: number;
  /** Normalisation the model was trained with. */
  mean?: number[];
  std?: number[];
  /** Size in bytes, for progress when the server sends no length. */
  bytes?: number;
  license?: string;
  description?: string;
}

/**
 * Known weights. timm's re-exports of the official DINO backbones
 * (Apache-2.0, https://github.com/facebookresearch/dino), already with
 * timm names and no head. Their SHA-256 could not be checked against a
 * download from where this was written (no network), so none is recorded
 * here: the first download's hash is kept next to the file and every later
 * use is checked against it.
 */
export const KNOWN_WEIGHTS: Readonly<Record<string, WeightsSpec>> = {
  'vit_small_patch16_224.dino': {
    name: 'vit_small_patch16_224.dino',
    url: 'https://huggingface.co/timm/vit_small_patch16_224.dino/resolve/main/model.safetensors',
    heads: 6,
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
    bytes: 86.7e6,
    license: 'Apache-2.0',
    description: 'DINO ViT-S/16 (21.7M parameters), ImageNet-1k self-supervised, 224 px; via timm',
  },
  'vit_base_patch16_224.dino': {
    name: 'vit_base_patch16_224.dino',
    url: 'https://huggingface.co/timm/vit_base_patch16_224.dino/resolve/main/model.safetensors',
    heads: 12,
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
    bytes: 343e6,
    license: 'Apache-2.0',
    description: 'DINO ViT-B/16 (85.8M parameters), ImageNet-1k self-supervised, 224 px; via timm',
  },
};

export interface FetchProgress {
  name: string;
  /** Bytes received so far. */
  received: number;
  /** Total bytes when known (Content-Length, else the registry's size), else undefined. */
  total?: number;
}

export interface FetchWeightsOptions {
  /** Folder for cached files. Default `$IBOTLAB_CACHE/weights`, else `~/.cache/ibotlab/weights` (XDG_CACHE_HOME respected). */
  cacheDir?: string;
  /** Called after every received chunk (and once at the end); throttle it on the caller's side if needed. */
  onProgress?: (p: FetchProgress) => void;
  /** Download again even if a verified copy is cached. Default false. */
  force?: boolean;
  /** Re-hash a cached file before returning it (a few seconds for 350 MB). Default true. */
  verifyCached?: boolean;
  signal?: AbortSignal;
}

export interface FetchWeightsResult {
  /** The cached `.safetensors` file. */
  file: string;
  spec: WeightsSpec;
  sha256: string;
  /** False when the file came from the cache. */
  downloaded: boolean;
  /**
   * 'registry': matched the registry's hash; 'recorded': matched the hash
   * recorded at first download; 'first-use': just downloaded, hash recorded;
   * 'unchecked': cached and `verifyCached: false`.
   */
  verified: 'registry' | 'recorded' | 'first-use' | 'unchecked';
}

/** The default cache folder for weights (see `FetchWeightsOptions.cacheDir`). */
export function defaultWeightsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IBOTLAB_CACHE) return path.join(env.IBOTLAB_CACHE, 'weights');
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ibotlab', 'weights');
}

/** Where `fetchWeights` keeps a spec's file (whether or not it is there yet). */
export function cachedWeightsPath(spec: WeightsSpec, cacheDir = defaultWeightsCacheDir()): string {
  return path.join(cacheDir, `${safeName(spec.name)}.safetensors`);
}

/**
 * Make sure the weights `nameOrSpec` (a `KNOWN_WEIGHTS` name, or a spec of
 * one's own) are in the cache, downloading them with Node's fetch if needed,
 * and return the file. Throws one-line errors for unknown names, HTTP errors,
 * truncated downloads and hash mismatches; nothing half-written is left.
 */
export async function fetchWeights(nameOrSpec: string | WeightsSpec, opts: FetchWeightsOptions = {}): Promise<FetchWeightsResult> {
  const spec = resolveSpec(nameOrSpec);
  const cacheDir = opts.cacheDir ?? defaultWeightsCacheDir();
  const file = cachedWeightsPath(spec, cacheDir);
  const recordFile = `${file}.sha256`;
  const expected = spec.sha256?.toLowerCase();

  if (!opts.force && fs.existsSync(file)) {
    const recorded = fs.existsSync(recordFile) ? fs.readFileSync(recordFile, 'utf8').trim().split(/\s+/)[0].toLowerCase() : undefined;
    const want = expected ?? recorded;
    if (opts.verifyCached === false) return { file, spec, sha256: want ?? '', downloaded: false, verified: 'unchecked' };
    const have = await sha256File(file);
    if (want === undefined) {
      // Cached by hand or by an older version: adopt it, as a first download would.
      fs.writeFileSync(recordFile, `${have}  ${path.basename(file)}\n`);
      return { file, spec, sha256: have, downloaded: false, verified: 'first-use' };
    }
    if (have !== want) {
      throw new Error(
        `fetchWeights('${spec.name}'): the cached ${file} has SHA-256 ${have} but ${expected ? 'the registry says' : 'its first download had'} ${want}; ` +
          'it was modified or is corrupt: delete it, or fetch again with force: true (--force).',
      );
    }
    return { file, spec, sha256: have, downloaded: false, verified: expected ? 'registry' : 'recorded' };
  }

  makeDirs(cacheDir);
  const tmp = `${file}.part-${process.pid}-${Date.now()}`;
  try {
    const sha256 = await download(spec, tmp, opts);
    if (expected && sha256 !== expected) {
      throw new Error(
        `fetchWeights('${spec.name}'): SHA-256 mismatch: got ${sha256}, expected ${expected}; the download is corrupt or the file changed upstream. Nothing was cached; try again.`,
      );
    }
    fs.renameSync(tmp, file);
    if (expected) fs.rmSync(recordFile, { force: true });
    else fs.writeFileSync(recordFile, `${sha256}  ${path.basename(file)}\n`);
    return { file, spec, sha256, downloaded: true, verified: expected ? 'registry' : 'first-use' };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function resolveSpec(nameOrSpec: string | WeightsSpec): WeightsSpec {
  if (typeof nameOrSpec !== 'string') {
    if (!nameOrSpec.name || !nameOrSpec.url) throw new Error('fetchWeights: a spec needs a name and a url');
    return nameOrSpec;
  }
  const spec = KNOWN_WEIGHTS[nameOrSpec];
  if (!spec) {
    throw new Error(`fetchWeights: unknown weights '${nameOrSpec}'; known: ${Object.keys(KNOWN_WEIGHTS).join(', ')} (or pass a { name, url } spec).`);
  }
  return spec;
}

async function download(spec: WeightsSpec, tmp: string, opts: FetchWeightsOptions): Promise<string> {
  const where = `fetchWeights('${spec.name}')`;
  let res: Response;
  try {
    res = await fetch(spec.url, { redirect: 'follow', signal: opts.signal });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(
      `${where}: cannot reach ${spec.url} (${cause?.code ?? cause?.message ?? (e as Error).message}); check the network, or download the file by hand and load it with --weights FILE.`,
    );
  }
  if (!res.ok || !res.body) {
    throw new Error(`${where}: HTTP ${res.status} ${res.statusText} from ${spec.url}; check the name and URL, or download the file by hand and load it with --weights FILE.`);
  }
  const lengthHeader = res.headers.get('content-length');
  const announced = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  const total = announced ?? spec.bytes;
  const hash = createHash('sha256');
  const fh = await fs.promises.open(tmp, 'w');
  let received = 0;
  try {
    const reader = res.body.getReader();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new Error(`${where}: the download broke off after ${received} bytes (${(e as Error).message}); try again.`);
      }
      if (chunk.done) break;
      hash.update(chunk.value);
      await fh.write(chunk.value);
      received += chunk.value.byteLength;
      opts.onProgress?.({ name: spec.name, received, total });
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (announced !== undefined && received !== announced) {
    throw new Error(`${where}: the download is truncated: ${received} of ${announced} bytes; try again.`);
  }
  opts.onProgress?.({ name: spec.name, received, total: total ?? received });
  return hash.digest('hex');
}

function safeName(name: string): string {
  return name.replace(/[\\/:*?"<>|]+/g, '--');
}
