"""The built-in synthetic dataset: simulated users written in the emg2pose format (HDF5 + metadata.csv), generated
on first use into the results directory and read by the emg2pose reader."""

from bench.plugins import Dataset as Base
from cpep.errors import ConfigError


class Dataset(Base):
    defaults = {"data": {"synth": {"seed": 0, "users": 8, "test_users": 2, "val_users": 0, "stage_seconds": 8.0,
                                   "difficulty": 0.5, "one_handed": 0.0}}}
    vocab = "synthetic-v1"

    def identity(self, cfg):
        d = cfg["data"]
        return {"name": self.name, "window": d["window"], "stride": d["stride"],
                "pose_decimation": d["pose_decimation"], "synth": d["synth"]}

    def validate(self, cfg):
        from cpep.synth_config import SynthConfig
        try:
            SynthConfig(**cfg["data"]["synth"]).validate()
        except ValueError as e:
            raise ConfigError(f"data.synth: {e}") from None

    def root(self, cfg, store):
        return store.synthetic_root(cfg["data"]["synth"])

    def open(self, cfg, store):
        from cpep.pipeline import open_data
        return open_data(cfg, self.root(cfg, store), store.cache_dir)
