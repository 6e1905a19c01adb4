import torch


def Optimizer(parameters, lr, weight_decay=None, **kwargs):
    """Adam, as the original (no weight decay unless --weight_decay is given)."""
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay or 0.0)
