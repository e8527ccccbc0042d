import * as tf from '@tensorflow/tfjs-core';
import { registerWasmKernels, unregisterWasmKernels } from '../src/kernels';
require('@tensorflow/tfjs-backend-wasm');
const time = (name: string, flops: number, f: () => tf.Tensor, n = 7) => {
  f().dispose(); f().dispose();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); const r = f(); r.dataSync(); ts.push(performance.now() - t0); r.dispose(); }
  ts.sort((a, b) => a - b);
  const med = ts[n >> 1];
  console.log(name.padEnd(50), med.toFixed(2).padStart(8), 'ms', flops ? (flops / med / 1e6).toFixed(2) + ' GFLOP/s' : '');
};
(async () => {
  await tf.setBackend('wasm');
  const q = tf.randomNormal([512, 50, 32]); const p = tf.randomNormal([512, 50, 50]);
  const x = tf.randomNormal([6400, 128]); const dy = tf.randomNormal([6400, 512]); const w = tf.randomNormal([128, 512]);
  const run = (tag: string) => {
    time(tag + ' bmm QK^T [512,50,32]x[512,50,32]^T', 2*512*50*50*32, () => tf.matMul(q as tf.Tensor3D, q as tf.Tensor3D, false, true));
    time(tag + ' bmm PV [512,50,50]x[512,50,32]', 2*512*50*50*32, () => tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D));
    time(tag + ' bmm P^T dO', 2*512*50*50*32, () => tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D, true, false));
    time(tag + ' bmm dS^T Q', 2*512*50*50*32, () => tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D, true, false));
    time(tag + ' dW = x^T dy (transA)', 2*6400*128*512, () => tf.matMul(x as tf.Tensor2D, dy as tf.Tensor2D, true, false), 5);
    time(tag + ' dW = transpose(x) dy', 2*6400*128*512, () => tf.tidy(() => tf.matMul(tf.transpose(x) as tf.Tensor2D, dy as tf.Tensor2D)), 5);
    time(tag + ' dx = dy W^T (transB)', 2*6400*128*512, () => tf.matMul(dy as tf.Tensor2D, w as tf.Tensor2D, false, true), 5);
    time(tag + ' dx = dy transpose(W)', 2*6400*128*512, () => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, tf.transpose(w) as tf.Tensor2D)), 5);
    time(tag + ' fwd x W [6400,128]x[128,512]', 2*6400*128*512, () => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), 5);
    time(tag + ' transpose [6400,512]', 0, () => tf.transpose(dy));
    time(tag + ' transpose4 [128,50,4,50]', 0, () => tf.transpose(tf.reshape(p, [128,50,4,50]) , [0,2,1,3]));
    time(tag + ' sum0 [6400,512]', 0, () => tf.sum(dy, 0));
    time(tag + ' exp [6400,512]', 0, () => tf.exp(dy));
  };
  if (process.argv.includes('--stock')) run('stock');
  registerWasmKernels({ plain2d: true });
  run('ours ');
})();
