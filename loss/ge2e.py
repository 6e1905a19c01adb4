import torch
import torch.nn.functional as F

from loss.base import LearntCosineScale


class LossFunction(LearntCosineScale):
    """Generalised end-to-end loss (Wan et al.), softmax variant.

    x: (nSpeakers, nPerSpeaker, nOut). Each utterance is scored against every
    speaker centroid; its own speaker's centroid leaves the utterance out.
    """

    def forward_fp32(self, x, label):
        n_spk, n_utt, _ = x.shape
        assert n_utt >= 2, "GE2E needs at least 2 utterances per speaker"

        centroids = x.mean(dim=1)                                       # (N, D)
        own_centroids = (x.sum(dim=1, keepdim=True) - x) / (n_utt - 1)  # (N, M, D)

        cos_all = F.cosine_similarity(x.unsqueeze(2), centroids[None, None], dim=-1)  # (N, M, N)
        cos_own = F.cosine_similarity(x, own_centroids, dim=-1)                       # (N, M)
        is_own = torch.eye(n_spk, dtype=torch.bool, device=x.device).unsqueeze(1)    # (N, 1, N)
        cos = torch.where(is_own, cos_own.unsqueeze(2), cos_all).clamp(min=1e-6)

        logits = self.cosine_logits(cos).reshape(n_spk * n_utt, n_spk)
        target = torch.arange(n_spk, device=x.device).repeat_interleave(n_utt)
        return self.cross_entropy_top1(logits, target)
