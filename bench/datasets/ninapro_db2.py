"""NinaPro DB2 (Atzori et al. 2014; Pizzolato et al. 2017): 40 subjects, one .mat file per subject and exercise
(S<n>_E<e>_A1.mat, MATLAB v5 or v7.3) anywhere under data.root; 12 EMG channels at 2 kHz, and the 22 raw glove
sensors as the pose. Its identity is each file's path, size and modification time, with the movements
pre-training reads (those the gesture vocabulary names in-distribution) and the split (data.ninapro: within or
across subjects, cpep.data.ninapro_windows)."""

from pathlib import Path

from bench.datasets._on_disk import OnDisk
from cpep.data.ninapro import CHANNELS, GLOVE, SAMPLE_RATE, Split, files_identity, vocab_movements
from cpep.errors import ConfigError


class Dataset(OnDisk):
    config = (Split,)
    vocab = "ninapro-db2-v1"
    channels = CHANNELS
    pose_dims = GLOVE
    sample_rate = SAMPLE_RATE
    per_user = True

    def identity(self, cfg):
        from cpep.data.gestures import load_vocab
        d = cfg["data"]
        return {"name": self.name, "window": d["window"], "stride": d["stride"],
                "pose_decimation": d["pose_decimation"],
                "pretrain_movements": sorted(vocab_movements(load_vocab(d["vocab"]), "id")),
                "split": Split.of(cfg).identity(), "files": files_identity(Path(d["root"]))}

    def validate(self, cfg):
        super().validate(cfg)
        if cfg["data"]["protocol"] != "default":
            raise ConfigError(f"data.protocol={cfg['data']['protocol']} is a reading of emg2pose; the ninapro_db2 "
                              f"dataset is read with the default protocol only (its split is data.ninapro.split)")
        Split.of(cfg)

    def open(self, cfg, store):
        from cpep.data.gestures import load_vocab
        from cpep.data.ninapro_windows import NinaproData
        from cpep.data.windows import WindowSpec
        d = cfg["data"]
        return NinaproData(self.root(cfg, store), load_vocab(d["vocab"]),
                           WindowSpec(d["window"], d["stride"], d["pose_decimation"]), store.cache_dir, Split.of(cfg))
