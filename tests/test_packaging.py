"""The wheel installs one top-level package, ``nextstep``, and its dist-info: nothing named
``engine`` or ``adapters`` lands in site-packages (``.ci/run`` also installs it and runs it)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_the_nextstep_package_and_its_dist_info_only(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("nextstep_whatsapp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert tops - dist_info == {"nextstep"}
    assert [d.split("-")[0] for d in dist_info] == ["nextstep_whatsapp"]
    # The packages come through the links in nextstep/, with their data files.
    for needed in (
        "nextstep/engine/rules/schema.json",
        "nextstep/engine/commands/cli.py",
        "nextstep/adapters/channels/onemsg/channel.py",
        "nextstep/adapters/demo/rules/loans.yaml",
        "nextstep/adapters/demo/rules/examples/loans-export.csv",
        "nextstep/py.typed",
        "nextstep/engine/runtime/console/templates/overview.html",
        "nextstep/engine/runtime/console/static/console.js",
    ):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(f"{sorted(dist_info)[0]}/entry_points.txt")
    assert b"nextstep = nextstep.engine.commands.cli:main" in entry_points
