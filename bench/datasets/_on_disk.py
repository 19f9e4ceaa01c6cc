"""What the datasets that users bring share: a data root that must be given and must exist."""

from bench.plugins import Dataset
from cpep.errors import ConfigError
from cpep.files import data_root


class OnDisk(Dataset):
    def validate(self, cfg):
        if not cfg["data"]["root"]:
            raise ConfigError(f"the {self.name} dataset needs its location: --data-root DIR")

    def root(self, cfg, store):
        return data_root(cfg["data"]["root"])
