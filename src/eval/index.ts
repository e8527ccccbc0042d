/** Evaluation: frozen features and the paper's protocols (k-NN, linear probe, logistic regression, semi-supervised, clustering), as tables. */
export * from './metrics';
export * from './knn';
export * from './kmeans';
export * from './features';
export * from './classifier';
export * from './linear';
export * from './logistic';
export * from './semi';
export * from './cluster';
export * from './protocols';
export * from './results';
