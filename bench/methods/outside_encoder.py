"""Outside encoders: an EMG encoder trained elsewhere, evaluated under the suite's protocol (linear probes,
zero-shot, few-shot) without training anything here. `cpep-bench evaluate --encoder ...` adds one to a suite; a
suite may also list one as a variant (method "outside_encoder", its files in `set`).

An encoder is a TorchScript file, a Python entry point `package.module:build` (build() returns a torch module;
the package must be importable where the evaluation runs), or, for the EMG encoder, a checkpoint of emg2pose's
released models (its TDS featurizer: baselines.emg2pose_checkpoint). An EMG encoder maps the reader's EMG
(B, C, T), each channel over its RMS on the training recordings (or as data.protocol says), to (B, D); a pose encoder
maps the reader's pose (B, J, T / data.pose_decimation), each joint standardised, to (B, D'). An emg2pose
checkpoint reads the EMG as recorded: the reader's scaling is undone for it.

The content of every file named (for an entry point: its module's source file) is part of the evaluation's code
fingerprint, so a changed encoder is evaluated again and its older records are left out of reports as stale.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from bench import plugins
from bench.plugins import Embeddings
from bench.plugins import Method as Base
from cpep.config import Data, Section, param
from cpep.errors import ConfigError, UserError

ENTRY_POINT = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
ROLES = {"emg": "outside.emg", "query": "outside.query", "pose": "outside.pose"}
CHECKED_WINDOWS = 4  # windows of the first class set's training selection each encoder is tried on before work


@dataclass(frozen=True)
class Outside(Section):
    section = "outside"
    emg: str = param("", why="the EMG encoder the linear probes read: a TorchScript file, package.module:build, "
                             "or an emg2pose checkpoint")
    query: str = param("", why="the EMG encoder whose embedding lives in the pose encoder's space (zero-shot "
                               "queries, e.g. CPEP's encoder and projection head); empty: outside.emg")
    pose: str = param("", why="the pose encoder of that space (zero-shot references); empty: zero-shot does not "
                              "apply")

    def rules(self):
        if self.query and not self.pose:
            raise ConfigError("outside.query is set without outside.pose: a zero-shot query needs pose references")


def source(spec: str, key: str) -> Path:
    """The file an encoder's spec names: the file itself, or an entry point's module source."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    if not ENTRY_POINT.fullmatch(spec):
        raise ConfigError(f"{key}: {spec!r} is neither a file nor an entry point package.module:build")
    module = spec.split(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package that is not there
        found = None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise ConfigError(f"{key}: no module {module} is importable here (install it, or add its folder to "
                          f"PYTHONPATH)")
    return Path(found.origin).resolve()


def _entry_point(spec: str, key: str):
    import torch
    module, name = spec.split(":")
    try:
        build = getattr(importlib.import_module(module), name)
        model = build()
    except Exception as e:
        raise UserError(f"{key}: {spec} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") \
            from None
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"{key}: {spec}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _reads(key: str) -> str:
    return f"reading {'pose' if key == ROLES['pose'] else 'EMG'} normalised as the built-in methods read it"


def load(spec: str, key: str, cfg: dict, data):
    """(the encoder a spec names, as a torch module on the CPU; a line saying what it is and reads). An emg2pose
    checkpoint serves only as the EMG encoder, and its expectations are checked against the data."""
    import torch
    path = Path(spec).expanduser()
    if not path.is_file():
        source(spec, key)
        return _entry_point(spec, key), f"{key}: entry point {spec}, {_reads(key)}"
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript for torch.export; it still loads
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.load(str(path), map_location="cpu")
            return model, f"{key}: TorchScript {path}, {_reads(key)}"
        except Exception as e:
            raise UserError(f"{key}: {path} is not a loadable TorchScript module ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]})") from None
    from baselines import emg2pose_checkpoint as emg2pose
    try:
        weights = emg2pose.state_dict(path)
    except UserError as e:
        raise UserError(f"{key}: {path} is neither a TorchScript module nor an emg2pose checkpoint ({e})") from None
    if not emg2pose.is_checkpoint(weights):
        raise UserError(f"{key}: {path} is neither a TorchScript module nor an emg2pose checkpoint (no TDS "
                        f"featurizer weights, *{emg2pose.FIRST})")
    if key != ROLES["emg"]:
        raise UserError(f"{key}: {path} is an emg2pose checkpoint, an EMG featurizer: name it as the EMG encoder")
    from cpep.data import protocols
    d, model = Data.of(cfg), emg2pose.featurizer(path)
    rate = plugins.get("dataset", d.name).sample_rate
    told = emg2pose.expectations(model, data.channels, rate, d.window, protocols.get(d.protocol).per_window)
    rms = torch.as_tensor(data.selection("id_train").stats["emg_std"])
    return emg2pose.Emg2PoseEmbedding(model, rms), f"{key}: {path}: {told}"


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold constants.pkl; torch.save's do not."""
    import zipfile
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def encoders(cfg: dict, data) -> dict[str, tuple]:
    """role -> (encoder, what it is), for each encoder the configuration names."""
    o = Outside.of(cfg)
    return {role: load(getattr(o, role), key, cfg, data) for role, key in ROLES.items() if getattr(o, role)}


def embeddings_of(found: dict[str, tuple]) -> Embeddings:
    import torch
    emg, query, pose = (found[role][0] if role in found else None for role in ROLES)

    def lp(batch):
        return emg(batch["emg"])

    def zs_query(batch):
        return query(batch["emg"])

    def zs_reference(batch):
        return pose(batch["pose"])

    # one function for lp and zs_query where both read the EMG encoder: the evaluation then embeds once
    return Embeddings(torch.nn.ModuleDict({role: model for role, (model, _) in found.items()}), lp=lp,
                      zs_query=(zs_query if query is not None else lp) if pose is not None else None,
                      zs_reference=zs_reference if pose is not None else None)


class Method(Base):
    config = (Outside,)

    def steps(self, cfg):
        return ()

    def validate(self, cfg):
        if not Outside.of(cfg).emg:
            raise ConfigError("the outside_encoder method needs outside.emg (cpep-bench evaluate --encoder ...)")
        self.files_read(cfg)

    def why_no_zero_shot(self, cfg):
        return "" if Outside.of(cfg).pose else "no pose encoder"

    def files_read(self, cfg):
        o = Outside.of(cfg)
        return {role: source(getattr(o, role), key) for role, key in ROLES.items() if getattr(o, role)}

    def embeddings(self, cfg, data, models):
        return embeddings_of(encoders(cfg, data))


def check(cfg: dict, data) -> list[str]:
    """Each encoder loaded and tried on a few windows before any work: a module that cannot be loaded, an output
    that is not (B, D), a non-finite embedding or a query and a pose encoder of different widths is a UserError.
    Returns a line per encoder saying what it is and reads."""
    import torch
    o, found = Outside.of(cfg), encoders(cfg, data)
    emb = embeddings_of(found)
    emb.model.eval()
    windows = data.selection("id_train").head(CHECKED_WINDOWS)
    batch = {k: torch.stack([windows[i][k] for i in range(len(windows))]) for k in ("emg", "pose")}
    widths = {}
    tried = (("emg", emb.lp, ROLES["emg"]), ("emg", emb.zs_query, ROLES["query" if o.query else "emg"]),
             ("pose", emb.zs_reference, ROLES["pose"]))
    for field, fn, key in tried:
        if fn is None:
            continue
        shape = tuple(batch[field].shape)
        try:
            with torch.no_grad():
                out = fn(batch)
        except Exception as e:
            raise UserError(f"{key}: failed on {field} of shape {shape} ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]})") from None
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(f"{key}: maps {field} {shape} to {got}; an encoder maps (B, C, T) to (B, D)")
        if not out.isfinite().all():
            raise UserError(f"{key}: gives non-finite embeddings (NaN or inf) on the first {shape[0]} windows of "
                            f"id_train")
        widths[fn] = out.shape[1]
    if emb.zs_query is not None and widths[emb.zs_query] != widths[emb.zs_reference]:
        raise UserError(f"zero-shot compares the query's {widths[emb.zs_query]}-wide embedding with outside.pose's "
                        f"{widths[emb.zs_reference]}-wide one: they must share one space")
    return [line for _, line in found.values()]
