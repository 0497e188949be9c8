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
