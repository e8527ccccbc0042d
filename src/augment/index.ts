/** Data augmentation for iBOT: multi-crop views and MIM patch masks. */
export * from './crop-config';
export * from './crop-plan';
export * from './crop-ops';
export * from './masking';
export * from './multicrop';
export * from './batch';
