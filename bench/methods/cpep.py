"""CPEP: Pose-MAE and EMG-MAE pre-training, then the EMG encoder (+ projection head) aligned to the frozen pose
encoder by a contrastive objective (align.objective). Zero-shot queries are the head's output against pose
embeddings of labelled references.

LP reads the EMG encoder's embedding, except with the EMG encoder frozen (align.train_emg = false), where it reads
the projection head's output: the part that ablation trains. Our reading of the paper: its frozen ablation's LP
(0.372 in-distribution) lies far below its EMG-MAE's (~0.55), which could not happen if that probe read the
unchanged EMG-MAE encoder; probing the encoder would repeat EMG-MAE's row by construction."""

from bench.methods import emg_mae, pose_mae
from bench.plugins import Embeddings, Step
from bench.plugins import Method as Base
from cpep.config import MIN_TEMPERATURE, check_bounds
from cpep.errors import ConfigError


def train(ctx):
    from bench import plugins
    from cpep import pretraining
    return pretraining.align(ctx, plugins.get("objective", ctx.cfg["align"]["objective"]))


ALIGN = Step("align", sections=("encoder", "embedding", "emg", "pose", "align"), train=train,
             inputs=("pose_mae", "emg_mae"), epochs="align", uses=(("objective", "align.objective"),),
             keys=("data.fraction",))
RANDOM_INIT_ALIGN = Step("align", sections=ALIGN.sections, train=train, inputs=("pose_mae",), epochs="align",
                         uses=ALIGN.uses, keys=ALIGN.keys)

BOUNDS = {"align.epochs": "> 0", "align.batch_size": ">= 2", "align.lr": "> 0", "align.weight_decay": ">= 0",
          "align.warmup_epochs": ">= 0"}


class Method(Base):
    defaults = {"align": {
        "epochs": 40, "batch_size": 256, "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 2.0,
        "objective": "infonce",   # an objective plug-in (bench/objectives)
        "temperature": 0.02, "learn_temperature": True,
        "emg_init": "mae",        # "mae": start from the EMG-MAE encoder; "random": from scratch
        "train_emg": True,        # False: EMG encoder frozen, only the projection head trains
        "train_pose": False,      # True: joint training, the pose encoder is not frozen
    }}

    def steps(self, cfg):
        if cfg["align"]["emg_init"] == "random":
            return (pose_mae.STEP, RANDOM_INIT_ALIGN)
        return (pose_mae.STEP, emg_mae.STEP, ALIGN)

    def validate(self, cfg):
        from bench import plugins
        a = cfg["align"]
        if a["emg_init"] not in ("mae", "random"):
            raise ConfigError("align.emg_init must be 'mae' or 'random'")
        check_bounds(cfg, BOUNDS)
        if not MIN_TEMPERATURE <= a["temperature"] <= 1.0:
            raise ConfigError(f"align.temperature must be in [{MIN_TEMPERATURE:g}, 1], where training keeps it")
        plugins.path("objective", a["objective"])

    def embeddings(self, cfg, data, models):
        from bench import plugins
        from cpep.pretraining import Aligned
        model = Aligned(cfg, data, plugins.get("objective", cfg["align"]["objective"]))
        model.load_state_dict(models["align"])

        def query(batch):
            return model.emg_query(batch["emg"])

        def encoder(batch):
            return model.emg(batch["emg"])

        # one function for both when they read the same: the evaluation then embeds each selection once
        return Embeddings(model, lp=encoder if cfg["align"]["train_emg"] else query, zs_query=query,
                          zs_reference=lambda batch: model.pose(batch["pose"]))
