"""Inference and export: the one path from crops to embeddings (batched, on any device, at the
evaluation precision), embeddings of whole lists of files for --extract, ONNX and TorchScript
files of the embedding network, and published models fetched by URL."""
