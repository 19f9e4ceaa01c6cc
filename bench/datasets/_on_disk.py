"""What the datasets that users bring share: a data root that must be given and must exist."""

from pathlib import Path

from bench.plugins import Dataset
from cpep.errors import ConfigError, DataError


class OnDisk(Dataset):
    def validate(self, cfg):
        if not cfg["data"]["root"]:
            raise ConfigError(f"the {self.name} dataset needs its location: --data-root DIR")

    def root(self, cfg, store):
        root = Path(cfg["data"]["root"]).expanduser()
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist or is not a directory")
        return root
