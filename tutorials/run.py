"""Build and execute the tutorial notebooks: ``tutorials/_src/*.py`` -> ``tutorials/*.ipynb`` with outputs.

Each source file is a plain Python script split into cells by ``# %%`` lines (``# %% [markdown]`` cells hold
Markdown, every line prefixed by ``# ``), the percent format of Jupytext, VS Code and Spyder. This script turns each
into a notebook, executes it top to bottom with nbclient in a fresh ``python3`` kernel of the running interpreter
(run it with the project's ``.venv``), and writes it with its outputs next to this file. The figures the notebooks
save go to ``tutorials/figures/``.

Usage (from the repository root)::

    SENCA_DATA_DIR=/path/to/data python tutorials/run.py                      # all notebooks
    SENCA_DATA_DIR=/path/to/data python tutorials/run.py your_own_data        # some of them
    python tutorials/run.py --check                                           # stored notebooks up to date?
    python tutorials/run.py --compact                                         # shrink stored figures, no re-run

Execution is offline when ``$SENCA_DATA_DIR`` holds the data (``her2st/``, ``spacrd_labels/``); otherwise the
dataset readers download what they need once. Torch and BLAS are pinned to one thread (``--threads``) so that runs
are reproducible and the timings printed in the notebooks are comparable between runs. The figures are stored as
256-colour PNGs (:func:`compact_figures`), so that every notebook stays under ``MAX_BYTES``.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "_src"
MAX_BYTES = 1_000_000  # no tracked file over 1 MB: figures at 100 dpi (the page's width), 256-colour PNGs

_CELL = re.compile(r"^# %%(?P<rest>.*)$")


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Split a percent-format script into ``(cell_type, source)`` pairs (``"code"`` or ``"markdown"``)."""
    cells: list[tuple[str, list[str]]] = []
    kind, lines = None, []
    for line in text.splitlines():
        m = _CELL.match(line)
        if m:
            if kind is not None:
                cells.append((kind, lines))
            kind, lines = ("markdown" if "[markdown]" in m.group("rest") else "code"), []
            continue
        if kind is None:  # text before the first cell marker (e.g. a module docstring) is not part of the notebook
            continue
        lines.append(line)
    if kind is not None:
        cells.append((kind, lines))
    out = []
    for kind, lines in cells:
        while lines and not lines[0].strip():
            lines = lines[1:]
        while lines and not lines[-1].strip():
            lines = lines[:-1]
        if kind == "markdown":
            bad = [ln for ln in lines if ln and not ln.startswith("#")]
            if bad:
                raise ValueError(f"markdown cell line without '# ' prefix: {bad[0]!r}")
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines]
        if lines:
            out.append((kind, "\n".join(lines)))
    return out


def build(src: Path):
    """Notebook (nbformat v4) of one percent-format source file."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    for kind, source in parse_percent(src.read_text()):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        cell.pop("id", None)
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    # stable cell ids: diffs between re-executions show only what changed
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{src.stem[:40]}-{i:02d}"
    return nb


def is_up_to_date(src: Path) -> bool:
    """Whether ``tutorials/<stem>.ipynb`` exists and holds exactly the cells of its source ``src``."""
    import nbformat

    path = HERE / f"{src.stem}.ipynb"
    if not path.is_file():
        return False
    stored = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in build(src).cells]


def _strip_noise(nb) -> None:
    """Drop progress bars and execution timestamps from the stored outputs; warnings and messages stay.

    The notebooks show what a user running them sees on stderr (warnings, log messages), except progress bars,
    which are redrawn with carriage returns and would store hundreds of lines.
    """
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                lines = [ln for ln in text.splitlines(keepends=True) if "\r" not in ln and "it/s]" not in ln]
                if not "".join(lines).strip():
                    continue
                out["text"] = "".join(lines)
            kept.append(out)
        cell.outputs = kept


def compact_figures(nb) -> int:
    """Store each PNG figure of ``nb`` with a 256-colour palette where that is smaller; return the bytes saved.

    matplotlib writes true-colour PNGs: a figure drawn over an H&E photograph keeps about a byte per pixel (600 kB
    for a 600 x 750 px figure). A palette of 256 colours (median cut, dithered) stores it in a third of that and
    leaves plots, lines and text as they were; figures already stored with a palette are left alone.
    """
    from PIL import Image

    saved = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" not in data:
                continue
            raw = base64.b64decode(data["image/png"])
            image = Image.open(io.BytesIO(raw))
            if image.mode == "P":
                continue
            if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
                image = image.convert("RGB")  # opaque: median cut (best quality) works on RGB only
            method = Image.Quantize.MEDIANCUT if image.mode == "RGB" else Image.Quantize.FASTOCTREE
            buf = io.BytesIO()
            image.quantize(256, method=method).save(buf, format="PNG", optimize=True)
            if buf.tell() < len(raw):
                data["image/png"] = base64.b64encode(buf.getvalue()).decode("ascii")
                saved += len(raw) - buf.tell()
    return saved


def execute(nb, timeout: int) -> None:
    """Run every cell of ``nb`` in place, in a ``python3`` kernel whose working directory is ``tutorials/``."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
        record_timing=False,
    )
    client.execute()


