"""Window features computed without learning: the reference points every learned method is compared against.

EMG log-power: per channel, the mean and the spread over the window of the log power in 50 ms bins (the classic
amplitude features of EMG gesture recognition). Pose summary: per joint, the mean and the spread of the angle over
the window. Both read batches as the training stages do (normalised EMG (B, C, W), pose (B, J, W / decimation)).
"""

from __future__ import annotations

import torch

EMG_BIN = 100  # samples per power bin (50 ms at 2 kHz)


def emg_log_power(emg: torch.Tensor, bin_samples: int = EMG_BIN) -> torch.Tensor:
    """(B, 2C): per channel, mean and standard deviation over bins of log mean power."""
    b, c, w = emg.shape
    usable = w // bin_samples * bin_samples
    if usable == 0:
        raise ValueError(f"a window of {w} samples is shorter than one power bin ({bin_samples})")
    power = emg[..., :usable].float().reshape(b, c, -1, bin_samples).square().mean(-1)
    log_power = torch.log(power + 1e-6)
    return torch.cat([log_power.mean(-1), log_power.std(-1, unbiased=False)], dim=1)


def pose_summary(pose: torch.Tensor) -> torch.Tensor:
    """(B, 2J): per joint, mean and standard deviation of the angle over the window."""
    pose = pose.float()
    return torch.cat([pose.mean(-1), pose.std(-1, unbiased=False)], dim=1)
