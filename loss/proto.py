import torch
import torch.nn.functional as F

from loss.base import SpeakerLoss


def query_and_prototypes(x):
    """For x of shape (speakers, utterances, nOut): each speaker's first utterance, and the mean of the rest."""
    assert x.size(1) >= 2, "prototypical losses need at least 2 utterances per speaker"
    return x[:, 0, :], x[:, 1:, :].mean(dim=1)


class LossFunction(SpeakerLoss):
    """Prototypical loss: the first utterance of each speaker is the query, the
    mean of the rest is the prototype, logits are negative squared distances."""

    train_normalize = False
    test_normalize = False

    def forward_fp32(self, x, label):
        query, prototype = query_and_prototypes(x)
        # pairwise_distance adds eps=1e-6 to the difference, as the original did.
        logits = -F.pairwise_distance(query.unsqueeze(1), prototype.unsqueeze(0)) ** 2
        return self.cross_entropy_top1(logits, torch.arange(x.size(0), device=x.device))
