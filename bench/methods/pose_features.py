"""Ceiling: a linear probe on summary features of the pose (cpep.features.pose_summary), the input the EMG methods
have to infer. Nothing is trained: the method has no training stage, and its evaluation computes the features of
each window, so the linear probe is the only thing fitted."""

from bench.methods._features import FeatureMethod


class Method(FeatureMethod):
    field, feature = "pose", "pose_summary"
    no_zero_shot = "pose input: the zero-shot task queries with EMG"
