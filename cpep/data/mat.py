"""Variables of a MATLAB .mat file in either layout: v5 and older (scipy.io.loadmat) or v7.3, which is HDF5 with
each array stored transposed (MATLAB is column-major, so a T x C array is a C x T dataset)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

from cpep.errors import DataError


def read_variables(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named variables that the file holds, as 2-D arrays in MATLAB's orientation (rows x columns); a name
    the file lacks is left out. A file that is not a readable .mat file raises DataError (one line)."""
    path = Path(path)
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                return {name: np.atleast_2d(f[name][()]).T for name in names
                        if isinstance(f.get(name), h5py.Dataset)}
        except OSError as e:
            raise DataError(f"{path}: not a readable MATLAB v7.3 file ({e})") from None
    try:
        loaded = scipy.io.loadmat(path, variable_names=list(names))
    # A damaged file fails deep inside scipy's parser with any of many exception types.
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: not a readable .mat file ({type(e).__name__}: {e})") from None
    return {name: np.atleast_2d(loaded[name]) for name in names if name in loaded}
