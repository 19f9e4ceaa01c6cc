"""The emg2pose-style supervised baseline: a TDS convolutional featurizer with an MLP pose decoder.

The featurizer follows emg2pose's `TdsNetwork`: two strided Conv1d blocks (16 -> width, kernel 11 stride 5;
kernel 5 stride 2), then two TDS stages (an input Conv1d, kernel 17 stride 4 / kernel 9 stride 2, then two blocks
of a (1 x k) channel-wise Conv2d and a fully connected block, each residual with LayerNorm; k = 9 / 5) and a
Linear to `features`. Total stride 80 (25 Hz frames), 1,790 samples of left context. emg2pose uses width 256;
the width is configurable so the laptop suites stay small. The decoder maps each frame to the 20 joint angles
at the frame's last sample (position regression; emg2pose's MLP variant also feeds back the previous pose,
which needs a ground-truth initial state, so it is left out here). Linear probes read the frames' mean.
"""

from __future__ import annotations

import torch
from torch import nn

TDS_GROUPS = 16  # emg2pose's `channels`: the feature vector is viewed as 16 groups x (width / 16)


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x):  # (B, C, T)
        return self.norm(torch.relu(self.conv(x)).transpose(1, 2)).transpose(1, 2)


class TdsConv(nn.Module):
    def __init__(self, width: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(TDS_GROUPS, TDS_GROUPS, (1, kernel))
        self.norm = nn.LayerNorm(width)

    def forward(self, x):  # (B, C, T)
        b, c, t = x.shape
        y = torch.relu(self.conv(x.reshape(b, TDS_GROUPS, c // TDS_GROUPS, t))).reshape(b, c, -1)
        y = y + x[..., self.kernel - 1:]  # residual, cropped to the valid convolution
        return self.norm(y.transpose(1, 2)).transpose(1, 2)


class TdsFullyConnected(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)

    def forward(self, x):  # (B, C, T)
        y = x.transpose(1, 2)
        return self.norm(y + self.fc(y)).transpose(1, 2)


def tds_stage(width: int, kernel_in: int, stride_in: int, kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = [ConvBlock(width, width, kernel_in, stride_in)]
    for _ in range(2):
        layers += [TdsConv(width, kernel), TdsFullyConnected(width)]
    return nn.Sequential(*layers)


class TdsFeaturizer(nn.Module):
    stride = 80
    left_context = 1790

    def __init__(self, in_channels: int = 16, width: int = 256, features: int = 64):
        super().__init__()
        if width % TDS_GROUPS:
            raise ValueError(f"TDS width must be a multiple of {TDS_GROUPS}")
        self.net = nn.Sequential(
            ConvBlock(in_channels, width, 11, 5), ConvBlock(width, width, 5, 2),
            tds_stage(width, 17, 4, 9), tds_stage(width, 9, 2, 5),
        )
        self.out = nn.Linear(width, features)

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        """(B, 16, T) -> (B, frames, features), one frame per 80 samples after the first 1,790."""
        return self.out(self.net(emg).transpose(1, 2))


class Emg2PoseRegressor(nn.Module):
    def __init__(self, window: int, pose_decimation: int, width: int, features: int, hidden: int,
                 channels: int = 16, joints: int = 20):
        super().__init__()
        if window <= TdsFeaturizer.left_context:
            raise ValueError(f"the TDS featurizer needs windows longer than {TdsFeaturizer.left_context} samples")
        self.featurizer = TdsFeaturizer(channels, width, features)
        self.decoder = nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden),
                                     nn.LeakyReLU(), nn.Linear(hidden, joints))
        frames = (window - TdsFeaturizer.left_context - 1) // TdsFeaturizer.stride + 1
        last_sample = TdsFeaturizer.left_context + TdsFeaturizer.stride * torch.arange(frames)
        self.register_buffer("target_index", last_sample // pose_decimation, persistent=False)

    def embed(self, emg: torch.Tensor) -> torch.Tensor:
        return self.featurizer(emg).mean(dim=1)

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        """Predicted pose at each frame's last sample: (B, joints, frames)."""
        return self.decoder(self.featurizer(emg)).transpose(1, 2)

    def target(self, pose: torch.Tensor) -> torch.Tensor:
        return pose[..., self.target_index]
