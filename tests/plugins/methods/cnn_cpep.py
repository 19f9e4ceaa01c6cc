"""CPEP with a convolutional EMG encoder: a method added as one file, with a configuration section and an encoder
of its own. Its EMG encoder (a strided stem and a few 1-D convolutions, averaged over time) is aligned, through a
projection head, to the frozen pose encoder of the built-in Pose-MAE stage, which it shares with every CPEP variant
of the same seed. The rest is the library's: the alignment's Training, the objective plug-ins, the training loop.

    [[variants]]
    name = "cnn"
    method = "cnn_cpep"
    set = { "cnn.kernel" = 5 }
"""

from dataclasses import dataclass

from bench import plugins
from bench.methods import pose_mae
from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import Data, Train, param
from cpep.nn.config import EmgTokens, ScheduleSection


@dataclass(frozen=True)
class Cnn(ScheduleSection):
    """The method's own section (`--set cnn.kernel=5`): its encoder, its objective and its schedule. Defined in
    this file, so its stages see it, and their keys hold it, without naming it anywhere."""
    section = "cnn"
    batch_size: int = param(256, ">= 2", "the negatives of each window, as CPEP's")
    lr: float = param(5e-4, "> 0", "as CPEP's alignment")
    width: int = param(64, "> 0", "channels of every convolution: the embedding's size")
    kernel: int = param(9, "> 0", "samples each convolution sees, after the stride-4 stem")
    layers: int = param(2, "> 0", "convolutions after the stem")
    objective: str = param("infonce", why="an objective plug-in, as align.objective")


def emg_encoder(cfg, data):
    """EMG (B, C, T) -> (B, width)."""
    from torch import nn
    c = Cnn.of(cfg)
    layers = [nn.Conv1d(data.channels, c.width, 8, stride=4), nn.GELU()]
    for _ in range(c.layers):
        layers += [nn.Conv1d(c.width, c.width, c.kernel, padding=c.kernel // 2), nn.GELU()]
    encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
    encoder.width = c.width  # what the projection head maps from
    return encoder


def aligned(cfg, data):
    """The CNN and the Pose-MAE's encoder, scored by the configured objective."""
    from cpep.pretraining import Aligned, encoder
    objective = plugins.get("objective", Cnn.of(cfg).objective).configured(cfg)
    return Aligned(emg_encoder(cfg, data), encoder("pose", cfg, data), objective)


def build(ctx):
    """The alignment's Training: the CNN starts at random, the pose encoder from the Pose-MAE stage, frozen."""
    from cpep.pretraining import alignment_training, initialised
    cfg = ctx.cfg
    model = initialised(ctx.seeds, lambda: aligned(cfg, ctx.data))
    return alignment_training(model, ctx.inputs, train_emg=True, train_pose=False,
                              rotation_augment=EmgTokens.of(cfg).rotation_augment,
                              windows=ctx.data.selection("pretrain"), batch_size=Cnn.of(cfg).batch_size,
                              device=ctx.device, in_memory_bytes=Data.of(cfg).in_memory_gb * 1e9,
                              workers=Train.of(cfg).workers)


SECTIONS = ("encoder", "pose", "emg")  # shared ones it reads: the pose encoder's size, the EMG augmentation
OBJECTIVE = (("objective", "cnn.objective"),)
STEP = Step("cnn_align", build, schedule="cnn", sections=SECTIONS, inputs=("pose_mae",), uses=OBJECTIVE)


class Method(Base):
    config = (Cnn,)
    sections = SECTIONS
    uses = OBJECTIVE

    def steps(self, cfg):
        return (pose_mae.STEP, STEP)

    def embeddings(self, cfg, data, models):
        model = aligned(cfg, data)
        model.load_state_dict(models["cnn_align"])
        return Embeddings(model, lp=lambda batch: model.emg(batch["emg"]),
                          zs_query=lambda batch: model.emg_query(batch["emg"]),
                          zs_reference=lambda batch: model.pose(batch["pose"]))
