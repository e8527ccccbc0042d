/**
 * Visualisation for notebooks, the CLI and pages: pure plotly figure builders
 * (`{ data, layout }`), HTML rendering with plotly.js inlined, and display
 * helpers for the tslab notebook kernel.
 *
 *   import * as viz from '../dist/src/viz';   // from notebooks/
 */
export * from './figure';
export * from './images';
export * from './curves';
export * from './crops';
export * from './distributions';
export * from './attention';
export * from './patterns';
export * from './projection';
export * from './tables';
export * from './charts';
export * from './html';
export * from './notebook';
