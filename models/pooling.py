"""Temporal pooling encoders and the final projection, shared by every model.

Two attention forms exist, both from the original trainers, and each model file picks one:

* PooledEmbeddingModel (ResNetSE34L, ResNetSE34, VGGVox): one attention score per frame from
  `sap_linear` and the `attention` vector (the 2020 SAP); ASP adds the weighted standard deviation
  to the weighted mean, as the 2021 ResNetSE34L did. TAP and MAX need no attention.
* ChannelAttentionEmbeddingModel (ResNetSE34V2): a small conv net (`attention.0/2/3`) gives each
  channel its own softmax weights over time (the 2021 ResNetSE34V2's SAP and ASP).

The parameters live directly on the model (`sap_linear`, `attention`, `fc`), because that is
where the original checkpoints keep them.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

ENCODERS = ("SAP", "TAP", "MAX", "ASP")
CHANNEL_ATTENTION_ENCODERS = ("SAP", "ASP")


def check_encoder(encoder_type, valid):
    if encoder_type not in valid:
        raise ValueError("Undefined encoder %r: valid encoder types are %s" % (encoder_type, ", ".join(valid)))


def weighted_statistics(x, weights, dim):
    """ASP: the attention-weighted mean and standard deviation over `dim`, concatenated along the
    feature axis. The variance is clamped at 1e-5, as the originals did, so that its square root
    keeps a finite gradient when a feature is constant."""
    mu = torch.sum(x * weights, dim=dim)
    sigma = torch.sqrt((torch.sum((x ** 2) * weights, dim=dim) - mu ** 2).clamp(min=1e-5))
    return torch.cat((mu, sigma), 1)


class PooledEmbeddingModel(nn.Module):
    """Base class for networks that end in frame features (batch, channels, frames),
    pooled over time by `encoder_type` and projected to `nOut` dimensions."""

    def init_encoder(self, encoder_type, channels, nOut):
        check_encoder(encoder_type, ENCODERS)
        self.encoder_type = encoder_type
        if encoder_type in ("SAP", "ASP"):
            self.sap_linear = nn.Linear(channels, channels)
            self.attention = nn.Parameter(torch.empty(channels, 1))
            nn.init.xavier_normal_(self.attention)
        self.fc = nn.Linear(channels * 2 if encoder_type == "ASP" else channels, nOut)

    def pool(self, frames):
        """(batch, channels, frames) -> (batch, channels), or (batch, 2 * channels) for ASP."""
        if self.encoder_type == "TAP":
            return frames.mean(dim=2)
        if self.encoder_type == "MAX":
            return frames.amax(dim=2)
        frames = frames.transpose(1, 2)  # (batch, frames, channels)
        weights = torch.matmul(torch.tanh(self.sap_linear(frames)), self.attention).squeeze(2)
        weights = F.softmax(weights, dim=1).unsqueeze(2)
        if self.encoder_type == "ASP":
            return weighted_statistics(frames, weights, dim=1)
        return torch.sum(frames * weights, dim=1)

    def embed(self, frames):
        return self.fc(self.pool(frames))


class ChannelAttentionEmbeddingModel(nn.Module):
    """Base class for networks whose frame features (batch, channels, frames) are pooled with
    per-channel attention weights (SAP: weighted mean; ASP: weighted mean and standard deviation)
    and projected to `nOut` dimensions."""

    def init_encoder(self, encoder_type, channels, nOut, bottleneck=128):
        check_encoder(encoder_type, CHANNEL_ATTENTION_ENCODERS)
        self.encoder_type = encoder_type
        # Created before `fc`, as in the 2021 model, so a seeded model starts from its weights.
        self.attention = nn.Sequential(
            nn.Conv1d(channels, bottleneck, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(bottleneck),
            nn.Conv1d(bottleneck, channels, kernel_size=1),
            nn.Softmax(dim=2),
        )
        self.fc = nn.Linear(channels * 2 if encoder_type == "ASP" else channels, nOut)

    def pool(self, frames):
        weights = self.attention(frames)
        if self.encoder_type == "ASP":
            return weighted_statistics(frames, weights, dim=2)
        return torch.sum(frames * weights, dim=2)

    def embed(self, frames):
        return self.fc(self.pool(frames))
