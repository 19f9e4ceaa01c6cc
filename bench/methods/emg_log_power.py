"""Floor: a linear probe on EMG log-power features (cpep.features.emg_log_power), the classic amplitude features
of EMG gesture recognition. Nothing is trained: the method has no training stage, and its evaluation computes the
features of each window, so the linear probe is the only thing fitted. A learned EMG method should beat it."""

from bench.methods._features import FeatureMethod


class Method(FeatureMethod):
    field, feature = "emg", "emg_log_power"
    no_zero_shot = "no pose-aligned EMG embedding"
