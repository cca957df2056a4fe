"""pyproject.toml: the built package holds every module and data file, without warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("alertd", "geo", "feeds", "sheets")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")


def _expected() -> set[str]:
    """Paths the wheel must hold: every module and data file of the source tree."""
    want = set()
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                want.add(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "config").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            want.add("alertd/defaults/" + path.relative_to(ROOT / "config").as_posix())
    return want


def test_wheel_builds_without_warnings_and_holds_the_data(tmp_path: Path) -> None:
    """Building the package (as pip install does) warns about nothing and ships every file."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for top in (*PACKAGES, "config"):
        shutil.copytree(ROOT / top, src / top, ignore=_SKIP)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "out"),
         str(src)], capture_output=True, text=True, cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert re.findall(r"\w+Warning: .*", log) == []
    assert "absent from the `packages` configuration" not in log
    (wheel,) = (tmp_path / "out").glob("alertd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert _expected() - names == set()
