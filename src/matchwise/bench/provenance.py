"""Where a benchmark figure came from: seed, input data, package versions, code, machine.

Every benchmark JSON carries :func:`provenance`'s dict under ``"provenance"`` so a figure
can be traced to the exact data and code that produced it and rerun::

    result["provenance"] = provenance(seed=2020, data=path)

``data`` is a file or a folder (every file under it, by relative path and content) or
raw bytes for generated data; ``packages`` names the distributions whose versions
matter (:data:`DEFAULT_PACKAGES` by default). The git commit is that of the checkout the
``matchwise`` package was imported from, with ``git_dirty`` true when it has uncommitted
changes (then the commit alone does not reproduce the figures); both are None outside a
git checkout (an installed wheel).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PACKAGES",
    "data_sha256",
    "git_state",
    "package_versions",
    "provenance",
]

#: Distributions whose versions change benchmark figures.
DEFAULT_PACKAGES = (
    "matchwise",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "implicit",
    "lightgbm",
    "torch",
    "onnxruntime",
)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/matchwise in a checkout


def data_sha256(data: str | os.PathLike[str] | bytes) -> str:
    """SHA-256 of the input: a file's bytes, a folder's files (each relative path and
    content, in sorted order; hidden files skipped) or raw bytes.

    Renaming, adding, removing or editing any file under a folder changes the hash.
    """
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
        return digest.hexdigest()
    path = Path(data)
    if path.is_file():
        _update_with_file(digest, path)
        return digest.hexdigest()
    if not path.is_dir():
        raise FileNotFoundError(f"no data at {path}")
    files = sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )  # fmt: skip
    for file in files:
        name = file.relative_to(path).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name)
        _update_with_file(digest, file)
    return digest.hexdigest()


def _update_with_file(digest: Any, file: Path) -> None:
    digest.update(file.stat().st_size.to_bytes(8, "big"))
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def package_versions(names: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: str | os.PathLike[str] | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``folder`` (default: the imported
    matchwise package); (None, None) when it is not in one or git is missing."""
    where = str(folder if folder is not None else _PACKAGE_DIR)
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def provenance(
    seed: int | Iterable[int] | None,
    data: str | os.PathLike[str] | bytes | None = None,
    packages: Iterable[str] = DEFAULT_PACKAGES,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance block of a benchmark JSON.

    ``{"seed", "data_sha256", "data_path", "packages", "python", "git_commit",
    "git_dirty", "machine", "created_at"}`` plus ``extra``'s keys; ``seed`` is an int or
    a list of ints (one per split), ``data_path`` is None for bytes or no data.
    """
    commit, dirty = git_state()
    seeds = seed if seed is None or isinstance(seed, int) else [int(s) for s in seed]
    return {
        "seed": seeds,
        "data_sha256": None if data is None else data_sha256(data),
        "data_path": None if data is None or isinstance(data, bytes) else str(data),
        "packages": package_versions(packages),
        "python": sys.version.split()[0],
        "git_commit": commit,
        "git_dirty": dirty,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
