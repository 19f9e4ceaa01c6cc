"""CPEP: Pose-MAE and EMG-MAE pre-training, then the EMG encoder (+ projection head) aligned to the frozen pose
encoder by a contrastive objective (align.objective). Zero-shot queries are the head's output against pose
embeddings of labelled references.

LP reads the EMG encoder's embedding, except with the EMG encoder frozen (align.train_emg = false), where it reads
the projection head's output: the part that ablation trains. Our reading of the paper: its frozen ablation's LP
(0.372 in-distribution) lies far below its EMG-MAE's (~0.55), which could not happen if that probe read the
unchanged EMG-MAE encoder; probing the encoder would repeat EMG-MAE's row by construction."""

from dataclasses import dataclass

from bench import plugins
from bench.methods import emg_mae, pose_mae
from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import Data, Train, param
from cpep.nn.config import MODEL, Embedding, EmgTokens, Mae, PoseTokens, ScheduleSection, check_tokens


@dataclass(frozen=True)
class Align(ScheduleSection):
    section = "align"
    batch_size: int = param(256, ">= 2", "the paper's batch: the negatives of each window")
    lr: float = param(5e-4, "> 0", "peak learning rate")
    objective: str = param("infonce", why="an objective plug-in (bench/objectives): the paper's symmetric InfoNCE")
    emg_init: str = param("mae", why="mae: the EMG encoder starts from EMG-MAE (the paper); random: from scratch "
                                     "(its ablation)", choices=("mae", "random"))
    train_emg: bool = param(True, why="false: the EMG encoder is frozen and only the projection head trains (an "
                                      "ablation)")
    train_pose: bool = param(False, why="the paper freezes the pose encoder; true trains both (joint training, "
                                        "which the paper reports diverges)")


OBJECTIVE = (("objective", "align.objective"),)


def aligned(cfg, data):
    """CPEP's model, its encoders sized by the configuration, scored by the configured objective."""
    from cpep.pretraining import Aligned, encoder
    pooling = Embedding.of(cfg).pooling
    objective = plugins.get("objective", Align.of(cfg).objective).configured(cfg)
    return Aligned(encoder("emg", cfg, data, pooling), encoder("pose", cfg, data, pooling), objective)


def build(ctx, cache_pose: bool = True):
    """The alignment's Training; `cache_pose` false runs the frozen pose encoder every step (the same weights, as
    tests and `cpep-bench perf` show)."""
    from cpep.pretraining import alignment_training, fraction_of, initialised
    cfg, a = ctx.cfg, Align.of(ctx.cfg)
    model = initialised(ctx.seeds, lambda: aligned(cfg, ctx.data))
    d, run = Data.of(cfg), Train.of(cfg)
    windows = fraction_of(ctx.data.selection("pretrain"), d.fraction, ctx.seeds.data)
    return alignment_training(model, ctx.inputs, a.train_emg, a.train_pose, EmgTokens.of(cfg).rotation_augment,
                              windows, a.batch_size, ctx.device, cache_pose, d.in_memory_gb * 1e9, run.workers)


SECTIONS = ("encoder", "embedding", "emg", "pose")
ALIGN = Step("align", build, schedule="align", sections=SECTIONS, inputs=("pose_mae", "emg_mae"), uses=OBJECTIVE,
             keys=("data.fraction",))
RANDOM_INIT_ALIGN = Step("align", build, schedule="align", sections=SECTIONS, inputs=("pose_mae",), uses=OBJECTIVE,
                         keys=("data.fraction",))


class Method(Base):
    config = MODEL + (Align,)
    sections = SECTIONS
    uses = OBJECTIVE

    def steps(self, cfg):
        if cfg["align"]["emg_init"] == "random":
            return (pose_mae.STEP, RANDOM_INIT_ALIGN)
        return (pose_mae.STEP, emg_mae.STEP, ALIGN)

    def validate(self, cfg):
        check_tokens(Data.of(cfg), EmgTokens.of(cfg), PoseTokens.of(cfg), Mae.of(cfg))
        plugins.path("objective", Align.of(cfg).objective)

    def embeddings(self, cfg, data, models):
        model = aligned(cfg, data)
        model.load_state_dict(models["align"])

        def query(batch):
            return model.emg_query(batch["emg"])

        def encoder(batch):
            return model.emg(batch["emg"])

        # one function for both when they read the same: the evaluation then embeds each selection once
        return Embeddings(model, lp=encoder if Align.of(cfg).train_emg else query, zs_query=query,
                          zs_reference=lambda batch: model.pose(batch["pose"]))
