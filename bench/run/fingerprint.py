"""A fingerprint of the code a stage runs: its files and every project module they import, transitively.

Files are compared by their syntax tree without docstrings, so comments, docstrings and formatting do not count,
while any change to what the code does makes a new fingerprint (and so a new stage key). Imports of other packages
(torch, timm, ...) are not followed: their versions are recorded in each result's provenance.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
from pathlib import Path

import cpep

PACKAGES = ("cpep", "baselines", "bench")
ROOT = Path(cpep.__file__).resolve().parent.parent


def _module_file(name: str) -> Path | None:
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _parsed(path: Path) -> tuple[str, tuple[Path, ...]]:
    """(syntax tree dump, project files it imports) of one file."""
    return _parse(path, path.read_text())


@functools.lru_cache(maxsize=None)
def _parse(path: Path, text: str) -> tuple[str, tuple[Path, ...]]:
    tree = ast.parse(text, filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    imported = set()
    for node in ast.walk(tree):  # imports inside functions count: plug-ins import torch-heavy code lazily
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        imported.update(f for f in map(_module_file, names) if f is not None)
    return ast.dump(tree), tuple(sorted(imported))


def closure(files) -> list[Path]:
    """The files and every project file they import, transitively, in a stable order."""
    seen: set[Path] = set()
    todo = [Path(f).resolve() for f in files]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_parsed(path)[1])
    return sorted(seen)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def fingerprint(files) -> str:
    h = hashlib.sha256()
    for path in closure(files):
        h.update(_name(path).encode() + b"\0" + _parsed(path)[0].encode() + b"\0")
    return h.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes (an encoder's weights: content, unlike code, is compared byte for byte)."""
    stat = os.stat(path)
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, _size: int, _mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.cache
def simulator() -> str:
    """The fingerprint of the synthetic-data simulator: part of the synthetic dataset's key and identity, so that
    data written by an older simulator is never read as current."""
    return fingerprint([ROOT / "cpep" / "synth" / "simulator.py"])
