import * as tf from '@tensorflow/tfjs-core';
import { registerWasmKernels, unregisterWasmKernels, wasmKernelOptions } from '../src/kernels';
import { initBackend } from '../src/backend';
(async () => {
  await initBackend({ quiet: true });
  registerWasmKernels();
  const shapes: Array<[number, number, number]> = [[6400, 128, 384], [6400, 128, 128], [6400, 128, 512], [6400, 512, 128], [6400, 512, 512], [6272, 128, 1024], [2560, 128, 512], [2560, 512, 128]];
  const t = (f: () => tf.Tensor) => { f().dispose(); f().dispose(); const ts: number[] = []; for (let i = 0; i < 15; i++) { const t0 = performance.now(); f().dispose(); ts.push(performance.now() - t0); } ts.sort((a, b) => a - b); return ts[0]; };
  console.log('M K N | fwd xnn(fused,bias) | fwd ours | dx xnn(transpose W) | dx ours(transB) | dW ours(transA) | dW xnn(transpose x)');
  for (const [M, K, N] of shapes) {
    const x = tf.randomNormal([M, K]) as tf.Tensor2D, w = tf.randomNormal([K, N]) as tf.Tensor2D, b = tf.randomNormal([N]) as tf.Tensor1D, dy = tf.randomNormal([M, N]) as tf.Tensor2D;
    const fl = 2 * M * K * N / 1e6;
    registerWasmKernels({ plain2d: false });
    const a1 = t(() => tf.fused.matMul({ a: x, b: w, bias: b }));
    const c1 = t(() => tf.tidy(() => tf.matMul(dy, tf.transpose(w))));
    const d2 = t(() => tf.tidy(() => tf.matMul(tf.transpose(x), dy)));
    registerWasmKernels({ plain2d: true });
    const a2 = t(() => tf.matMul(x, w));
    const c2 = t(() => tf.matMul(dy, w, false, true));
    const d1 = t(() => tf.matMul(x, dy, true, false));
    registerWasmKernels({ plain2d: false });
    console.log(`${M} ${K} ${N} | ${(fl / a1).toFixed(1)} | ${(fl / a2).toFixed(1)} | ${(fl / c1).toFixed(1)} | ${(fl / c2).toFixed(1)} | ${(fl / d1).toFixed(1)} | ${(fl / d2).toFixed(1)}  GFLOP/s`);
    tf.dispose([x, w, b, dy]);
  }
})();
