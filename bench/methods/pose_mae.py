"""Pose-MAE: the pose encoder after masked-autoencoder pre-training, probed linearly (the upper bound: it reads
the pose the EMG methods have to infer)."""

from bench.methods._mae import STEPS, MaeMethod

STEP = STEPS["pose"]


class Method(MaeMethod):
    modality = "pose"
    no_zero_shot = "pose input: the zero-shot task queries with EMG"
