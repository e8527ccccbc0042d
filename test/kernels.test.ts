/**
 * Our wasm SIMD kernels (src/kernels) against naive JavaScript references
 * computed in float64, on random shapes including odd sizes, every transpose
 * variant, batch 1 and many, and the split-across-threads paths.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { erf, fdDirectional, setup } from './helpers';
import {
  fusedAdamW,
  fusedEma,
  fusedAttention,
  fusedDenseGelu,
  fusedAttentionGrad,
  fusedAttentionStacked,
  fusedAttentionStackedGrad,
  fusedGelu,
  fusedGeluGrad,
  fusedLayerNorm,
  fusedLayerNormGrad,
  gemmScratchBytes,
  instantiateKernels,
  kernelsFor,
  registerWasmKernels,
  relaxedSimd,
  setParallelThresholds,
  simplifyPermutation,
  splitRange,
  wasmKernelsRegistered,
} from '../src/kernels';
import type { SimdChoice, WasmBackendLike } from '../src/kernels';
import { gelu, linear, linearGelu } from '../src/model/layers';
import { Rng } from '../src/util/rng';

before(async () => {
  await setup();
  if (tf.getBackend() !== 'wasm') throw new Error('kernel tests need the wasm backend');
  registerWasmKernels();
});
after(() => {
  setParallelThresholds();
  registerWasmKernels();
});

const rng = new Rng(1234);
function randArray(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let err = 0;
  let norm = 1e-30;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    norm = Math.max(norm, Math.abs(want[i]));
  }
  return err / norm;
}

/** C[i] = op(A[i])·op(B[i]) in float64; batch 1 operands broadcast. */
function refBmm(a: Float32Array, b: Float32Array, bA: number, bB: number, M: number, N: number, K: number, tA: boolean, tB: boolean): Float64Array {
  const batch = Math.max(bA, bB);
  const c = new Float64Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    const ao = bA === 1 ? 0 : i * M * K;
    const bo = bB === 1 ? 0 : i * K * N;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ao + (tA ? k * M + m : m * K + k)] * b[bo + (tB ? n * K + k : k * N + n)];
        c[i * M * N + m * N + n] = s;
      }
  }
  return c;
}

const Phi = (x: number): number => 0.5 * (1 + erf(x / Math.SQRT2));
const phi = (x: number): number => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

