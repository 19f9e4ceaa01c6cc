"""The built-in synthetic dataset: simulated users written in the emg2pose format (HDF5 + metadata.csv), generated
on first use into the runs directory and read by the emg2pose reader."""

import copy

from bench.plugins import Dataset as Base
from bench.run import fingerprint
from cpep.data import protocols
from cpep.errors import ConfigError
from cpep.synth.config import SynthConfig


class Dataset(Base):
    config = (SynthConfig,)
    vocab = SynthConfig().vocab
    per_user = True

    def identity(self, cfg):
        d = cfg["data"]
        return {"name": self.name, "window": d["window"], "stride": d["stride"],
                "pose_decimation": d["pose_decimation"], **protocols.identity(d["protocol"]),
                "synth": d["synth"], "simulator": fingerprint.simulator()}

    def validate(self, cfg):
        synth = SynthConfig.of(cfg)
        if cfg["data"]["vocab"] == self.vocab and synth.vocab != self.vocab:
            raise ConfigError(f"data.synth.stages={synth.stages} names its stages in the vocabulary {synth.vocab}: "
                              f"set data.vocab={synth.vocab}")

    def for_seed(self, cfg, seed):
        """With data.synth.seed_per_run, data seed s (the run seed unless seeds.data is set) reads the data of
        data.synth.seed + s, so that intervals over seeds include which users are tested; the run's configuration
        records that seed (and seed_per_run off)."""
        if not cfg["data"]["synth"]["seed_per_run"]:
            return cfg
        run_cfg = copy.deepcopy(cfg)
        run_cfg["data"]["synth"].update(seed=cfg["data"]["synth"]["seed"] + seed, seed_per_run=False)
        return run_cfg

    def root(self, cfg, store):
        return store.synthetic_root(cfg["data"]["synth"])

    def open(self, cfg, store):
        from cpep.config import Data
        from cpep.data.emg2pose import open_data
        return open_data(Data.of(cfg), self.root(cfg, store), store.cache_dir)
