"""The configuration sections of CPEP's models and schedules: the Transformer encoder, the tokens of each modality,
the window embedding, masked-autoencoder pre-training and the contrastive temperature. Kept apart from the models
so that planning a sweep reads them without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from cpep.config import Data, Section, param
from cpep.errors import ConfigError

MIN_TEMPERATURE = 0.01  # a contrastive temperature is kept in [0.01, 1], as in CLIP


@dataclass(frozen=True)
class Encoder(Section):
    section = "encoder"
    width: int = param(128, "> 0", "small enough to train the synthetic data in minutes on a CPU; the paper does "
                                   "not state its size (the paper-base perf size is 256)")
    depth: int = param(4, "> 0", "Transformer blocks")
    heads: int = param(4, "> 0", "attention heads; width must be a multiple")
    mlp_ratio: float = param(2.0, "> 0", "hidden width of each block's MLP over the width")

    def rules(self) -> None:
        if self.width % self.heads or self.width % 2:
            raise ConfigError(f"encoder.width ({self.width}) must be even and a multiple of encoder.heads "
                              f"({self.heads})")


@dataclass(frozen=True)
class Embedding(Section):
    section = "embedding"
    pooling: str = param("cls", why="the window embedding: the [CLS] token's output (the paper's) or the mean of "
                                    "the patch outputs (its AvgPool ablation)", choices=("cls", "mean"))


@dataclass(frozen=True)
class EmgTokens(Section):
    section = "emg"
    patch: int = param(200, "> 0", "samples per EMG token: 100 ms at 2 kHz, the paper's patch")
    bin: int = param(10, "> 0", "tokens embed the log-power envelope in bins of this many samples; 1 = raw samples")
    rotation_augment: int = param(1, ">= 0", "training rolls the electrode ring by up to this many channels "
                                             "(emg2pose's band-rotation augmentation)")

    def rules(self) -> None:
        if self.patch % self.bin:
            raise ConfigError(f"emg.bin ({self.bin}) must divide emg.patch ({self.patch})")


@dataclass(frozen=True)
class PoseTokens(Section):
    section = "pose"
    patch: int = param(200, "> 0", "samples per pose token before decimation: the same time as an EMG token")


@dataclass(frozen=True)
class ScheduleSection(Section):
    """A training stage's schedule: AdamW, linear warm-up then cosine decay."""
    epochs: int = param(40, "> 0", "enough for the synthetic data; the paper suite sets the paper's 100")
    batch_size: int = param(64, ">= 2", "windows per step")
    lr: float = param(1e-3, "> 0", "peak learning rate")
    weight_decay: float = param(0.05, ">= 0", "AdamW's, on weight matrices only")
    warmup_epochs: float = param(2.0, ">= 0", "linear warm-up before the cosine decay")


@dataclass(frozen=True)
class Mae(ScheduleSection):
    section = "mae"
    mask_ratio: float = param(0.5, "> 0, < 1", "the paper's 50 % of patches masked")
    decoder_width: int = param(64, "> 0", "a light decoder, as in MAE")
    decoder_depth: int = param(1, "> 0", "decoder blocks")
    decoder_heads: int = param(4, "> 0", "decoder attention heads")

    def rules(self) -> None:
        if self.decoder_width % self.decoder_heads or self.decoder_width % 2:
            raise ConfigError(f"mae.decoder_width ({self.decoder_width}) must be even and a multiple of "
                              f"mae.decoder_heads ({self.decoder_heads})")


@dataclass(frozen=True)
class Contrastive(Section):
    """What every contrastive objective's section holds: the temperature it starts the model at."""
    temperature: float = param(0.02, f">= {MIN_TEMPERATURE}, <= 1", "the paper's initial temperature; training "
                                                                    f"keeps it in [{MIN_TEMPERATURE}, 1], as CLIP")
    learn_temperature: bool = param(True, why="the paper learns it")


MODEL = (Encoder, Embedding, EmgTokens, PoseTokens, Mae)  # the sections of every method built on these encoders


def check_tokens(data: Data, emg: EmgTokens | None = None, pose: PoseTokens | None = None,
                 mae: Mae | None = None) -> None:
    """Patches that tile a window, and an MAE mask that leaves some of them visible and hides some."""
    for section, tokens in (("emg", emg), ("pose", pose)):
        if tokens is None:
            continue
        if data.window % tokens.patch:
            raise ConfigError(f"{section}.patch ({tokens.patch}) must divide data.window ({data.window})")
        if section == "pose" and tokens.patch % data.pose_decimation:
            raise ConfigError(f"pose.patch ({tokens.patch}) must be a multiple of data.pose_decimation")
        patches = data.window // tokens.patch
        if mae is not None and max(1, round(patches * (1.0 - mae.mask_ratio))) >= patches:
            raise ConfigError(f"mae.mask_ratio {mae.mask_ratio} masks none of a window's {patches} {section} "
                              f"patches: use more patches (a smaller {section}.patch) or a higher ratio")