def main(argv: list[str] | None = None) -> int:
    """Build and execute the tutorials named on the command line; return the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebooks to build (stems of tutorials/_src/*.py); default all")
    p.add_argument(
        "--check", action="store_true", help="only report stored notebooks whose cells differ from their sources"
    )
    p.add_argument(
        "--compact", action="store_true", help="only store the figures of the stored notebooks smaller (no re-run)"
    )
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    p.add_argument("--threads", type=int, default=1, help="OMP/MKL/torch threads of the kernel")
    args = p.parse_args(argv)

    import nbformat

    sources = sorted(SRC.glob("*.py"))
    if args.names:
        wanted = {n.removesuffix(".ipynb").removesuffix(".py") for n in args.names}
        unknown = wanted - {s.stem for s in sources}
        if unknown:
            raise SystemExit(f"unknown tutorial(s) {sorted(unknown)}; available: {[s.stem for s in sources]}")
        sources = [s for s in sources if s.stem in wanted]
    if args.check:
        stale = [s.stem for s in sources if not is_up_to_date(s)]
        print(f"out of date (re-run tutorials/run.py {' '.join(stale)}): {stale}" if stale else "all up to date")
        return 1 if stale else 0
    if args.compact:
        for src in sources:
            path = HERE / f"{src.stem}.ipynb"
            if path.is_file():
                nb = nbformat.read(path, as_version=4)
                saved = compact_figures(nb)
                if saved:
                    nbformat.write(nb, path)
                print(f"{path.name}: {saved / 1e3:.0f} kB saved, {path.stat().st_size / 1e3:.0f} kB")
        return 0

    # the kernel is this interpreter's (``python -m ipykernel_launcher`` found first on PATH), single-threaded
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if not os.environ.get("SENCA_DATA_DIR"):
        print("note: SENCA_DATA_DIR is not set; the dataset readers will download what they need", file=sys.stderr)
    (HERE / "figures").mkdir(exist_ok=True)

    failed = []
    for src in sources:
        nb = build(src)
        out = HERE / f"{src.stem}.ipynb"
        t0 = time.perf_counter()
        try:
            execute(nb, args.timeout)
        except Exception as err:  # noqa: BLE001 - report every notebook, fail at the end
            failed.append(src.stem)
            print(f"FAILED {out.name}: {type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
            continue
        _strip_noise(nb)
        compact_figures(nb)
        wall = time.perf_counter() - t0
        nbformat.write(nb, out)
        size = out.stat().st_size
        flag = f"  (over {MAX_BYTES / 1e6:g} MB: smaller figures)" if size > MAX_BYTES else ""
        print(f"{out.name}: executed in {wall:.0f} s, {size / 1e3:.0f} kB{flag}")
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
