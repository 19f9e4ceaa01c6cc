"""The configuration section the supervised baselines share: their training schedule. Kept apart from the models
so that planning a sweep reads it without importing torch."""

from dataclasses import dataclass

from cpep.nn.config import ScheduleSection


@dataclass(frozen=True)
class Supervised(ScheduleSection):
    """Pose regression from EMG on the pre-training windows (PoseT and the TDS baseline)."""
    section = "supervised"
