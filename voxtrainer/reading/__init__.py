"""Reading: from list files and audio on disk to the tensors a network sees. The lists (train,
test, pairs) are parsed and checked here; audio is read and cropped by the original protocols;
training crops are augmented and perturbed; the datasets and the per-speaker batch sampler feed the
DataLoaders. Everything downstream (training, scoring, inference) receives crops from here."""
