import torch


def Optimizer(parameters, lr, weight_decay=None, momentum=None, nesterov=False, fused=False, **kwargs):
    """SGD with the original's momentum 0.9 and weight decay 5e-5 unless --momentum/--weight_decay are
    given; Nesterov momentum with --nesterov (WeSpeaker's recipes: momentum 0.9, Nesterov, weight
    decay 1e-4). `fused`: one fused CUDA kernel for the update (the trainer asks on CUDA under
    --precision tf32/bf16/fp16); otherwise PyTorch's default kernels."""
    from voxtrainer.errors import InputError
    momentum = 0.9 if momentum is None else momentum
    if nesterov and momentum <= 0:
        raise InputError("--nesterov needs a --momentum above 0")
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=nesterov,
                                weight_decay=5e-5 if weight_decay is None else weight_decay, fused=fused or None)
    optimizer.register_load_state_dict_post_hook(keep_fused(fused))
    return optimizer


def keep_fused(fused):
    """A resumed run's kernel is this run's choice, not the saved state's (load_state_dict takes
    every group setting from the saved state)."""
    def hook(optimizer):
        for group in optimizer.param_groups:
            group["fused"] = fused or None
    return hook
