import * as tf from '@tensorflow/tfjs-core';
require('@tensorflow/tfjs-backend-wasm');
async function main() {
  await tf.setBackend('wasm');
  const time = (name: string, flops: number, f: () => tf.Tensor, n = 8) => {
    f().dispose(); f().dispose();
    const ts: number[] = [];
    for (let i = 0; i < n; i++) { const t0 = performance.now(); const r = f(); r.dataSync(); ts.push(performance.now() - t0); r.dispose(); }
    ts.sort((a, b) => a - b);
    const med = ts[n >> 1];
    console.log(name.padEnd(50), med.toFixed(2), 'ms', (flops / med / 1e6).toFixed(2), 'GFLOP/s');
  };
  const a = tf.randomNormal([6400, 512]); const w = tf.randomNormal([512, 128]);
  const x = tf.randomNormal([6400, 128]); const w2 = tf.randomNormal([128, 512]);
  time('[6400,512]x[512,128] cached W', 2*6400*512*128, () => tf.matMul(a as tf.Tensor2D, w as tf.Tensor2D));
  time('[6400,512]x[512,128] fresh W', 2*6400*512*128, () => tf.tidy(() => tf.matMul(a as tf.Tensor2D, tf.add(w, 0) as tf.Tensor2D)));
  time('[6400,128]x[128,512] cached W', 2*6400*512*128, () => tf.matMul(x as tf.Tensor2D, w2 as tf.Tensor2D));
  time('[6400,128]x[128,512] fresh W', 2*6400*512*128, () => tf.tidy(() => tf.matMul(x as tf.Tensor2D, tf.add(w2, 0) as tf.Tensor2D)));
  time('xT[128,6400]·dy[6400,512] (transpose+mm)', 2*6400*512*128, () => tf.tidy(() => tf.matMul(tf.transpose(x) as tf.Tensor2D, a as tf.Tensor2D)));
  time('transpose [6400,512]', 0, () => tf.transpose(a));
  time('sum axis0 [6400,512]', 0, () => tf.sum(a, 0));
  const q = tf.randomNormal([512, 50, 32]); const p = tf.randomNormal([512, 50, 50]);
  time('bmm [512,50,32]x[512,50,32]^T', 2*512*50*50*32, () => tf.matMul(q as tf.Tensor3D, q as tf.Tensor3D, false, true), 4);
  time('bmm [512,50,50]x[512,50,32]', 2*512*50*50*32, () => tf.matMul(p as tf.Tensor3D, q as tf.Tensor3D), 4);
  const m = tf.randomNormal([512, 512]);
  time('512^3', 2*512**3, () => tf.matMul(m as tf.Tensor2D, m as tf.Tensor2D));
}
main();
