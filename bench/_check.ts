import * as tf from '@tensorflow/tfjs-core';
import { registerWasmKernels, unregisterWasmKernels, kernelsFor } from '../src/kernels';
import { initBackend } from '../src/backend';
require('@tensorflow/tfjs-backend-wasm');
function naiveBmm(a: Float32Array, b: Float32Array, batchA: number, batchB: number, M: number, N: number, K: number, tA: boolean, tB: boolean) {
  const batch = Math.max(batchA, batchB);
  const c = new Float32Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    const ao = batchA === 1 ? 0 : i * M * K, bo = batchB === 1 ? 0 : i * K * N;
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[ao + (tA ? k * M + m : m * K + k)] * b[bo + (tB ? n * K + k : k * N + n)];
      c[i * M * N + m * N + n] = s;
    }
  }
  return c;
}
(async () => {
  console.log(await initBackend({}));
  registerWasmKernels();
  console.log('shared', kernelsFor(tf.backend() as any).shared);
  let worst = 0;
  for (const [batch, M, N, K] of [[1, 1, 1, 1], [3, 5, 7, 9], [2, 50, 50, 32], [1, 13, 17, 300], [4, 4, 8, 8], [1, 33, 9, 513], [5, 10, 10, 32]]) {
    for (const tA of [false, true]) for (const tB of [false, true]) {
      const a = tf.randomNormal(tA ? [batch, K, M] : [batch, M, K], 0, 1, 'float32', 1);
      const b = tf.randomNormal(tB ? [batch, N, K] : [batch, K, N], 0, 1, 'float32', 2);
      const c = tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, tA, tB).dataSync();
      const r = naiveBmm(a.dataSync() as Float32Array, b.dataSync() as Float32Array, batch, batch, M, N, K, tA, tB);
      let e = 0, nr = 0;
      for (let i = 0; i < r.length; i++) { e = Math.max(e, Math.abs(c[i] - r[i])); nr = Math.max(nr, Math.abs(r[i])); }
      worst = Math.max(worst, e / nr);
      if (e / nr > 1e-5) console.log('BAD', batch, M, N, K, tA, tB, e, nr);
      tf.dispose([a, b]);
    }
  }
  console.log('bmm worst rel', worst);
  // transpose
  const x = tf.randomNormal([37, 53]);
  unregisterWasmKernels();
  const t1 = tf.transpose(x).dataSync(); const x4 = tf.randomNormal([3, 5, 4, 7]); const t2 = tf.transpose(x4, [0, 2, 1, 3]).dataSync();
  const s1 = tf.sum(x, 0).dataSync(); const e1 = tf.exp(x).dataSync();
  const x3 = tf.randomNormal([6, 37, 53]); const t3 = tf.transpose(x3, [0, 2, 1]).dataSync();
  registerWasmKernels();
  const cmp = (p: ArrayLike<number>, q: ArrayLike<number>) => { let e = 0; for (let i = 0; i < p.length; i++) e = Math.max(e, Math.abs(p[i] - q[i])); return e; };
  console.log('transpose', cmp(t1, tf.transpose(x).dataSync()), cmp(t2, tf.transpose(x4, [0, 2, 1, 3]).dataSync()), cmp(t3, tf.transpose(x3, [0, 2, 1]).dataSync()));
  console.log('sum', cmp(s1, tf.sum(x, 0).dataSync()), 'exp', cmp(e1, tf.exp(x).dataSync()));
})();
