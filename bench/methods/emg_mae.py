"""EMG-MAE: the EMG encoder after masked-autoencoder pre-training, probed linearly."""

from bench.methods._mae import STEPS, MaeMethod

STEP = STEPS["emg"]


class Method(MaeMethod):
    modality = "emg"
    no_zero_shot = "no pose-aligned EMG embedding"
