"""ReDimNet2's building blocks (wespeaker/models/redimnet2.py at dfa7419), only the kinds its
published B0-B6 configurations build: the 2D depthwise residual block ("basic_resnet", no SE),
the 1D time-context block ("conv+att": four depthwise ConvNeXt-like convolutions and one
post-norm transformer layer) and the learned softmax mix of feature maps. Submodule names are
WeSpeaker's, so its state_dict keys are these modules' keys.

The network keeps one tensor layout between stages, (batch, channels x freqs, frames) with the
frequency index outer ("1D"), and reshapes to (batch, channels, freqs, frames) ("2D") where a
stage convolves in two dimensions."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NORM_EPS = 1e-6
ATTENTION_HEADS = 4
# The depthwise kernels of the four ConvNeXt-like blocks of every time-context block.
TIME_CONTEXT_KERNELS = (7, 19, 31, 59)


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dimension 1 of a (batch, channels, ...) tensor, computed as WeSpeaker does."""

    def __init__(self, channels, eps=NORM_EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        shape = (-1,) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


class To1d(nn.Module):
    """(batch, channels, freqs, frames) -> (batch, freqs x channels, frames), frequency outer."""

    def forward(self, x):
        return x.permute(0, 2, 1, 3).flatten(1, 2)


class To2d(nn.Module):
    def __init__(self, freqs, channels):
        super().__init__()
        self.freqs, self.channels = freqs, channels

    def forward(self, x):
        return x.reshape(x.shape[0], self.freqs, self.channels, -1).permute(0, 2, 1, 3)


class FeatureMapWeights(nn.Module):
    """A softmax-weighted sum of the feature maps so far, one weight per map and channel (`w`:
    (1, maps, channels, 1)). A single map has its weight frozen, as in WeSpeaker."""

    def __init__(self, maps, channels):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, maps, channels, 1), requires_grad=maps > 1)

    def forward(self, feature_maps):
        weights = F.softmax(self.w, dim=1)
        return (weights * torch.stack(feature_maps, dim=1)).sum(dim=1)


class DepthwiseResBlock(nn.Module):
    """Two depthwise 3x3 + pointwise convolutions, conv -> ReLU -> BatchNorm first, then conv ->
    BatchNorm, the input added before the last ReLU (WeSpeaker's ResBasicBlock with Gdiv 1)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False, groups=channels)
        self.conv1pw = nn.Conv2d(channels, channels, 1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False, groups=channels)
        self.conv2pw = nn.Conv2d(channels, channels, 1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.bn1(F.relu(self.conv1pw(self.conv1(x))))
        out = self.bn2(self.conv2pw(self.conv2(out)))
        return F.relu(out + x)


class ConvBlock2d(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv_block = DepthwiseResBlock(channels)

    def forward(self, x):
        return self.conv_block(x)


class ConvNeXtLikeBlock1d(nn.Module):
    """x + pointwise(GELU(BatchNorm(depthwise(x)))), the depthwise conv 'same'-padded."""

    def __init__(self, channels, kernel_size):
        super().__init__()
        self.dwconvs = nn.ModuleList([nn.Conv1d(channels, channels, kernel_size, padding="same", groups=channels)])
        self.norm = nn.BatchNorm1d(channels)
        self.pwconv1 = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        return x + self.pwconv1(F.gelu(self.norm(self.dwconvs[0](x))))


class MultiHeadAttention(nn.Module):
    def __init__(self, dim, heads=ATTENTION_HEADS):
        super().__init__()
        self.heads, self.scaling = heads, (dim // heads) ** -0.5
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split_heads(self, x):
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def forward(self, x):
        """(batch, frames, dim) -> (batch, frames, dim)."""
        query = self.split_heads(self.q_proj(x) * self.scaling)
        key, value = self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))
        attention = F.softmax(torch.matmul(query, key.transpose(2, 3)), dim=-1)
        out = torch.matmul(attention, value).transpose(1, 2).flatten(2)
        return self.out_proj(out)


def gelu_tanh(x):
    """The tanh approximation of GELU (WeSpeaker's 'gelu_new'), written out for the exporters."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.output_dense = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.output_dense(gelu_tanh(self.intermediate_dense(x)))


class TransformerEncoderLayer(nn.Module):
    """Post-norm: LN(x + attention(x)), then LN(y + feed_forward(y)); (batch, dim, frames) in and out."""

    def __init__(self, dim):
        super().__init__()
        self.attention = MultiHeadAttention(dim)
        self.layer_norm = nn.LayerNorm(dim, eps=NORM_EPS)
        self.feed_forward = FeedForward(dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=NORM_EPS)

    def forward(self, x):
        x = x.transpose(1, 2)
        x = self.layer_norm(x + self.attention(x))
        x = self.final_layer_norm(x + self.feed_forward(x))
        return x.transpose(1, 2)


class TimeContextBlock1d(nn.Module):
    """x + expand(context(reduce(x))): the channels reduced to `hidden`, four ConvNeXt-like blocks
    and a transformer layer over time, expanded back."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.red_dim_conv = nn.Sequential(nn.Conv1d(channels, hidden, 1), ChannelsFirstLayerNorm(hidden))
        self.tcm = nn.Sequential(*[ConvNeXtLikeBlock1d(hidden, kernel) for kernel in TIME_CONTEXT_KERNELS],
                                 TransformerEncoderLayer(hidden))
        self.exp_dim_conv = nn.Conv1d(hidden, channels, 1)

    def forward(self, x):
        return x + self.exp_dim_conv(self.tcm(self.red_dim_conv(x)))


class Stage(nn.Sequential):
    """A sequence whose first module (FeatureMapWeights) takes the list of earlier feature maps."""

    def forward(self, feature_maps):
        modules = list(self)
        x = modules[0](feature_maps)
        for module in modules[1:]:
            x = module(x)
        return x
