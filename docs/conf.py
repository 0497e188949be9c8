"""Sphinx configuration of the senca documentation (scverse style: MyST + myst-nb, book theme).

The build is offline and fast: notebooks are rendered from their stored outputs (never executed), MathJax is served
from the built site (the ``sphinx-mathjax-offline`` package of the ``doc`` extra: no CDN), intersphinx falls back to
the small inventories in ``_intersphinx/`` when the projects' own cannot be fetched, and the command-line reference is
generated from ``senca.cli`` at build time.
Build it with ``docs/build.sh`` (``sphinx-build -W -b html docs docs/_build/html``).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

warnings.filterwarnings("ignore", category=SyntaxWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

# -- project ------------------------------------------------------------------------------------------------

project = "senca"
author = "senca developers"
copyright = f"{datetime.now():%Y}, {author}"
try:
    release = version("senca")
except PackageNotFoundError:  # pragma: no cover - docs built from a source tree without install
    release = "0.0.0"
version = release

# -- general ------------------------------------------------------------------------------------------------

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinxcontrib.bibtex",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "README.md"]
default_role = "literal"
pygments_style = "default"
nitpicky = False  # a name no inventory knows stays plain text instead of a warning

# -- maths: sphinx-mathjax-offline (in the extensions above) copies MathJax 3 into _static/mathjax of the built site
# and points mathjax_path there, so offline readers see rendered maths, not raw TeX, and no CDN is contacted.

# -- intersphinx: links to the scverse docs. Each project's own inventory is tried first; when it cannot be fetched
# (an offline build) the small inventory in _intersphinx/ (docs/_intersphinx/make_inventories.py: the names these docs
# link to) is used instead, so the build neither fails nor loses its links.

_INTERSPHINX = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "pandas": "https://pandas.pydata.org/docs",
    "anndata": "https://anndata.readthedocs.io/en/stable",
    "scanpy": "https://scanpy.readthedocs.io/en/stable",
    "squidpy": "https://squidpy.readthedocs.io/en/stable",
    "scvi": "https://docs.scvi-tools.org/en/stable",
    "spatialdata": "https://spatialdata.scverse.org/en/stable",
}
intersphinx_mapping = {
    name: (url, (None, str(HERE / "_intersphinx" / f"{name}.inv")))
    for name, url in _INTERSPHINX.items()
    if (HERE / "_intersphinx" / f"{name}.inv").is_file()
}
intersphinx_timeout = 5

# -- MyST and notebooks -------------------------------------------------------------------------------------

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath", "substitution", "attrs_inline"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # tutorials are rendered from their stored outputs
nb_merge_streams = True
nb_output_stderr = "show"  # warnings the code gives are part of what a user sees
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

# -- API ----------------------------------------------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_use_ivar = True  # an "Attributes" section must not duplicate the autoattribute entries
napoleon_custom_sections = [("Params", "Parameters")]
typehints_defaults = "braces"
typehints_document_rtype = True
always_document_param_types = False
suppress_warnings = [
    # annotations that name types imported only for type checking cannot be resolved at build time
    "sphinx_autodoc_typehints.forward_reference",
    "sphinx_autodoc_typehints.guarded_import",
    "myst.header",  # notebooks may start with a level-2 heading
    "config.cache",
]

# -- references ---------------------------------------------------------------------------------------------

bibtex_bibfiles = ["references.bib"]
bibtex_reference_style = "author_year"
bibtex_default_style = "plain"

# -- HTML ---------------------------------------------------------------------------------------------------

html_theme = "sphinx_book_theme"
html_title = f"senca {release}"
html_static_path = ["_static"]
html_css_files = ["css/custom.css"]
html_logo = None
html_theme_options = {
    "repository_url": "https://github.com/senca-dev/senca",
    "use_repository_button": True,
    "use_download_button": False,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# -- tutorials: copy tutorials/*.ipynb (and their figures) into docs/tutorials/ ----------------------------------

_TUTORIAL_SUFFIXES = {".ipynb", ".png", ".svg", ".jpg", ".jpeg", ".gif"}


def _copy_tutorials() -> list[str]:
    src, dst = ROOT / "tutorials", HERE / "tutorials"
    if dst.exists():
        shutil.rmtree(dst)
    if not src.is_dir():
        return []
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part.startswith(".") or part.startswith("_") for part in rel.parts[:-1]):
            continue  # .ipynb_checkpoints, _work, ...
        if path.is_file() and path.suffix.lower() in _TUTORIAL_SUFFIXES and path.stat().st_size < 20_000_000:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / rel)
            if path.suffix == ".ipynb":
                copied.append(str(rel))
    return copied


_tutorials = _copy_tutorials()
if not _tutorials:  # an empty toctree glob is a warning that cannot be suppressed: say that they are coming
    (HERE / "tutorials").mkdir(exist_ok=True)
    (HERE / "tutorials" / "coming_soon.md").write_text(
        "# Coming soon\n\nThe tutorial notebooks in the repository's `tutorials/` folder will appear here.\n"
    )


# -- command line: the help of every `senca` command, generated from senca.cli -----------------------------------


def _write_cli_reference() -> None:
    import click
    import typer

    from senca.cli import app

    root = typer.main.get_command(app)
    width = 80  # the code boxes of the book theme show about 80 columns: wider help is cut off
    ctx = click.Context(root, info_name="senca", terminal_width=width, max_content_width=width)
    parts = [
        "<!-- generated by docs/conf.py from senca.cli: do not edit -->",
        "",
        "## `senca`",
        "",
        "```text",
        root.get_help(ctx),
        "```",
    ]
    for name, command in root.commands.items():
        sub = click.Context(command, info_name=name, parent=ctx, terminal_width=width, max_content_width=width)
        parts += ["", f"## `senca {name}`", "", "```text", command.get_help(sub), "```"]
    out = HERE / "_generated" / "cli_reference.md"
    out.parent.mkdir(exist_ok=True)
    text = "\n".join(parts) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


_write_cli_reference()


# -- benchmarks: benchmarks/RESULTS.md (written by `python -m benchmarks.report`), shown on docs/benchmarks.md --------


def _copy_benchmark_results() -> None:
    src = ROOT / "benchmarks" / "RESULTS.md"
    out = HERE / "_generated" / "benchmark_results.md"
    out.parent.mkdir(exist_ok=True)
    figures = ROOT / "benchmarks" / "figures"
    if figures.is_dir():  # the report embeds figures/*.png relative to itself: copy them beside the included file
        (out.parent / "figures").mkdir(exist_ok=True)
        for png in figures.glob("*.png"):
            shutil.copy2(png, out.parent / "figures" / png.name)
    if src.is_file():
        text = src.read_text()
        # the page has its own title: demote the report's headings by one level
        text = "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines()) + "\n"
    else:
        text = "The benchmark report has not been generated yet: run `python -m benchmarks.report`.\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


_copy_benchmark_results()


# -- docstrings: senca's "Returns" sections are prose ("``None``, or the modified copy ..."), not "name : type" fields.
# Napoleon's numpy parser would read every unindented line as another return value (one bullet per line); read the
# section as one description instead, unless its first line is a "name : type" field. The return type still comes
# from the annotation (sphinx-autodoc-typehints).


def _setup_prose_returns() -> None:
    from sphinx.ext.napoleon.docstring import NumpyDocstring

    fields = NumpyDocstring._consume_returns_section

    def consume(self, preprocess_types: bool = False):
        first = self._lines.get(0)
        if isinstance(first, str) and first.strip() and " : " not in first:
            lines = self._dedent(self._consume_to_next_section())
            if lines and lines[0].strip() == ":":  # sphinx-autodoc-typehints' "no return type here" marker
                lines = self._dedent(lines[1:])
            while lines and not lines[-1].strip():
                lines.pop()
            return [("", "", lines)]
        return fields(self, preprocess_types)

    NumpyDocstring._consume_returns_section = consume


_setup_prose_returns()


# -- constants: autodata of a name re-exported by a package (``senca.data.NEIGHBOR_SUFFIX``) finds no attribute
# docstring in the package's ``__init__`` and falls back to the docstring of the value's type (``str``, ``tuple``).
# Take the docstring written under the assignment in the submodule that defines it instead.


def _constant_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    if what != "data":
        return
    import sys

    from sphinx.pycode import ModuleAnalyzer

    package, attr = name.rsplit(".", 1)
    for module in sorted(m for m in list(sys.modules) if m == package or m.startswith(package + ".")):
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source: try the next one
            continue
        if ("", attr) in docs:
            lines[:] = [*docs[("", attr)]]
            return
    type_doc = (type(obj).__doc__ or "").strip().splitlines()
    if lines and type_doc and lines[0].strip() == type_doc[0].strip():  # the value's type's docstring: not ours
        lines[:] = []


def setup(app):
    app.connect("autodoc-process-docstring", _constant_docstring)
