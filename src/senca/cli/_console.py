"""Console output of the ``senca`` commands and the translation of input errors into one line on stderr."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from ._io import CLIError, one_line


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(msg: str, done: bool = False) -> None:
    """One progress line on stderr (no rich markup: paths and keys are printed as they are)."""
    console = _console()
    if done:
        console.print("\u2713", style="green", end=" ", markup=False)
    console.print(msg, markup=False)


@contextmanager
def step(msg: str) -> Iterator[None]:
    """Print a step before it runs and its duration after (no spinner: steps may draw their own progress bar)."""
    t0 = time.perf_counter()
    say(f"{msg} ...")
    yield
    say(f"{msg} ({time.perf_counter() - t0:.1f} s)", done=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn input errors into one line on stderr and exit code 1.

    ``SENCA_DEBUG=1`` re-raises them with their traceback instead.
    """
    quiet_libraries()
    try:
        yield
    except typer.Exit:
        raise
    except (CLIError, FileNotFoundError, KeyError, ValueError, TypeError) as e:
        if os.environ.get("SENCA_DEBUG"):
            raise
        prefix = "" if isinstance(e, CLIError) else f"{type(e).__name__}: "
        typer.echo(f"Error: {prefix}{one_line(e)}", err=True)
        raise typer.Exit(code=1) from None


def quiet_libraries() -> None:
    """Silence library chatter (deprecations, Lightning's tips and INFO lines); call again after imports."""
    import logging
    import warnings

    for category in (FutureWarning, DeprecationWarning, SyntaxWarning):
        warnings.filterwarnings("ignore", category=category)
    from senca._utils import TRAINING_NOISE

    for message in (
        *TRAINING_NOISE,
        ".*deterministic=True.*benchmark=True.*",
        ".*zarr v3 autosharding.*",
        ".*Transforming to str index.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "scvi"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "scvi" in sys.modules:
        sys.modules["scvi"].settings.verbosity = logging.WARNING


def torch_threads() -> None:
    """Respect OMP_NUM_THREADS for torch as well (torch otherwise takes every core)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        import torch

        torch.set_num_threads(int(n))


def print_counts(series: Any, title: str) -> None:
    counts = series.value_counts().sort_index()
    say(f"{title}: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))


def fmt_scores(scores: dict, skip: tuple[str, ...] = ("threshold",)) -> str:
    """``ARI 0.512, NMI 0.431`` from a metrics dict; counts (``n``, ``n_pos``) as integers."""
    parts = []
    for k, v in scores.items():
        if k in skip:
            continue
        if k == "n" or k.startswith("n_"):
            parts.append(f"{k} {int(v)}")
        else:
            parts.append(f"{k.upper()} {float(v):.3f}")
    return ", ".join(parts)
