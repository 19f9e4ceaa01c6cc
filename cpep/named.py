"""One way to name a TOML file: a built-in name, looked up in known folders, or a path ending in .toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from cpep.errors import UserError


def names(folders) -> list[str]:
    """Every built-in name found in the folders (Path or importlib Traversable)."""
    found = set()
    for folder in folders:
        if folder.is_dir():
            found.update(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))
    return sorted(found)


def load_toml(name_or_path: str, folders, what: str, error: type[UserError] = UserError) -> tuple[str, dict, Path]:
    """(name, parsed TOML, path) of a built-in `what` by name (the first folder that has NAME.toml) or of a TOML
    file by path. Unknown names, missing files and invalid TOML are one-line `error`s."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise error(f"{what} file not found: {path}")
    else:
        path = next((f / f"{name_or_path}.toml" for f in folders if (f / f"{name_or_path}.toml").is_file()), None)
        if path is None:
            raise error(f"unknown {what} {name_or_path!r} (built in: {', '.join(names(folders)) or 'none'}; "
                        f"or give a .toml file's path)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {path.name}: invalid TOML ({e})") from None
    return Path(str(path)).stem, raw, path
