import torch


def Optimizer(parameters, lr, weight_decay=None, **kwargs):
    """SGD with the original's momentum 0.9 and weight decay 5e-5 (unless --weight_decay is given)."""
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=5e-5 if weight_decay is None else weight_decay)