describe('wasm kernels', () => {
  it('are registered on the wasm backend', async () => {
    assert.ok(wasmKernelsRegistered());
  });

  it('splitRange covers [0, n) in aligned, ordered pieces', async () => {
    for (const [n, parts, align] of [[10, 3, 1], [50, 2, 4], [3, 4, 4], [1, 2, 1], [1000, 7, 16]]) {
      const r = splitRange(n, parts, align);
      assert.equal(r[0][0], 0);
      assert.equal(r[r.length - 1][1], n);
      for (let i = 0; i < r.length; i++) {
        assert.ok(r[i][1] > r[i][0]);
        if (i > 0) assert.equal(r[i][0], r[i - 1][1]);
        if (i < r.length - 1) assert.equal(r[i][1] % align, 0);
      }
      assert.ok(r.length <= parts);
    }
  });

  for (const split of [false, true]) {
    it(`batched matMul: all transpose variants, odd sizes, batch 1 and many, broadcasting${split ? ' (split across threads)' : ''}`, async () => {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      const shapes: Array<[number, number, number, number, number, number]> = [
        // batchA, batchB, M, N, K  (+ unused)
        [1, 1, 1, 1, 1, 0],
        [3, 3, 5, 7, 9, 0],
        [2, 2, 50, 50, 32, 0],
        [7, 7, 10, 10, 32, 0],
        [1, 1, 13, 17, 300, 0], // two K chunks
        [1, 1, 33, 9, 513, 0], // three K chunks, ragged everything
        [4, 1, 6, 11, 5, 0], // b broadcast
        [1, 5, 3, 4, 6, 0], // a broadcast
        [1, 1, 64, 40, 70, 0],
        [1, 1, 20, 24, 700, 0], // long K, small M·N: split across threads by K into summed partials (weight gradients)
      ];
      for (const [bA, bB, M, N, K] of shapes) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            const a = randArray(bA * M * K);
            const b = randArray(bB * K * N);
            const want = refBmm(a, b, bA, bB, M, N, K, tA, tB);
            const got = tf.tidy(() => {
              const at = tf.tensor3d(a, tA ? [bA, K, M] : [bA, M, K]);
              const bt = tf.tensor3d(b, tB ? [bB, N, K] : [bB, K, N]);
              return tf.matMul(at, bt, tA, tB).dataSync();
            });
            const e = maxRelErr(got, want);
            assert.ok(e < 2e-6, `[${bA},${bB}] M${M} N${N} K${K} tA=${tA} tB=${tB}: rel err ${e}`);
          }
        }
      }
      // 2-D with flags (the dense-layer weight gradient xᵀ·dy) and rank-4 batch dims.
      const x = randArray(37 * 21);
      const dy = randArray(37 * 19);
      const got = tf.tidy(() => tf.matMul(tf.tensor2d(x, [37, 21]), tf.tensor2d(dy, [37, 19]), true, false).dataSync());
      assert.ok(maxRelErr(got, refBmm(x, dy, 1, 1, 21, 19, 37, true, false)) < 2e-6);
      const a4 = randArray(2 * 3 * 4 * 5);
      const b4 = randArray(2 * 3 * 5 * 6);
      const got4 = tf.tidy(() => {
        const r = tf.matMul(tf.tensor4d(a4, [2, 3, 4, 5]), tf.tensor4d(b4, [2, 3, 5, 6]));
        assert.deepEqual(r.shape, [2, 3, 4, 6]);
        return r.dataSync();
      });
      assert.ok(maxRelErr(got4, refBmm(a4, b4, 6, 6, 4, 6, 5, false, false)) < 2e-6);
      setParallelThresholds();
    });
  }

  it('transpose: 2-D, batched, head split [0,2,1,3], int32, and fallbacks match an index-permuting reference', async () => {
    setParallelThresholds(0, 0);
    const cases: Array<[number[], number[]]> = [
      [[37, 53], [1, 0]],
      [[4, 4], [1, 0]],
      [[1, 9], [1, 0]],
      [[6, 37, 53], [0, 2, 1]],
      [[3, 5, 4, 7], [0, 2, 1, 3]],
      [[2, 50, 4, 32], [0, 2, 1, 3]],
      [[3, 1, 5, 2], [0, 2, 1, 3]], // unit axes dropped
      [[2, 3, 4], [2, 0, 1]], // stock fallback
      [[2, 3, 4, 5], [3, 2, 1, 0]], // stock fallback
    ];
    for (const [shape, perm] of cases) {
      const n = shape.reduce((p, v) => p * v, 1);
      const x = randArray(n);
      const outShape = perm.map((p) => shape[p]);
      const inStr = shape.map((_, i) => shape.slice(i + 1).reduce((p, v) => p * v, 1));
      const want = new Float32Array(n);
      const idx = new Array<number>(shape.length).fill(0);
      for (let o = 0; o < n; o++) {
        let rem = o;
        for (let j = outShape.length - 1; j >= 0; j--) {
          idx[j] = rem % outShape[j];
          rem = Math.floor(rem / outShape[j]);
        }
        let src = 0;
        for (let j = 0; j < perm.length; j++) src += idx[j] * inStr[perm[j]];
        want[o] = x[src];
      }
      const got = tf.tidy(() => tf.transpose(tf.tensor(x, shape), perm).dataSync());
      assert.deepEqual(Array.from(got), Array.from(want), `shape ${shape} perm ${perm}`);
      const gotInt = tf.tidy(() => tf.transpose(tf.tensor(Int32Array.from(x, (v) => Math.round(v * 100) + 0), shape, 'int32'), perm).dataSync());
      assert.deepEqual(Array.from(gotInt), Array.from(want, (v) => Math.round(v * 100) + 0), `int32 shape ${shape} perm ${perm}`);
    }
    setParallelThresholds();
  });

  it('slice, split and unstack copy from the heap: every rank, contiguous or strided, int32 and bool, against an index reference', async () => {
    const cases: Array<[number[], number[], number[]]> = [
      [[1000], [17], [500]],
      [[7, 9], [2, 0], [3, 9]], // whole rows: one run
      [[7, 9], [1, 3], [4, 5]], // strided
      [[4, 6, 5], [1, 2, 0], [2, 3, 5]],
      [[4, 6, 5], [0, 0, 1], [4, 6, 3]],
      [[3, 5, 4, 7], [1, 1, 1, 2], [2, 3, 2, 4]],
      [[2, 3, 4, 5, 6], [1, 0, 2, 1, 3], [1, 3, 2, 3, 3]],
      [[5, 1, 3], [2, 0, 0], [0, 1, 3]], // empty
    ];
    for (const [shape, begin, size] of cases) {
      const n = shape.reduce((p, v) => p * v, 1);
      const x = randArray(n);
      const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, v) => p * v, 1));
      const m = size.reduce((p, v) => p * v, 1);
      const want = new Float32Array(m);
      const idx = new Array<number>(shape.length).fill(0);
      for (let o = 0; o < m; o++) {
        let rem = o;
        for (let j = size.length - 1; j >= 0; j--) {
          idx[j] = rem % size[j];
          rem = Math.floor(rem / size[j]);
        }
        want[o] = x[idx.reduce((acc, v, j) => acc + (v + begin[j]) * strides[j], 0)];
      }
      const got = tf.tidy(() => tf.slice(tf.tensor(x, shape), begin, size));
      assert.deepEqual(got.shape, size);
      assert.deepEqual(Array.from(got.dataSync()), Array.from(want), `slice ${shape} from ${begin} size ${size}`);
      got.dispose();
      const gotInt = tf.tidy(() => tf.slice(tf.tensor(Int32Array.from(x, (v) => Math.round(v * 1000)), shape, 'int32'), begin, size).dataSync());
      assert.deepEqual(Array.from(gotInt), Array.from(want, (v) => Math.round(v * 1000)));
    }
    const b = tf.tidy(() => tf.slice(tf.tensor([true, false, true, true], [4], 'bool'), 1, 2).dataSync());
    assert.deepEqual(Array.from(b), [0, 1]);
    // split and unstack give the same pieces as slices, and free nothing they should keep.
    const before = tf.memory().numTensors;
    const flat = tf.tensor1d(randArray(23));
    const parts = tf.split(flat, [5, 0, 11, 7]);
    assert.deepEqual(parts.map((q) => q.shape[0]), [5, 0, 11, 7]);
    assert.deepEqual(Array.from(parts[2].dataSync()), Array.from(flat.dataSync().slice(5, 16)));
    const m3 = tf.tensor(randArray(4 * 3 * 2), [4, 3, 2]);
    const rows = tf.unstack(m3, 1);
    assert.deepEqual(rows.map((r) => r.shape), [[4, 2], [4, 2], [4, 2]]);
    assert.deepEqual(Array.from(rows[1].dataSync()), Array.from(tf.tidy(() => tf.slice(m3, [0, 1, 0], [4, 1, 2]).dataSync())));
    tf.dispose([flat, m3, ...parts, ...rows]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('gather copies rows from the heap: every axis, repeated and empty indices, int32, out-of-range refused, against an index reference', () => {
    const cases: Array<[number[], number, number[], number[]]> = [
      [[7, 5], 0, [3, 0, 6, 3], [4]],
      [[7, 5], 1, [4, 0, 2], [3]],
      [[3, 4, 5], 1, [1, 3, 1, 0, 2, 3], [2, 3]],
      [[3, 4, 5], 2, [0, 4], [2]],
      [[6, 2], 0, [], [0]],
    ];
    for (const [shape, axis, index, ishape] of cases) {
      const n = shape.reduce((p, v) => p * v, 1);
      const x = randArray(n);
      const outer = shape.slice(0, axis).reduce((p, v) => p * v, 1);
      const run = shape.slice(axis + 1).reduce((p, v) => p * v, 1);
      const want: number[] = [];
      for (let a = 0; a < outer; a++) for (const i of index) for (let r = 0; r < run; r++) want.push(x[(a * shape[axis] + i) * run + r]);
      const got = tf.tidy(() => tf.gather(tf.tensor(x, shape), tf.tensor(index, ishape, 'int32'), axis));
      assert.deepEqual(got.shape, [...shape.slice(0, axis), ...ishape, ...shape.slice(axis + 1)]);
      assert.deepEqual(Array.from(got.dataSync()), Array.from(Float32Array.from(want)), `gather ${shape} axis ${axis} at ${index}`);
      got.dispose();
    }
    const ints = tf.tidy(() => tf.gather(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), [2, 0]).dataSync());
    assert.deepEqual(Array.from(ints), [5, 6, 1, 2]);
    assert.throws(() => tf.tidy(() => tf.gather(tf.zeros([3, 2]), [1, 3])), /index value 3 is not in \[0, 2\]/);
  });

  it('simplifyPermutation merges axes that move together and drops unit axes', async () => {
    assert.deepEqual(simplifyPermutation([2, 3, 4, 5], [0, 2, 3, 1]), { shape: [2, 3, 20], perm: [0, 2, 1] });
    assert.deepEqual(simplifyPermutation([2, 1, 4], [2, 1, 0]), { shape: [2, 4], perm: [1, 0] });
    assert.deepEqual(simplifyPermutation([2, 3], [0, 1]), { shape: [6], perm: [0] });
  });

  it('sum and mean over leading axes (bias / LayerNorm gradients), keepDims, and other axes', async () => {
    for (const split of [false, true]) {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      for (const [shape, axis] of [[[7, 5], 0], [[130, 37], 0], [[16, 10], 0], [[9, 1], 0], [[24, 6, 3], [0, 1]], [[3, 4, 33], [0, 1]], [[6, 40], [0]], [[5, 6, 7], 1], [[5, 6], -1]] as Array<[number[], number | number[]]>) {
        const n = shape.reduce((p, v) => p * v, 1);
        const x = randArray(n);
        const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + shape.length : a));
        // reference: sum over the listed axes
        const outShape = shape.filter((_, i) => !axes.includes(i));
        const outN = outShape.reduce((p, v) => p * v, 1);
        const want = new Float64Array(outN);
        const count = axes.reduce((p, a) => p * shape[a], 1);
        for (let i = 0; i < n; i++) {
          let rem = i;
          const idx = new Array<number>(shape.length);
          for (let j = shape.length - 1; j >= 0; j--) {
            idx[j] = rem % shape[j];
            rem = Math.floor(rem / shape[j]);
          }
          let o = 0;
          for (let j = 0; j < shape.length; j++) if (!axes.includes(j)) o = o * shape[j] + idx[j];
          want[o] += x[i];
        }
        for (const keepDims of [false, true]) {
          const [s, m, sShape] = tf.tidy(() => {
            const t = tf.tensor(x, shape);
            const st = tf.sum(t, axis, keepDims);
            return [st.dataSync(), tf.mean(t, axis, keepDims).dataSync(), st.shape];
          });
          assert.deepEqual(sShape, keepDims ? shape.map((v, i) => (axes.includes(i) ? 1 : v)) : outShape);
          assert.ok(maxRelErr(s, want) < 1e-5, `sum ${shape} ${axis}`);
          assert.ok(maxRelErr(m, want.map((v) => v / count)) < 1e-5, `mean ${shape} ${axis}`);
        }
      }
    }
    setParallelThresholds();
  });

  it('exp: special values (underflow to 0, overflow to inf, NaN kept)', async () => {
    const got = tf.tidy(() => tf.exp(tf.tensor1d([-Infinity, -100, 0, 100, Infinity, NaN, 1])).dataSync());
    assert.equal(got[0], 0);
    assert.equal(got[1], 0);
    assert.equal(got[2], 1);
    assert.equal(got[3], Infinity);
    assert.equal(got[4], Infinity);
    assert.ok(Number.isNaN(got[5]));
    assert.ok(Math.abs(got[6] - Math.E) < 1e-6);
  });

  it('exp matches Math.exp to ~1e-6 relative over [-80, 80], odd lengths', async () => {
    for (const n of [1, 3, 4, 7, 1001]) {
      const x = Float32Array.from({ length: n }, (_, i) => (n === 1 ? 0.5 : -80 + (160 * i) / (n - 1)));
      const got = tf.tidy(() => tf.exp(tf.tensor1d(x)).dataSync());
      for (let i = 0; i < n; i++) {
        const want = Math.exp(x[i]);
        assert.ok(Math.abs(got[i] - want) <= 2e-6 * want, `exp(${x[i]}) = ${got[i]}, want ${want}`);
      }
    }
  });

  it('GELU forward and derivative match double-precision x·Φ(x) and Φ(x) + x·φ(x)', async () => {
    const xs = [-12, -6, -3.3, -1, -0.5, -1e-3, 0, 1e-3, 0.3, 1, 2.5, 4, 9];
    const x = Float32Array.from([...xs, ...randArray(1001, 2.5)]);
    const dy = randArray(x.length);
    const [y, dx] = tf.tidy(() => {
      const xt = tf.tensor1d(x);
      return [fusedGelu(xt).dataSync(), fusedGeluGrad(xt, tf.tensor1d(dy)).dataSync()];
    });
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const wantY = v * Phi(v);
      const wantD = dy[i] * (Phi(v) + v * phi(v));
      assert.ok(Math.abs(y[i] - wantY) <= 1e-6 * Math.max(1, Math.abs(v)), `gelu(${v}) = ${y[i]}, want ${wantY}`);
      assert.ok(Math.abs(dx[i] - wantD) <= 2e-6 * Math.max(1, Math.abs(dy[i]) * Math.max(1, Math.abs(v))), `gelu'(${v})·${dy[i]} = ${dx[i]}, want ${wantD}`);
    }
    // Hand values: Φ(1) = 0.8413447461, Φ'(x)x + Φ at 0 = 0.5
    const h = tf.tidy(() => fusedGelu(tf.tensor1d([1, -1])).dataSync());
    assert.ok(Math.abs(h[0] - 0.8413447) < 1e-6 && Math.abs(h[1] + 0.1586553) < 1e-6);
  });

  for (const [simd, split] of [['relaxed', false], ['relaxed', true], ['plain', true]] as const) {
    // Head widths that are multiples of 8 take the unpacked per-head path, the others the packed GEMM.
    it(`fused attention matches per-head softmax(q·kᵀ·s)·v and its gradient, odd token counts and head widths (${simd} SIMD${split ? ', split across threads' : ''})`, async (t) => {
      if (simd === 'relaxed' && !relaxedSimd().available) {
        t.skip('relaxed SIMD is not available in this engine');
        return;
      }
      registerWasmKernels({ simd });
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      for (const [B, N, H, d] of [[1, 1, 1, 4], [2, 5, 2, 4], [3, 10, 4, 8], [2, 50, 4, 32], [1, 7, 3, 5], [1, 1, 2, 8], [2, 3, 1, 16], [1, 13, 2, 24], [1, 9, 1, 64]]) {
        const D = H * d;
        const qkv = randArray(B * N * 3 * D);
        const dout = randArray(B * N * D);
        const scale = 1 / Math.sqrt(d);
        // float64 reference, forward and backward
        const out = new Float64Array(B * N * D);
        const probs = new Float64Array(B * H * N * N);
        const dqkv = new Float64Array(B * N * 3 * D);
        const at = (b: number, t: number, part: number, h: number, j: number): number => qkv[(b * N + t) * 3 * D + part * D + h * d + j];
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++) {
            const P = new Float64Array(N * N);
            for (let i = 0; i < N; i++) {
              let mx = -Infinity;
              const s = new Float64Array(N);
              for (let j = 0; j < N; j++) {
                let acc = 0;
                for (let c = 0; c < d; c++) acc += at(b, i, 0, h, c) * at(b, j, 1, h, c);
                s[j] = acc * scale;
                mx = Math.max(mx, s[j]);
              }
              let z = 0;
              for (let j = 0; j < N; j++) z += Math.exp(s[j] - mx);
              for (let j = 0; j < N; j++) P[i * N + j] = Math.exp(s[j] - mx) / z;
            }
            probs.set(P, (b * H + h) * N * N);
            for (let i = 0; i < N; i++)
              for (let c = 0; c < d; c++) {
                let acc = 0;
                for (let j = 0; j < N; j++) acc += P[i * N + j] * at(b, j, 2, h, c);
                out[(b * N + i) * D + h * d + c] = acc;
              }
            const dO = (i: number, c: number): number => dout[(b * N + i) * D + h * d + c];
            for (let i = 0; i < N; i++) {
              const dP = new Float64Array(N);
              let rs = 0;
              for (let j = 0; j < N; j++) {
                for (let c = 0; c < d; c++) dP[j] += dO(i, c) * at(b, j, 2, h, c);
                rs += dP[j] * P[i * N + j];
              }
              for (let j = 0; j < N; j++) {
                const dS = P[i * N + j] * (dP[j] - rs) * scale;
                for (let c = 0; c < d; c++) {
                  dqkv[(b * N + i) * 3 * D + h * d + c] += dS * at(b, j, 1, h, c); // dQ
                  dqkv[(b * N + j) * 3 * D + D + h * d + c] += dS * at(b, i, 0, h, c); // dK
                  dqkv[(b * N + j) * 3 * D + 2 * D + h * d + c] += P[i * N + j] * dO(i, c); // dV
                }
              }
            }
          }
        const [o, p, g] = tf.tidy(() => {
          const q = tf.tensor2d(qkv, [B * N, 3 * D]);
          const r = fusedAttention(q, B, N, H, scale);
          assert.deepEqual(r.out.shape, [B * N, D]);
          assert.deepEqual(r.probs.shape, [B * H, N, N]);
          return [r.out.dataSync(), r.probs.dataSync(), fusedAttentionGrad(q, r.probs, tf.tensor2d(dout, [B * N, D]), B, N, H, scale).dataSync()];
        });
        const tag = `B${B} N${N} H${H} d${d}`;
        assert.ok(maxRelErr(o, out) < 2e-6, `out ${tag}: ${maxRelErr(o, out)}`);
        assert.ok(maxRelErr(p, probs) < 2e-6, `probs ${tag}`);
        assert.ok(maxRelErr(g, dqkv) < 5e-6, `dqkv ${tag}: ${maxRelErr(g, dqkv)}`);
      }
      setParallelThresholds();
      registerWasmKernels();
    });
  }

  it('stacked attention: batches of different token counts in one qkv give each batch\'s own attention and gradient (split across threads too)', async () => {
    for (const split of [false, true]) {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      const H = 2;
      const D = 16;
      const batches = [{ images: 3, tokens: 50 }, { images: 4, tokens: 10 }, { images: 1, tokens: 7 }];
      const rows = batches.reduce((n, b) => n + b.images * b.tokens, 0);
      const qkv = randArray(rows * 3 * D);
      const dout = randArray(rows * D);
      const [stacked, separate] = tf.tidy(() => {
        const q = tf.tensor2d(qkv, [rows, 3 * D]);
        const dy = tf.tensor2d(dout, [rows, D]);
        const r = fusedAttentionStacked(q, batches, H, 0.25);
        const g = fusedAttentionStackedGrad(q, r.probs, dy, batches, H, 0.25);
        const sizes = batches.map((b) => b.images * b.tokens);
        const [qs, dys] = [tf.split(q, sizes, 0), tf.split(dy, sizes, 0)];
        const parts = batches.map((b, i) => {
          const one = fusedAttention(qs[i] as tf.Tensor2D, b.images, b.tokens, H, 0.25);
          return { out: one.out, probs: tf.reshape(one.probs, [-1]), grad: fusedAttentionGrad(qs[i] as tf.Tensor2D, one.probs, dys[i] as tf.Tensor2D, b.images, b.tokens, H, 0.25) };
        });
        return [
          [r.out, r.probs, g].map((t) => t.dataSync()),
          [tf.concat(parts.map((p) => p.out), 0), tf.concat(parts.map((p) => p.probs), 0), tf.concat(parts.map((p) => p.grad), 0)].map((t) => t.dataSync()),
        ];
      });
      ['out', 'probs', 'dqkv'].forEach((name, i) => assert.deepEqual(Array.from(stacked[i]), Array.from(separate[i]), `${name}${split ? ' (split)' : ''}`));
    }
    setParallelThresholds();
    assert.throws(() => tf.tidy(() => fusedAttentionStacked(tf.zeros([10, 48]), [{ images: 2, tokens: 4 }], 2, 1)), /qkv must be \[Σ batch·tokens/);
  });

  it('IbotAdamW and IbotEma give the op-by-op values bit for bit: odd parameter sizes, clipping factors, decay or not, split across threads', async () => {
    const sizes = [5, 128, 3, 1, 3000, 0, 7];
    const offsets = sizes.reduce((o, n) => [...o, o[o.length - 1] + n], [0]);
    const n = offsets[sizes.length];
    const pieces = (a: Float32Array): tf.Tensor[] => sizes.map((sz, p) => tf.tensor1d(a.subarray(offsets[p], offsets[p] + sz)));
    const values = (ts: tf.Tensor[]): number[] => ts.flatMap((t) => Array.from(t.dataSync()));
    const coef = [0.5, 1, 0.25, 2, 0.75, 1.5, 0.1];
    const coefIndex = [3, 0, -1, 6, 1, 2, 4];
    for (const split of [false, true]) {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      const [w, g, m] = [randArray(n), randArray(n), randArray(n, 0.1)];
      const v = Float32Array.from(randArray(n), (x) => 0.01 * x * x);
      for (const [decay, step, withCoef] of [[0, 1, true], [0.04, 3, true], [0.04, 2, false]] as Array<[number, number, boolean]>) {
        const [beta1, beta2, eps, lr] = [0.9, 0.999, 1e-8, 1e-3];
        const got = tf.tidy(() => {
          const r = fusedAdamW(pieces(w), pieces(g), tf.tensor1d(m), tf.tensor1d(v),
            { beta1, beta2, eps, sqrtBc2: Math.sqrt(1 - beta2 ** step), lr: lr / (1 - beta1 ** step), keep: decay ? 1 - lr * decay : 1 },
            { coefIndex: withCoef ? coefIndex : coefIndex.map(() => -1), coef: withCoef ? tf.tensor1d(coef) : undefined });
          r.ws.forEach((t, p) => assert.deepEqual(t.shape, [sizes[p]]));
          return [values(r.ws), values([r.m]), values([r.v])];
        });
        // The arithmetic of AdamW.adam in src/train/optim.ts, one tfjs op at a time on flat vectors.
        const want = tf.tidy(() => {
          const gs = tf.concat(pieces(g).map((t, p) => tf.mul(t, withCoef && coefIndex[p] >= 0 ? coef[coefIndex[p]] : 1)));
          const m1 = tf.add(tf.mul(tf.tensor1d(m), beta1), tf.mul(gs, 1 - beta1));
          const v1 = tf.add(tf.mul(tf.tensor1d(v), beta2), tf.mul(tf.square(gs), 1 - beta2));
          const denom = tf.add(tf.div(tf.sqrt(v1), Math.sqrt(1 - beta2 ** step)), eps);
          const w0 = tf.tensor1d(w);
          const w1 = tf.sub(decay ? tf.mul(w0, 1 - lr * decay) : w0, tf.mul(tf.div(m1, denom), lr / (1 - beta1 ** step)));
          return [values([w1]), values([m1]), values([v1])];
        });
        ['w', 'm', 'v'].forEach((name, i) => assert.deepEqual(got[i], want[i], `${name}' (decay ${decay}, step ${step}, factors ${withCoef}${split ? ', split' : ''})`));
      }
      for (const mom of [0.996, 0.5]) {
        const [t, s] = [randArray(n), randArray(n)];
        const got = tf.tidy(() => values(fusedEma(pieces(t), pieces(s), mom)));
        const want = tf.tidy(() => values([tf.add(tf.mul(tf.tensor1d(t), mom), tf.mul(tf.tensor1d(s), 1 - mom))]));
        assert.deepEqual(got, want, `EMA momentum ${mom}${split ? ', split' : ''}`);
      }
    }
    setParallelThresholds();
    // Mismatched lists are refused, not read past.
    const k = { beta1: 0.9, beta2: 0.999, eps: 1e-8, sqrtBc2: 1, lr: 1, keep: 1 };
    assert.throws(() => tf.tidy(() => { fusedAdamW([tf.ones([4])], [tf.ones([3])], tf.ones([4]) as tf.Tensor1D, tf.ones([4]) as tf.Tensor1D, k, { coefIndex: [-1] }); }), /match/);
    assert.throws(() => tf.tidy(() => { fusedAdamW([tf.ones([4])], [tf.ones([4])], tf.ones([4]) as tf.Tensor1D, tf.ones([4]) as tf.Tensor1D, k, { coefIndex: [2], coef: tf.ones([2]) as tf.Tensor1D }); }), /factor index/);
    assert.throws(() => tf.tidy(() => { fusedEma([tf.ones([4])], [tf.ones([5])], 0.9); }), /match/);
  });

  it('LayerNorm forward and input gradient match a float64 reference (rows split across threads too)', async () => {
    for (const split of [false, true]) {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      for (const [M, D] of [[1, 4], [7, 12], [33, 128]]) {
        const x = randArray(M * D, 3).map((v, i) => v + (i % 5));
        const g = randArray(D);
        const b = randArray(D);
        const dy = randArray(M * D);
        const eps = 1e-6;
        const wantY = new Float64Array(M * D);
        const wantDx = new Float64Array(M * D);
        for (let r = 0; r < M; r++) {
          let mean = 0;
          for (let j = 0; j < D; j++) mean += x[r * D + j] / D;
          let v = 0;
          for (let j = 0; j < D; j++) v += (x[r * D + j] - mean) ** 2 / D;
          const rs = 1 / Math.sqrt(v + eps);
          let m1 = 0;
          let m2 = 0;
          for (let j = 0; j < D; j++) {
            const xh = (x[r * D + j] - mean) * rs;
            wantY[r * D + j] = xh * g[j] + b[j];
            m1 += (dy[r * D + j] * g[j]) / D;
            m2 += (dy[r * D + j] * g[j] * xh) / D;
          }
          for (let j = 0; j < D; j++) {
            const xh = (x[r * D + j] - mean) * rs;
            wantDx[r * D + j] = rs * (dy[r * D + j] * g[j] - m1 - xh * m2);
          }
        }
        const [y, dx] = tf.tidy(() => {
          const r = fusedLayerNorm(tf.tensor2d(x, [M, D]), tf.tensor1d(g), tf.tensor1d(b), eps);
          return [r.y.dataSync(), fusedLayerNormGrad(tf.tensor2d(dy, [M, D]), r.xhat, r.rstd, tf.tensor1d(g)).dataSync()];
        });
        assert.ok(maxRelErr(y, wantY) < 2e-6, `y M${M} D${D}: ${maxRelErr(y, wantY)}`);
        assert.ok(maxRelErr(dx, wantDx) < 2e-5, `dx M${M} D${D}: ${maxRelErr(dx, wantDx)}`);
      }
    }
    setParallelThresholds();
  });

  it('identity (tf.clone, and the clones custom gradients save) shares the buffer and keeps values after the source is gone', async () => {
    const dataIds = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    const d0 = dataIds();
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    assert.equal(dataIds(), d0 + 1);
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3]);
    y.dispose();
    assert.equal(dataIds(), d0);
  });

  it('the non-shared module variant computes the same GEMM on a fresh memory', async () => {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const k = instantiateKernels(memory);
    const M = 9, N = 13, K = 300;
    const a = randArray(M * K);
    const b = randArray(K * N);
    const f = new Float32Array(memory.buffer);
    const pa = 1024, pb = pa + a.length * 4, pc = pb + b.length * 4, ws = pc + M * N * 4 + 64;
    assert.ok(ws + gemmScratchBytes(N) < memory.buffer.byteLength);
    f.set(a, pa / 4);
    f.set(b, pb / 4);
    k.gemm(pa, K * 4, 4, pb, N * 4, 4, pc, N * 4, M, N, K, 2, 0, ws);
    const got = f.slice(pc / 4, pc / 4 + M * N);
    const want = refBmm(a, b, 1, 1, M, N, K, false, false).map((v) => 2 * v);
    assert.ok(maxRelErr(got, want) < 2e-6);
  });

  it('leaves no tensors or backend buffers behind', async () => {
    const x = tf.randomNormal([8, 12, 6]);
    const q = tf.reshape(x, [24, 24]) as tf.Tensor2D;
    const dataIds = (): number => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    const run = (): void => {
      tf.tidy(() => {
        tf.matMul(x as tf.Tensor3D, x as tf.Tensor3D, true, false);
        tf.matMul(tf.reshape(x, [96, 6]) as tf.Tensor2D, tf.reshape(x, [96, 6]) as tf.Tensor2D, true, false);
        tf.transpose(x, [0, 2, 1]);
        tf.transpose(tf.reshape(x, [2, 4, 12, 6]), [0, 2, 1, 3]);
        tf.sum(x, [0, 1]);
        tf.mean(x, 0);
        tf.exp(x);
        fusedGelu(x);
        fusedGeluGrad(x, x);
        const r = fusedAttention(q, 2, 12, 2, 0.5);
        fusedAttentionGrad(q, r.probs, r.out, 2, 12, 2, 0.5);
        const ln = fusedLayerNorm(q, tf.ones([24]), tf.zeros([24]), 1e-6);
        fusedLayerNormGrad(q, ln.xhat, ln.rstd, tf.ones([24]));
      });
    };
    run();
    const n0 = tf.memory().numTensors;
    const d0 = dataIds();
    for (let i = 0; i < 3; i++) run();
    assert.equal(tf.memory().numTensors, n0);
    assert.equal(dataIds(), d0);
    tf.dispose([x, q]);
  });

  const simdVariants: SimdChoice[] = ['plain', 'relaxed'];
  for (const simd of simdVariants) {
    it(`plain 2-D and fused (x·W + b) products on our GEMM, every transpose flag, odd sizes (${simd} SIMD)`, (t) => {
      if (simd === 'relaxed' && !relaxedSimd().available) {
        t.skip('relaxed SIMD is not available in this engine');
        return;
      }
      registerWasmKernels({ simd });
      try {
        assert.equal(kernelsFor(tf.backend() as unknown as WasmBackendLike).relaxed, simd === 'relaxed');
        for (const split of [false, true]) {
          setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
          // M, K, N: single elements, edges of the 4×8 tile, several K chunks (256) and row blocks (64)
          for (const [M, K, N] of [[1, 1, 1], [5, 3, 7], [37, 300, 45], [130, 128, 72], [9, 513, 33], [100, 16, 8], [7, 1, 13], [66, 40, 9]]) {
            for (const tA of [false, true]) {
              for (const tB of [false, true]) {
                const a = randArray(M * K);
                const b = randArray(K * N);
                const bias = randArray(N);
                const prodRef = refBmm(a, b, 1, 1, M, N, K, tA, tB);
                const [got, gotPlain] = tf.tidy(() => {
                  const at = tf.tensor2d(a, tA ? [K, M] : [M, K]);
                  const bt = tf.tensor2d(b, tB ? [N, K] : [K, N]);
                  const f = tf.fused.matMul({ a: at, b: bt, bias: tf.tensor1d(bias), transposeA: tA, transposeB: tB });
                  assert.deepEqual(f.shape, [M, N]);
                  return [f.dataSync(), tf.matMul(at, bt, tA, tB).dataSync()];
                });
                const tag = `M${M} K${K} N${N} tA=${tA} tB=${tB} split=${split}`;
                assert.ok(maxRelErr(gotPlain, prodRef) < 2e-6, `matMul ${tag}: ${maxRelErr(gotPlain, prodRef)}`);
                const want = prodRef.map((v, i) => v + bias[i % N]);
                assert.ok(maxRelErr(got, want) < 2e-6, `fused matMul ${tag}: ${maxRelErr(got, want)}`);
              }
            }
          }
        }
      } finally {
        setParallelThresholds();
        registerWasmKernels();
      }
    });
  }

  it('fused matMul leaves what it does not handle (activations, batches) to the stock kernel, with the same values', () => {
    const a = randArray(2 * 6 * 5);
    const b = randArray(5 * 7);
    const got = tf.tidy(() => tf.fused.matMul({ a: tf.tensor2d(a.subarray(0, 30), [6, 5]), b: tf.tensor2d(b, [5, 7]), bias: tf.tensor1d(randArray(7)), activation: 'relu' }).dataSync());
    assert.ok(got.every((v) => v >= 0));
    const got3 = tf.tidy(() => tf.fused.matMul({ a: tf.tensor3d(a, [2, 6, 5]), b: tf.tensor3d(b, [1, 5, 7]) }).dataSync());
    assert.ok(maxRelErr(got3, refBmm(a, b, 2, 1, 6, 7, 5, false, false)) < 2e-6);
  });

  it('IbotDenseGelu: h = x·W + b and gelu(h) from one GEMM match a float64 reference (split across threads too)', () => {
    for (const split of [false, true]) {
      setParallelThresholds(split ? 0 : 4e6, split ? 0 : 1 << 16);
      for (const [M, K, N] of [[1, 1, 1], [37, 45, 29], [130, 300, 72]]) {
        const x = randArray(M * K);
        const w = randArray(K * N, 0.3);
        const b = randArray(N);
        const [h, y] = tf.tidy(() => {
          const r = fusedDenseGelu(tf.tensor2d(x, [M, K]), tf.tensor2d(w, [K, N]), tf.tensor1d(b));
          return [r.h.dataSync(), r.y.dataSync()];
        });
        const wantH = refBmm(x, w, 1, 1, M, N, K, false, false).map((v, i) => v + b[i % N]);
        assert.ok(maxRelErr(h, wantH) < 2e-6, `h M${M} K${K} N${N}: ${maxRelErr(h, wantH)}`);
        // gelu of the float32 h we got (the reference's own rounding would dominate otherwise)
        for (let i = 0; i < h.length; i++) {
          const want = h[i] * Phi(h[i]);
          assert.ok(Math.abs(y[i] - want) <= 1e-6 * Math.max(1, Math.abs(h[i])), `gelu(${h[i]}) = ${y[i]}, want ${want}`);
        }
      }
    }
    setParallelThresholds();
  });

  it('the relaxed and plain modules compute the same dense layer within float32 rounding; the relaxed one fuses where the CPU can', (t) => {
    if (!relaxedSimd().available) {
      t.skip('relaxed SIMD is not available in this engine');
      return;
    }
    const memory = new WebAssembly.Memory({ initial: 160 });
    const variants = { plain: instantiateKernels(memory, 'plain'), relaxed: instantiateKernels(memory, 'relaxed') };
    const M = 37, K = 300, N = 45;
    const a = randArray(M * K);
    const b = randArray(K * N);
    const bias = randArray(N);
    const f = new Float32Array(memory.buffer);
    const pa = 1024, pb = pa + a.length * 4, pbias = pb + b.length * 4, pc = pbias + N * 4 + 64, pg = pc + M * N * 4, ws = pg + M * N * 4 + 64;
    assert.ok(ws + gemmScratchBytes(N) < memory.buffer.byteLength);
    f.set(a, pa / 4);
    f.set(b, pb / 4);
    f.set(bias, pbias / 4);
    const want = refBmm(a, b, 1, 1, M, N, K, false, false).map((v, i) => v + bias[i % N]);
    const out: Record<string, Float32Array[]> = {};
    for (const [name, k] of Object.entries(variants)) {
      // A read transposed (sAm = 4) exercises the other packing path
      k.dense(pa, K * 4, 4, pb, N * 4, 4, pc, N * 4, M, N, K, pbias, pg, ws);
      out[name] = [f.slice(pc / 4, pc / 4 + M * N), f.slice(pg / 4, pg / 4 + M * N)];
      assert.ok(maxRelErr(out[name][0], want) < 2e-6, `${name}: ${maxRelErr(out[name][0], want)}`);
    }
    assert.ok(maxRelErr(out.relaxed[0], out.plain[0]) < 2e-6);
    assert.ok(maxRelErr(out.relaxed[1], out.plain[1]) < 2e-6);
    // With a fused multiply-add (one rounding per step) some of the 300-term sums must come out differently.
    const differ = out.relaxed[0].some((v, i) => v !== out.plain[0][i]);
    assert.equal(differ, relaxedSimd().fused, `relaxed results ${differ ? 'differ' : 'do not differ'} while the probe says the multiply-add is ${relaxedSimd().fused ? '' : 'not '}fused`);
  });

  it('linear (GEMM with transpose flags) and linearGelu (GELU epilogue): gradients match finite differences and the unfused composition', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([37, 24], 0, 1, 'float32', 51) as tf.Tensor2D;
      const w = tf.randomNormal([24, 29], 0, 0.3, 'float32', 52) as tf.Tensor2D;
      const b = tf.randomNormal([29], 0, 0.3, 'float32', 53) as tf.Tensor1D;
      const r = tf.randomNormal([37, 29], 0, 1, 'float32', 54);
      type F = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D) => tf.Tensor2D;
      const loss = (f: F) => (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D), r)) as tf.Scalar;
      const composed: F = (xi, wi, bi) => gelu(linear(xi, wi, bi));
      const rel = (p: tf.Tensor, q: tf.Tensor): number => tf.norm(tf.sub(p, q)).dataSync()[0] / Math.max(1e-12, tf.norm(q).dataSync()[0]);
      assert.ok(rel(linearGelu(x, w, b), composed(x, w, b)) < 1e-6);
      const gf = tf.grads(loss(linearGelu))([x, w, b]);
      const gc = tf.grads(loss(composed))([x, w, b]);
      for (let i = 0; i < 3; i++) assert.ok(rel(gf[i], gc[i]) < 1e-5, `linearGelu grad ${i}: ${rel(gf[i], gc[i])}`);
      for (const [f, g, name] of [[linearGelu, gf, 'linearGelu'], [linear, tf.grads(loss(linear))([x, w, b]), 'linear']] as Array<[F, tf.Tensor[], string]>) {
        const fdx = fdDirectional((xi) => loss(f)(xi, w, b), x, g[0], 61);
        const fdw = fdDirectional((wi) => loss(f)(x, wi, b), w, g[1], 62);
        const fdb = fdDirectional((bi) => loss(f)(x, w, bi), b, g[2], 63);
        assert.ok(fdx.relErr < 1e-2 && fdw.relErr < 1e-2 && fdb.relErr < 1e-2, `${name}: ${JSON.stringify([fdx, fdw, fdb])}`);
      }
    });
  });

  it('relaxed SIMD: detected in a fresh Node process (the V8 flag is set at run time where needed), off with IBOTLAB_RELAXED_SIMD=0', (t) => {
    if (process.arch !== 'x64' && process.arch !== 'arm64') {
      t.skip(`V8 may lack relaxed SIMD on ${process.arch}`);
      return;
    }
    const mod = resolve(__dirname, '../src/kernels/wasm-kernels.js');
    const probe = (env: NodeJS.ProcessEnv): { available: boolean; fused: boolean } =>
      JSON.parse(execFileSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(mod)}).relaxedSimd()))`], { env: { ...process.env, ...env } }).toString());
    const major = Number(process.versions.node.split('.')[0]);
    assert.equal(probe({ IBOTLAB_RELAXED_SIMD: '' }).available, major >= 20);
    assert.deepEqual(probe({ IBOTLAB_RELAXED_SIMD: '0' }), { available: false, fused: false });
  });

  it('the plain-SIMD module variants hold no relaxed-SIMD instruction, the relaxed ones do', async (t) => {
    let wabtFactory: (() => Promise<{ readWasm(b: Uint8Array, o: Record<string, boolean>): { destroy(): void } }>) | undefined;
    try {
      wabtFactory = require('wabt');
    } catch {
      wabtFactory = undefined;
    }
    if (!wabtFactory) {
      t.skip('wabt (a dev dependency) is not installed');
      return;
    }
    const wabt = await wabtFactory();
    const bin = await import('../src/kernels/wasm-binary');
    // Decoding alone rejects opcodes of a disabled feature (wabt's validator would also reject the shared memory).
    const validWithoutRelaxed = (b64: string): boolean => {
      try {
        // A copy with its own ArrayBuffer: on Node 24 a decoded Buffer can be a view into a larger
        // one, and wabt reads the whole underlying buffer (past the module's end).
        const m = wabt.readWasm(new Uint8Array(Buffer.from(b64, 'base64')), { readDebugNames: false, simd: true, threads: true, relaxed_simd: false });
        m.destroy();
        return true;
      } catch {
        return false;
      }
    };
    assert.ok(validWithoutRelaxed(bin.KERNELS_WASM_PLAIN));
    assert.ok(validWithoutRelaxed(bin.KERNELS_WASM_SHARED));
    assert.ok(!validWithoutRelaxed(bin.KERNELS_WASM_RELAXED_PLAIN));
    assert.ok(!validWithoutRelaxed(bin.KERNELS_WASM_RELAXED_SHARED));
  });

  it('the committed wasm binary is assembled from the committed kernels.wat', (t) => {
    const script = [resolve(__dirname, '../src/kernels/assemble.js'), resolve(__dirname, '../../src/kernels/assemble.js')].find(existsSync);
    let hasWabt = true;
    try {
      require.resolve('wabt');
    } catch {
      hasWabt = false;
    }
    if (!script || !hasWabt) {
      t.skip('wabt (a dev dependency) or the assembler script is not available');
      return;
    }
    execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' });
  });
});
