import torch


def Scheduler(optimizer, test_interval, lr_decay, **kwargs):
    """The original's schedule: the LR is multiplied by lr_decay every test_interval epochs.
    Stepped once per epoch."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=test_interval, gamma=lr_decay)
