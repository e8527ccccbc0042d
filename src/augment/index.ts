/** Data augmentation for iBOT: multi-crop views and MIM patch masks. */
export * from './masking';
export * from './multicrop';
export * from './batch';
