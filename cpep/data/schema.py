"""The emg2pose on-disk format: one HDF5 file per session x stage x hand, plus metadata.csv."""

import numpy as np

GROUP = "emg2pose"
TIMESERIES = "timeseries"
SAMPLE_RATE = 2000.0
NUM_CHANNELS = 16
NUM_JOINTS = 20

TIMESERIES_DTYPE = np.dtype(
    [("time", "<f8"), ("joint_angles", "<f8", (NUM_JOINTS,)), ("emg", "<f4", (NUM_CHANNELS,))]
)
GROUP_ATTRS = ("filename", "session", "stage", "user", "side", "start", "end", "num_channels", "sample_rate")
METADATA_COLUMNS = (
    "filename", "user", "session", "stage", "side", "moving_hand",
    "held_out_user", "held_out_stage", "split", "generalization",
)

JOINT_NAMES = (
    "THUMB_CMC_FE", "THUMB_CMC_AA", "THUMB_MCP_FE", "THUMB_IP_FE",
    "INDEX_MCP_AA", "INDEX_MCP_FE", "INDEX_PIP_FE", "INDEX_DIP_FE",
    "MIDDLE_MCP_AA", "MIDDLE_MCP_FE", "MIDDLE_PIP_FE", "MIDDLE_DIP_FE",
    "RING_MCP_AA", "RING_MCP_FE", "RING_PIP_FE", "RING_DIP_FE",
    "PINKY_MCP_AA", "PINKY_MCP_FE", "PINKY_PIP_FE", "PINKY_DIP_FE",
)
# Radians, from the generic hand model shipped with emg2pose (UmeTrack), in JOINT_NAMES order.
JOINT_LIMITS = np.array([
    [-0.787, 1.287], [-0.612, 0.612], [0.0, 1.287], [-0.259, 1.087],
    [-0.337, 0.487], [-0.287, 1.337], [0.0, 1.882], [0.0, 1.434],
    [-0.487, 0.287], [-0.287, 1.437], [0.0, 1.882], [0.0, 1.434],
    [-0.287, 0.287], [-0.287, 1.537], [0.0, 1.882], [0.0, 1.434],
    [-0.687, 0.487], [-0.487, 1.637], [0.0, 1.882], [0.0, 1.434],
])
