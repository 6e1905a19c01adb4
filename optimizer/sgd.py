import torch


def Optimizer(parameters, lr, weight_decay=None, momentum=None, nesterov=False, **kwargs):
    """SGD with the original's momentum 0.9 and weight decay 5e-5 unless --momentum/--weight_decay are
    given; Nesterov momentum with --nesterov (WeSpeaker's recipes: momentum 0.9, Nesterov, weight
    decay 1e-4)."""
    from voxtrainer.errors import InputError
    momentum = 0.9 if momentum is None else momentum
    if nesterov and momentum <= 0:
        raise InputError("--nesterov needs a --momentum above 0")
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=5e-5 if weight_decay is None else weight_decay)
