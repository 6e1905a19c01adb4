"""Temporal pooling encoders (SAP, TAP, MAX) and the final projection, shared by every model.

The parameters live directly on the model (`sap_linear`, `attention`, `fc`), because that is
where the original checkpoints keep them.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

ENCODERS = ("SAP", "TAP", "MAX")


class PooledEmbeddingModel(nn.Module):
    """Base class for networks that end in frame features (batch, channels, frames),
    pooled over time by `encoder_type` and projected to `nOut` dimensions."""

    def init_encoder(self, encoder_type, channels, nOut):
        if encoder_type not in ENCODERS:
            raise ValueError("Undefined encoder %r: valid encoder types are %s" % (encoder_type, ", ".join(ENCODERS)))
        self.encoder_type = encoder_type
        if encoder_type == "SAP":
            self.sap_linear = nn.Linear(channels, channels)
            self.attention = nn.Parameter(torch.empty(channels, 1))
            nn.init.xavier_normal_(self.attention)
        self.fc = nn.Linear(channels, nOut)

    def pool(self, frames):
        """(batch, channels, frames) -> (batch, channels)."""
        if self.encoder_type == "TAP":
            return frames.mean(dim=2)
        if self.encoder_type == "MAX":
            return frames.amax(dim=2)
        frames = frames.transpose(1, 2)  # (batch, frames, channels)
        weights = torch.matmul(torch.tanh(self.sap_linear(frames)), self.attention).squeeze(2)
        weights = F.softmax(weights, dim=1).unsqueeze(2)
        return torch.sum(frames * weights, dim=1)

    def embed(self, frames):
        return self.fc(self.pool(frames))
