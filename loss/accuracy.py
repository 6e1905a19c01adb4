import torch


def top1_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Percentage of rows whose highest logit is the target class.

    Uses topk rather than argmax so ties break the same way as the original
    `accuracy(output, target, topk=(1,))`.
    """
    pred = logits.detach().topk(1, dim=1, largest=True, sorted=True).indices[:, 0]
    correct = (pred == target.to(pred.device)).sum().item()
    return correct * (100.0 / target.size(0))
