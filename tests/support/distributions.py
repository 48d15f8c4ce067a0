"""Installed distributions made on the spot: a ``*.dist-info`` folder with entry points and the
modules they name, in a folder that goes on ``sys.path`` (what pip leaves behind, minus pip)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from nextstep.engine.plugins import registry


def write_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str],
) -> Path:
    """Write distribution ``name`` (version 1.0) into ``root``: ``entry_points`` by group
    (name → ``module:attr [extra]``) and ``modules`` (dotted name → source)."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
    )
    lines = []
    for group, points in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in points.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for dotted, source in modules.items():
        path = root.joinpath(*dotted.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


@contextmanager
def on_path(root: Path) -> Iterator[None]:
    """Distributions of ``root`` visible to the registry for the block only."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    registry.forget()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        importlib.invalidate_caches()
        registry.forget()
