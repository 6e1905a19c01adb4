"""Loss functions: each module exposes one `LossFunction(nn.Module)`."""
