/**
 * What the notebooks share: quick/full mode, where runs live, the data they
 * use, and the pretrained run that 01-pretraining writes and 02–05 read.
 */
export * from './session';
