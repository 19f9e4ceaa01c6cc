"""`cpep-bench evaluate`: an encoder trained elsewhere as one more variant of a suite, run through the suite's
protocol (its metrics, seeds and data) by the outside_encoder method (bench/methods/outside_encoder.py), and
filed with the suite's records so that `cpep-bench report` puts it beside the suite's variants."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bench import plugins
from bench.suites import Suite, Variant
from cpep.errors import UserError

METHOD = "outside_encoder"
NAME = re.compile(r"[A-Za-z0-9][\w.-]*")


def spec(text: str, option: str) -> str:
    """An encoder as the configuration holds it: a file as its absolute path (the same file from any folder), an
    entry point as given."""
    path = Path(text).expanduser()
    if path.is_file():
        return str(path.resolve())
    if path.exists():
        raise UserError(f"{option}: {text} is not a file")
    if ":" not in text:
        raise UserError(f"{option}: no file {text} (an encoder is a file, or an entry point package.module:build)")
    return text


def default_name(encoder: str) -> str:
    """The variant's name when none is given: the file's stem, or the entry point's module and function."""
    path = Path(encoder)
    stem = path.stem if path.is_file() else encoder.replace(":", ".")
    return re.sub(r"[^\w.-]+", "-", stem).strip("-.") or "encoder"


def with_encoder(suite: Suite, encoder: str, query: str | None, pose: str | None, name: str | None,
                 label: str | None) -> Suite:
    """The suite with the outside encoder as one more variant (checked as the suite's own are)."""
    name = name or default_name(encoder)
    if not NAME.fullmatch(name):
        raise UserError(f"--name {name!r}: a variant's name is letters, digits, '_', '-' and '.' (it names folders)")
    if name in suite.names:
        raise UserError(f"--name {name}: suite {suite.name} has a variant of that name already; choose another")
    overrides = {"outside.emg": spec(encoder, "--encoder")}
    if query:
        overrides["outside.query"] = spec(query, "--query-encoder")
    if pose:
        overrides["outside.pose"] = spec(pose, "--pose-encoder")
    variant = Variant(name, METHOD, label or name, overrides)
    plugins.get("method", METHOD).validate(plugins.resolve(suite.overrides, variant.overrides))
    return dataclasses.replace(suite, variants=suite.variants + (variant,))


def check(runs, store) -> list[str]:
    """Every encoder tried on the data of each distinct configuration before any work (one line each, exit 2 on a
    bad one); what each encoder is and reads."""
    from bench.methods.outside_encoder import check as check_encoders
    from cpep import config
    lines, seen = [], set()
    for run in runs:
        ident = config.digest({"data": run.config["data"], "outside": run.config["outside"]})
        if ident not in seen:
            seen.add(ident)
            data = plugins.get("dataset", run.dataset).open(run.config, store)
            lines += [line for line in check_encoders(run.config, data) if line not in lines]
    return lines
