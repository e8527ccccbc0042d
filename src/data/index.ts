/** Datasets: the ImageDataset type and helpers, file readers, and the by-name registry. */
export * from './dataset';
export * from './idx';
export * from './cifar';
export * from './folder';
export * from './registry';
export * from './photos';
