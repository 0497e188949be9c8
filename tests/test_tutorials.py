"""Tutorials: the committed notebooks match their sources, and the self-contained one runs top to bottom."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def _runner():
    spec = importlib.util.spec_from_file_location("senca_tutorials_run", TUTORIALS / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_percent_format_parser():
    run = _runner()
    cells = run.parse_percent("'''ignored'''\n# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\ny = 2\n# %%\n")
    assert cells == [("markdown", "# Title\n\ntext"), ("code", "x = 1\n\n\ny = 2")]
    with pytest.raises(ValueError, match="prefix"):
        run.parse_percent("# %% [markdown]\nnot a comment\n")


@pytest.mark.parametrize("src", sorted((TUTORIALS / "_src").glob("*.py")), ids=lambda p: p.stem)
def test_committed_notebook_matches_its_source(src):
    """Every tutorial source has an executed notebook whose cells are exactly the source's (re-run tutorials/run.py)."""
    nbformat = pytest.importorskip("nbformat")
    run = _runner()
    path = TUTORIALS / f"{src.stem}.ipynb"
    assert path.is_file(), f"{path.name} missing: run `python tutorials/run.py {src.stem}`"
    assert run.is_up_to_date(src), (
        f"{path.name} is out of date with _src/{src.name}: run `python tutorials/run.py {src.stem}`"
    )
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), f"{path.name} is not fully executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path.name} stores an error"
    assert path.stat().st_size < run.MAX_BYTES, (
        f"{path.name} is over {run.MAX_BYTES / 1e6:g} MB: run `python tutorials/run.py --compact {src.stem}`"
    )


@pytest.mark.slow
def test_your_own_data_notebook_executes(tmp_path, monkeypatch):
    """The self-contained tutorial (simulated Space Ranger folders, SpatialData, custom features, two sections)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from nbclient import NotebookClient

    run = _runner()
    nb = run.build(TUTORIALS / "_src" / "your_own_data.py")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # the last check of the tutorial prints the ARI of each section against the simulated regions
    for name in ("s1", "s2"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name} {{'ari'"))
        ari = float(line.split("'ari': ")[1].split(",")[0])
        assert ari > 0.5, line
