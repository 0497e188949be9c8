"""The documentation builds offline with warnings as errors, and its maths is rendered by MathJax served with it.

Slow (a full Sphinx build, about a minute or two): it is the check that CI's ``sphinx-build -W`` step makes, plus
what a reader sees. When a headless Chromium is installed, the built page is opened and the rendered maths counted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    out = tmp_path_factory.mktemp("html")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::SyntaxWarning"}
    # no network: an inventory or a script that would be fetched from the internet fails the build instead
    env.update({"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""})
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    return out


@pytest.mark.slow
def test_maths_uses_the_local_mathjax(html):
    page = (html / "concepts.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    mathjax = [s for s in scripts if "mathjax" in s.lower() or "tex-" in s]
    assert mathjax, "concepts.html loads no MathJax"
    assert all(not s.startswith(("http:", "https:", "//")) for s in mathjax), f"MathJax from the internet: {mathjax}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    # the fusion formula is one display equation, not a list item starting with "+" and raw dollars
    assert "LayerNorm" in page
    assert "<li><p>U" not in page
    assert not re.search(r"<p>\$[^$]+\$</p>", page), "raw $...$ left in concepts.html"


@pytest.mark.slow
def test_maths_is_rendered_in_a_browser(html):
    names = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
    browser = next(filter(None, map(shutil.which, names)), None)
    if browser is None:
        pytest.skip("no headless Chromium installed")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--dump-dom",
           (html / "concepts.html").as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    rendered = dom.count("<mjx-container")
    assert rendered > 20, f"only {rendered} formulas rendered by MathJax in concepts.html"
    assert "\\mathrm{LayerNorm}" not in re.sub(r"<mjx-container.*?</mjx-container>", "", dom, flags=re.S)
