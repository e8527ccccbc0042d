import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setup } from './helpers';
import { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors } from '../src/io/safetensors';
import { VisionTransformer, vitConfig } from '../src/model/vit';

before(setup);

/** A file written byte by byte as the format specifies, independent of the writer under test. */
function handMade(): Buffer {
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
    b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] },
    i: { dtype: 'I64', shape: [1], data_offsets: [6, 14] },
  });
  const data = Buffer.alloc(14);
  data.writeUInt16LE(0x3c00, 0); // 1.0
  data.writeUInt16LE(0xc000, 2); // −2.0
  data.writeUInt16LE(0x3f80, 4); // 1.0 in bfloat16
  data.writeBigInt64LE(-7n, 6);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  return Buffer.concat([len, Buffer.from(header), data]);
}

describe('.safetensors', () => {
  it('decodes F16, BF16 and I64 written by hand', async () => {
    const { tensors, metadata } = parseSafetensors(handMade());
    assert.deepEqual(Array.from(tensors.h.data), [1, -2]);
    assert.deepEqual(Array.from(tensors.b.data), [1]);
    assert.deepEqual(Array.from(tensors.i.data), [-7]);
    assert.equal(tensors.i.dtype, 'int32');
    assert.equal(metadata.format, 'pt');
  });

  it('round-trips float32 and int32 tensors with metadata, 8-byte aligned data', async () => {
    const t = { w: { shape: [2, 2], dtype: 'float32' as const, data: Float32Array.from([1.5, -2, 3.25, 1e-8]) }, n: { shape: [3], dtype: 'int32' as const, data: Int32Array.from([1, -2, 3]) } };
    const buf = serializeSafetensors(t, { note: 'x' });
    assert.equal((8 + Number(buf.readBigUInt64LE(0))) % 8, 0);
    const back = parseSafetensors(buf);
    assert.deepEqual(back.tensors.w.data, t.w.data);
    assert.deepEqual(back.tensors.n.data, t.n.data);
    assert.equal(back.metadata.note, 'x');
  });

  it('truncated or foreign files fail with a message naming the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-st-'));
    const good = handMade();
    fs.writeFileSync(path.join(dir, 'cut.safetensors'), good.subarray(0, good.length - 3));
    assert.throws(() => readSafetensors(path.join(dir, 'cut.safetensors')), /cut\.safetensors.*truncated/);
    fs.writeFileSync(path.join(dir, 'png.safetensors'), Buffer.from('\x89PNG\r\n\x1a\n0000000000'));
    assert.throws(() => readSafetensors(path.join(dir, 'png.safetensors')), /png\.safetensors: not a valid \.safetensors/);
    assert.throws(() => readSafetensors(path.join(dir, 'missing.safetensors')), /no such file/);
  });

  it('ViT weights export with timm names and layouts and load back exactly; a wrong-size model is refused clearly', async () => {
    const a = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 32, depth: 1, numHeads: 2 }), 1);
    const b = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 32, depth: 1, numHeads: 2 }), 2);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-vit-')), 'vit.safetensors');
    writeSafetensors(file, await a.params.toTorch());
    const { tensors } = readSafetensors(file);
    assert.deepEqual(tensors['patch_embed.proj.weight'].shape, [32, 1, 4, 4]);
    assert.deepEqual(tensors['blocks.0.attn.qkv.weight'].shape, [96, 32]);
    assert.deepEqual(tensors['pos_embed'].shape, [1, 50, 32]);
    b.params.loadTorch(tensors, { strict: true });
    for (const p of a.params.params) assert.deepEqual(b.params.get(p.name).dataSync(), p.variable.dataSync(), p.name);
    const c = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 64, depth: 1, numHeads: 2 }));
    assert.throws(() => c.params.loadTorch(tensors, { source: 'vit.safetensors' }), /vit\.safetensors: 'cls_token' has shape \[1,1,32\] but this model expects \[1,1,64\]/);
    [a, b, c].forEach((m) => m.dispose());
  });
});
