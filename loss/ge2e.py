import torch
import torch.nn as nn
import torch.nn.functional as F

from loss.accuracy import top1_accuracy


class LossFunction(nn.Module):
    """Generalised end-to-end loss (Wan et al.), softmax variant.

    x: (nSpeakers, nPerSpeaker, nOut). Each utterance is scored against every
    speaker centroid; its own speaker's centroid leaves the utterance out.
    """

    train_normalize = True
    test_normalize = True

    def __init__(self, init_w=10.0, init_b=-5.0, **kwargs):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(init_w))
        self.b = nn.Parameter(torch.tensor(init_b))

    def forward(self, x, label=None):
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            n_spk, n_utt, _ = x.shape
            assert n_utt >= 2, "GE2E needs at least 2 utterances per speaker"

            centroids = x.mean(dim=1)                                   # (N, D)
            own_centroids = (x.sum(dim=1, keepdim=True) - x) / (n_utt - 1)  # (N, M, D)

            cos_all = F.cosine_similarity(x.unsqueeze(2), centroids[None, None], dim=-1)  # (N, M, N)
            cos_own = F.cosine_similarity(x, own_centroids, dim=-1)                       # (N, M)
            is_own = torch.eye(n_spk, dtype=torch.bool, device=x.device).unsqueeze(1)    # (N, 1, N)
            cos = torch.where(is_own, cos_own.unsqueeze(2), cos_all).clamp(min=1e-6)

            # The original computed clamp(w, 1e-6) but discarded it, so w is used unclamped.
            logits = (cos * self.w + self.b).reshape(n_spk * n_utt, n_spk)
            target = torch.arange(n_spk, device=x.device).repeat_interleave(n_utt)
            loss = F.cross_entropy(logits, target)
        return loss, top1_accuracy(logits, target)
