"""What is published: the wheel holds the package and nothing else, and the repository no file over 1 MB.

The full check of a user's install (build the sdist and the wheel, ``twine check``, a fresh environment with only the
wheel, every public module imported, ``senca demo``) is ``.ci/wheel``: it installs a second environment, too long for
the suite.
"""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "senca"
MAX_BYTES = 1_000_000


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling")  # the build backend, in the test extra: no download, no network
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("senca-*.whl")
    return path


def test_wheel_holds_the_package_and_nothing_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    package = [n for n in names if not n.startswith("senca-")]  # senca-<version>.dist-info/ aside
    assert all(n.startswith("senca/") for n in package), [n for n in package if not n.startswith("senca/")]
    sources = {f"senca/{p.relative_to(SRC).as_posix()}" for p in SRC.rglob("*") if p.is_file()}
    sources = {s for s in sources if "__pycache__" not in s}
    assert set(package) == sources, (sorted(sources - set(package)), sorted(set(package) - sources))
    assert not [n for n in names if n.endswith((".ipynb", ".h5ad", ".zarr", ".png", ".tsv", ".gz"))]


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(zf.read(meta_name))
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert meta["Requires-Python"] == ">=3.11"
    assert any(r.replace(" ", "").startswith("scvi-tools<1.6,>=1.4.2") for r in meta.get_all("Requires-Dist"))
    classifiers = set(meta.get_all("Classifier"))
    assert {f"Programming Language :: Python :: 3.{m}" for m in (11, 12, 13)} <= classifiers
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "senca = senca.cli:main" in entry_points


def test_no_tracked_file_over_1_mb():
    """Large outputs belong elsewhere: MathJax comes from a package, notebook figures are compact (tutorials/run.py)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = [ROOT / p for p in listed.stdout.decode().split("\0") if p]
    large = {str(p.relative_to(ROOT)): p.stat().st_size for p in paths if p.is_file() and p.stat().st_size > MAX_BYTES}
    assert not large, f"tracked files over {MAX_BYTES / 1e6:g} MB: {large}"
