"""Data protocols: how a recording's rows become the windows a model sees (`data.protocol`).

`default`: 1 s windows every 0.5 s, EMG as recorded over each channel's RMS on the training recordings.
`embridge`: EMBridge's reading of emg2pose: 2 s windows without overlap; the EMG of each recording band-passed
2-250 Hz and notched at 60 Hz before it is cut into windows; each window's channels to zero mean and unit variance.

A preset sets data.window and data.stride; a `--set` of either still wins over it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cpep.errors import ConfigError


@dataclass(frozen=True)
class Protocol:
    name: str
    window: int | None = None          # the preset's data.window and data.stride (None: the defaults')
    stride: int | None = None
    band: tuple[float, float] | None = None  # Butterworth band-pass edges, Hz
    band_order: int = 4                # per edge: a 4th-order band-pass has 8 poles
    notch: float | None = None         # Hz
    notch_q: float = 30.0              # quality factor: a 2 Hz wide notch at 60 Hz
    per_window: bool = False           # each window's channels to zero mean, unit variance

    @property
    def filters(self) -> bool:
        return self.band is not None or self.notch is not None

    def preset(self) -> dict:
        """The configuration keys this protocol sets."""
        return {f"data.{k}": v for k, v in (("window", self.window), ("stride", self.stride)) if v is not None}

    def identity(self) -> dict:
        return dataclasses.asdict(self)


PROTOCOLS = {
    "default": Protocol("default"),
    "embridge": Protocol("embridge", window=4000, stride=4000, band=(2.0, 250.0), notch=60.0, per_window=True),
}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown data.protocol {name!r} (choose {', '.join(PROTOCOLS)})")
    return PROTOCOLS[name]


def identity(name: str) -> dict:
    """What a dataset's identity (and so every stage key) holds of its protocol: nothing for the default one, so
    that stages computed before protocols existed keep their configuration keys (--reuse-stale)."""
    return {} if name == "default" else {"protocol": get(name).identity()}


def sos(protocol: Protocol, rate: float) -> np.ndarray:
    """The protocol's EMG filter as second-order sections: the band-pass, then the notch."""
    from scipy import signal
    sections = []
    if protocol.band is not None:
        sections.append(signal.butter(protocol.band_order, protocol.band, btype="bandpass", fs=rate, output="sos"))
    if protocol.notch is not None:
        sections.append(signal.tf2sos(*signal.iirnotch(protocol.notch, protocol.notch_q, fs=rate)))
    return np.concatenate(sections)


def filter_emg(emg: np.ndarray, protocol: Protocol, rate: float) -> np.ndarray:
    """A whole recording's EMG (T, C), filtered forward and backward along time (zero phase), as float32."""
    from scipy import signal
    if not protocol.filters:
        return emg
    s = sos(protocol, rate)
    padlen = min(3 * (2 * len(s) + 1), len(emg) - 1)  # scipy's default, shortened for a recording that short
    return signal.sosfiltfilt(s, emg.astype(np.float64), axis=0, padlen=max(padlen, 0)).astype(np.float32)


def per_window(emg: np.ndarray) -> np.ndarray:
    """Windows (B, C, W): each channel of each window to zero mean and unit variance (a flat channel to zero)."""
    emg = emg - emg.mean(axis=-1, keepdims=True)
    std = emg.std(axis=-1, keepdims=True)
    return emg / np.where(std > 1e-12, std, 1.0)
