/**
 * Reading and writing `.safetensors` (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian header length, a JSON header mapping each name to
 * `{dtype, shape, data_offsets}`, then the raw little-endian bytes.
 *
 * The format is small enough that a dependency would add more than it saves;
 * what matters is strict validation so a truncated or foreign file fails with
 * a message that names it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeDirs } from '../util/fs';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One tensor as plain data: float tensors decode to Float32Array, integer ones to Int32Array. */
export interface NamedArray {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

export type TensorMap = Record<string, NamedArray>;

const BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function decode(dtype: SafetensorsDtype, bytes: Buffer, count: number): Float32Array | Int32Array {
  // Copy into an aligned buffer: the data section need not be 4-byte aligned in the file.
  const ab = new ArrayBuffer(bytes.length);
  new Uint8Array(ab).set(bytes);
  const dv = new DataView(ab);
  switch (dtype) {
    case 'F32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(count);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'I64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      return out;
    }
    case 'I32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'I16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      return out;
    }
    case 'I8': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt8(i);
      return out;
    }
    case 'U8':
    case 'BOOL': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getUint8(i);
      return out;
    }
  }
}

/** Parse safetensors bytes. `source` names the file in error messages. */
export function parseSafetensors(buf: Buffer | Uint8Array, source = '<buffer>'): { tensors: TensorMap; metadata: Record<string, string> } {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const fail = (what: string): never => {
    throw new Error(`${source}: not a valid .safetensors file (${what}). Re-export it with safetensors.torch.save_file or ibotlab's saveSafetensors.`);
  };
  if (b.length < 8) fail(`only ${b.length} bytes, the 8-byte header length is missing`);
  const headerLen = Number(b.readBigUInt64LE(0));
  if (headerLen <= 0 || 8 + headerLen > b.length) fail(`header length ${headerLen} does not fit in ${b.length} bytes; the file is truncated or of another format`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(b.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    return fail(`its JSON header does not parse: ${(e as Error).message}`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = b.length - dataStart;
  const tensors: TensorMap = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!e || typeof e.dtype !== 'string' || !(e.dtype in BYTES)) fail(`tensor '${name}' has unsupported dtype ${String(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) fail(`tensor '${name}' lacks shape or data_offsets`);
    const dtype = e.dtype as SafetensorsDtype;
    const shape = e.shape as number[];
    const [start, end] = e.data_offsets as [number, number];
    const count = shape.reduce((a, c) => a * c, 1);
    if (end - start !== count * BYTES[dtype]) fail(`tensor '${name}' shape [${shape}] ${dtype} needs ${count * BYTES[dtype]} bytes but data_offsets span ${end - start}`);
    if (start < 0 || end > dataLen) fail(`tensor '${name}' data [${start}, ${end}) runs past the end of the data (${dataLen} bytes); the file is truncated`);
    const data = decode(dtype, b.subarray(dataStart + start, dataStart + end), count);
    tensors[name] = { shape, dtype: data instanceof Float32Array ? 'float32' : 'int32', data };
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): { tensors: TensorMap; metadata: Record<string, string> } {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file. Check the path (relative paths start at ${process.cwd()}).`);
  return parseSafetensors(fs.readFileSync(file), file);
}

/** Serialise tensors (float32 → F32, int32 → I32), names sorted as the reference writer does. */
export function serializeSafetensors(tensors: TensorMap, metadata: Record<string, string> = {}): Buffer {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const count = t.shape.reduce((a, c) => a * c, 1);
    if (count !== t.data.length) throw new Error(`tensor '${name}': shape [${t.shape}] holds ${count} values but data has ${t.data.length}`);
    header[name] = { dtype: t.dtype === 'float32' ? 'F32' : 'I32', shape: t.shape, data_offsets: [offset, offset + count * 4] };
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
  const pad = (8 - ((8 + Buffer.byteLength(json)) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name].data;
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(out, pos);
    pos += d.byteLength;
  }
  return out;
}

/** Write atomically: a temp file in the same folder, then rename, so a killed run never leaves half a file. */
export function writeSafetensors(file: string, tensors: TensorMap, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}

export function writeFileAtomic(file: string, data: Buffer | string): void {
  makeDirs(path.dirname(path.resolve(file)));
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
