"""emg2pose's released models as EMG encoders: the TDS featurizer of a checkpoint, loaded into baselines.tds.

emg2pose (facebookresearch/emg2pose) trains a `TdsNetwork` inside a pose module (`network`) inside a Lightning
module (`model`), so its checkpoints name the featurizer's weights `model.network.layers.0.conv.0.weight` and so
on; a pose module's or the bare network's state dict drops the leading parts. The names map one to one onto
TdsFeaturizer's (NAMES below); the widths are read off the weights, and anything else under the featurizer's names
(a third TDS block, a missing output projection) is refused rather than guessed.

What its models expect of the EMG, checked against the dataset by `expectations`: the channels its first
convolution reads (16), 2 kHz (emg2pose's EMG_SAMPLE_RATE), EMG as recorded (no normalisation: the reader's
per-channel RMS scaling is undone, and a protocol that standardises each window is refused), and windows longer
than the featurizer's 1,790 samples of left context.

Checkpoints are read without running their pickled code: tensors and containers load, and any other object (the
Hydra configuration a Lightning checkpoint keeps) loads as an inert placeholder.
"""

from __future__ import annotations

import pickle
import re
import types
from pathlib import Path

import torch

from baselines.tds import TdsFeaturizer
from cpep.errors import UserError

SAMPLE_RATE = 2000.0  # emg2pose.constants.EMG_SAMPLE_RATE
FIRST = "layers.0.conv.0.weight"  # the first convolution's weight: where the featurizer's names start

# emg2pose's TdsNetwork names (after the prefix) -> TdsFeaturizer's. `layers` holds two Conv1dBlocks (conv.0 is
# their convolution), then two TdsStages, each a Conv1dBlock and a TDSConvEncoder whose blocks alternate
# TDSConv2dBlock and TDSFullyConnectedBlock (here 1 + i after the stage's convolution); the second stage's
# linear_layer is the output projection.
PARTS = {"conv.0": "conv", "norm": "norm", "conv2d": "conv", "layer_norm": "norm", "fc_block.0": "fc.0",
         "fc_block.2": "fc.2"}
NAMES = [
    (r"layers\.([01])\.(conv\.0|norm)\.(weight|bias)", lambda m: f"net.{m[1]}.{PARTS[m[2]]}.{m[3]}"),
    (r"layers\.([23])\.layers\.conv1dblock\.(conv\.0|norm)\.(weight|bias)",
     lambda m: f"net.{m[1]}.0.{PARTS[m[2]]}.{m[3]}"),
    (r"layers\.([23])\.layers\.tds_block\.tds_conv_blocks\.(\d+)\.(conv2d|layer_norm|fc_block\.[02])\.(weight|bias)",
     lambda m: f"net.{m[1]}.{1 + int(m[2])}.{PARTS[m[3]]}.{m[4]}"),
    (r"layers\.3\.linear_layer\.(weight|bias)", lambda m: f"out.{m[1]}"),
]


def _ours(name: str) -> str | None:
    """TdsFeaturizer's name for one of emg2pose's TdsNetwork names; None for a name it has no place for."""
    for pattern, target in NAMES:
        found = re.fullmatch(pattern, name)
        if found:
            return target(found)
    return None


class _Opaque:
    """Whatever a checkpoint pickles besides tensors and containers: built, filled and ignored, never run."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        from torch._weights_only_unpickler import _get_allowed_globals  # what torch itself loads as plain data
        allowed = _get_allowed_globals()
        if f"{module}.{name}" in allowed:
            return allowed[f"{module}.{name}"]
        return type(name, (_Opaque,), {"__module__": module})


_PICKLE = types.SimpleNamespace(Unpickler=_Unpickler, load=lambda f, **kw: _Unpickler(f, **kw).load(),
                                __name__="inert_pickle")


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a Lightning checkpoint's `state_dict`, or the state dict the file holds."""
    try:
        found = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_PICKLE)
    except Exception as e:
        raise UserError(f"{path}: not a torch checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    found = found.get("state_dict", found) if isinstance(found, dict) else None
    if not isinstance(found, dict) or not all(isinstance(v, torch.Tensor) for v in found.values()):
        raise UserError(f"{path}: holds no state dict (a dict of tensors, or a Lightning checkpoint's state_dict)")
    return found


def is_checkpoint(weights: dict) -> bool:
    return any(name.endswith(FIRST) for name in weights)


def featurizer(path: Path) -> TdsFeaturizer:
    """The TDS featurizer of an emg2pose checkpoint, its widths read off the weights."""
    weights = state_dict(path)
    prefixes = sorted({name[:-len(FIRST)] for name in weights if name.endswith(FIRST)})
    if len(prefixes) != 1:
        found = ", ".join(p + FIRST for p in prefixes) or "none"
        raise UserError(f"{path}: not one emg2pose TDS featurizer (its first convolution, *{FIRST}: {found})")
    prefix = prefixes[0]
    mine = {}
    for name, tensor in weights.items():
        if not name.startswith(prefix) or not name[len(prefix):].startswith("layers."):
            continue  # the pose decoder and whatever else the checkpoint holds
        ours = _ours(name[len(prefix):])
        if ours is None:
            raise UserError(f"{path}: {name} has no place in emg2pose's TDS featurizer as baselines/tds.py builds "
                            f"it (two conv blocks, two TDS stages of two blocks, an output projection)")
        mine[ours] = tensor
    first, out = mine["net.0.conv.weight"], mine.get("out.weight")
    if out is None:
        raise UserError(f"{path}: its TDS featurizer has no output projection ({prefix}layers.3.linear_layer)")
    model = TdsFeaturizer(in_channels=first.shape[1], width=first.shape[0], features=out.shape[0])
    try:
        model.load_state_dict(mine)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise UserError(f"{path}: its TDS featurizer differs from emg2pose's published one: {detail}") from None
    return model


def expectations(model: TdsFeaturizer, channels: int, sample_rate: float, window: int, per_window: bool) -> str:
    """What the featurizer expects of the EMG, checked against the dataset's; its description when they agree."""
    needs = model.net[0].conv.in_channels
    if channels != needs:
        raise UserError(f"the emg2pose checkpoint reads {needs} EMG channels; this dataset has {channels}")
    if sample_rate != SAMPLE_RATE:
        raise UserError(f"the emg2pose checkpoint reads EMG at {SAMPLE_RATE:g} Hz; this dataset's is {sample_rate:g}")
    if per_window:
        raise UserError("the emg2pose checkpoint reads EMG as recorded; this data protocol standardises each "
                        "window, which cannot be undone (use data.protocol=default)")
    if window <= model.left_context:
        raise UserError(f"the emg2pose checkpoint's featurizer needs windows longer than {model.left_context} "
                        f"samples; data.window is {window}")
    return (f"emg2pose TDS featurizer (width {model.net[0].conv.out_channels}, {model.out.out_features} features "
            f"per 80-sample frame): {needs} channels at {SAMPLE_RATE:g} Hz, EMG as recorded (the reader's "
            f"per-channel RMS scaling undone), {model.left_context} samples of left context, the mean of its "
            f"{(window - model.left_context - 1) // model.stride + 1} frames per window")


class Emg2PoseEmbedding(torch.nn.Module):
    """EMG as the reader gives it (B, C, T), over each channel's RMS -> the featurizer's frames on the recorded
    EMG, averaged (B, features): the embedding baselines.tds's Emg2PoseRegressor.embed reads."""

    def __init__(self, model: TdsFeaturizer, rms: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("rms", rms.reshape(1, -1, 1).float())

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        return self.model(emg * self.rms).mean(dim=1)
