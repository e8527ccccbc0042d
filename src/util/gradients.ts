/**
 * Registers TensorFlow.js's gradient functions. The CommonJS build of
 * tfjs-core registers none (its ESM `register_all_gradients` cannot be
 * required from CommonJS); the union package's Node bundle registers them all
 * into the same tfjs-core instance. Anything that trains imports this.
 */
import '@tensorflow/tfjs';
