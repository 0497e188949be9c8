"""The API page lists exactly the public API: every name in a subpackage's ``__all__`` and nothing that is gone.

The full documentation build (``docs/build.sh``, ``sphinx-build -W``) runs in CI separately; this check is cheap and
points at the line to add or remove.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[1] / "docs"
PUBLIC = ["datasets", "io", "pp", "im", "model", "tl", "pl", "metrics", "module", "nn", "data"]
# documented with autodata rather than autosummary
CONSTANTS = {"REGISTRY_KEYS", "DEFAULT_NEIGHBORS_OBSM_KEY", "DEFAULT_GATHER_KEYS", "NEIGHBOR_SUFFIX"}


def _api_entries() -> set[str]:
    text = (DOCS / "api.md").read_text()
    entries = set(re.findall(r"^\s{4}(\w+\.\w+)\s*$", text, flags=re.M))  # autosummary lines: "    pp.knn_index"
    entries |= {m.removeprefix("senca.") for m in re.findall(r"\.\. autodata:: (senca\.\w+\.\w+)", text)}
    return entries


@pytest.mark.parametrize("sub", PUBLIC)
def test_api_page_lists_every_public_name(sub):
    module = importlib.import_module(f"senca.{sub}")
    names = getattr(module, "__all__", None)
    assert names, f"senca.{sub} defines no __all__"
    listed = {e.split(".", 1)[1] for e in _api_entries() if e.startswith(f"{sub}.")}
    missing = sorted(set(names) - listed)
    assert not missing, f"add to docs/api.md under senca.{sub}: {missing}"
    gone = sorted(listed - set(names))
    assert not gone, f"docs/api.md lists names that senca.{sub}.__all__ does not export: {gone}"


def test_api_page_has_a_section_per_subpackage():
    text = (DOCS / "api.md").read_text()
    for sub in PUBLIC:
        assert f".. module:: senca.{sub}" in text


def test_every_page_is_in_the_toctree():
    index = (DOCS / "index.md").read_text()
    toctree = index[index.index("```{toctree}") :]
    for page in sorted(DOCS.glob("*.md")):
        if page.stem != "index":
            assert f"\n{page.stem}\n" in toctree, f"{page.name} is not in the toctree of docs/index.md"


def test_cited_keys_exist():
    bib = (DOCS / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set()
    for page in DOCS.glob("*.md"):
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited, "no citations found"
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


ROOT = DOCS.parent
# how README.md and docs/index.md quote the ARI that `senca demo` prints for her2st A1
DEMO_QUOTE = re.compile(r"ARI (\d\.\d+)\s+against\s+the\s+pathologist")


def test_pages_quote_one_demo_ari():
    quoted = {p.name: DEMO_QUOTE.findall((ROOT / p).read_text()) for p in (Path("README.md"), Path("docs/index.md"))}
    assert all(quoted.values()), f"README.md and docs/index.md must quote the demo's ARI: {quoted}"
    assert len({q for qs in quoted.values() for q in qs}) == 1, f"the pages quote different ARIs: {quoted}"


def test_quoted_ari_is_what_the_demo_prints(senca_data_dir, tmp_path):
    """The ARI under the landing figure (README.md, docs/index.md) is the one `senca demo` prints today.

    The demo's defaults, as a user runs it (if this fails after a change to SENCA, rerun
    `python docs/make_figures.py her2st` and update the two captions).
    """
    from typer.testing import CliRunner

    from senca.cli import app

    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path), "--data-dir", str(senca_data_dir), "--accelerator", "cpu"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = float(re.search(r"her2st A1: ARI (\d\.\d+)", result.stdout).group(1))
    for page in ("README.md", "docs/index.md"):
        for q in DEMO_QUOTE.findall((ROOT / page).read_text()):
            assert f"{printed:.{len(q) - 2}f}" == q, f"{page} quotes ARI {q}; `senca demo` prints {printed:.3f}"


TUTORIALS = ROOT / "tutorials"


def test_tutorials_page_lists_every_tutorial():
    """docs/tutorials.md orders the tutorials by hand (with descriptions and run times): none may be missing."""
    text = (DOCS / "tutorials.md").read_text()
    toctree = text[text.index("```{toctree}") :]
    for src in sorted((TUTORIALS / "_src").glob("*.py")):
        assert f"tutorials/{src.stem}\n" in toctree, f"add tutorials/{src.stem} to the toctree of docs/tutorials.md"
        assert f"{{doc}}`tutorials/{src.stem}`" in text, f"describe tutorials/{src.stem} in docs/tutorials.md's table"


@pytest.mark.parametrize("src", sorted((TUTORIALS / "_src").glob("*.py")), ids=lambda p: p.stem)
def test_tutorials_show_what_users_see(src):
    """Figures at 100 dpi or more as PNG, and no blanket silencing of warnings (only named, commented ones)."""
    text = src.read_text()
    dpi = re.search(r'rcParams\["figure\.dpi"\] = (\d+)', text)
    assert dpi, f"{src.name}: set plt.rcParams['figure.dpi'] (100 or more)"
    assert int(dpi.group(1)) >= 100, f"{src.name}: set plt.rcParams['figure.dpi'] to 100 or more"
    assert 'set_matplotlib_formats("jpeg")' not in text, f"{src.name}: store figures as PNG"
    assert not re.search(r'filterwarnings\("ignore"\)|simplefilter\("ignore"\)', text), (
        f"{src.name} silences every warning: silence only known noise, by message, with a comment saying why"
    )
    nbformat = pytest.importorskip("nbformat")
    notebook = TUTORIALS / f"{src.stem}.ipynb"
    if notebook.is_file():
        nb = nbformat.read(notebook, as_version=4)
        kinds = {k for c in nb.cells if c.cell_type == "code" for o in c.outputs for k in o.get("data", {})}
        assert "image/jpeg" not in kinds, f"{notebook.name} stores JPEG figures: re-run tutorials/run.py"


def test_readme_images_render_on_pypi():
    """PyPI shows README.md without the repository: its images need absolute URLs, each naming a file of the repo."""
    root = DOCS.parent
    prefix = "https://raw.githubusercontent.com/senca-dev/senca/main/"
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", (root / "README.md").read_text())
    assert images, "README.md shows no image; update this test if that is intended"
    for url in images:
        assert url.startswith(prefix), f"README image {url!r} is not an absolute URL under {prefix}"
        assert (root / url.removeprefix(prefix)).is_file(), f"README image {url!r} names no file of the repository"
