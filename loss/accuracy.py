import torch


def top1_accuracy(logits: torch.Tensor, target: torch.Tensor):
    """Percentage of rows whose highest logit is the target class.

    Uses topk rather than argmax so ties break the same way as the original
    `accuracy(output, target, topk=(1,))`.

    A Python float for logits on the CPU. On an accelerator, and inside torch.compile, a 0-dim
    float64 tensor on the logits' device holding the same value (float() reads it), so that a
    training step need not wait for the device, nor break the compiled graph, to report it.
    """
    pred = logits.detach().topk(1, dim=1, largest=True, sorted=True).indices[:, 0]
    percent = (pred == target.to(pred.device)).sum().to(torch.float64) * (100.0 / target.size(0))
    if percent.device.type == "cpu" and not torch.compiler.is_compiling():
        return percent.item()
    return percent
