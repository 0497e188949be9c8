"""Smoke tests of the benchmark scripts (benchmarks/): isolated runs, the her2st region protocol, scaling, report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import _common, report, scaling  # noqa: E402
from benchmarks import regions as bregions  # noqa: E402


def test_run_isolated_reports_failures():
    """A child that raises comes back as an error naming the problem, not as a crash of the driver."""
    bad = _common.run_isolated("benchmarks._common:n_regions_of", {"wrong": 1}, timeout=120)
    assert "error" in bad
    assert "wrong" in bad["error"]
    ok = _common.run_isolated("benchmarks._common:versions", {"packages": ["numpy"]}, timeout=120)
    assert "error" not in ok
    assert ok["numpy"] == np.__version__
    assert ok["peak_rss_mb"] > 10
    assert ok["process_s"] >= ok["wall_s"]


def test_protocol_helpers():
    truth = ["a", "a", "b", "b", "undetermined", "c", None]
    assert _common.n_regions_of(truth) == 3
    s = _common.scores(["a", "a", "b", "b", "undetermined"], [0, 0, 1, 1, 1])
    assert s["ari"] == pytest.approx(1.0)  # the undetermined spot is left out
    s = _common.scores(["a", "a", "b", "b"], [0, 1, 0, 1])
    assert s["ari"] < 0.1
    assert _common.fmt_mean_std([0.1, 0.3]) == "0.200 ± 0.141"
    assert _common.fmt_mean_std([0.25]) == "0.250"


def test_regions_quick_on_a1_caches_and_reports(senca_data_dir, tmp_path, monkeypatch):
    """The documented smoke command on real data: A1, one seed, the smoothed-PCA baseline; reruns hit the cache.

    Run as the README runs it: from the repository root with a *relative* ``SENCA_DATA_DIR`` (``../shared/data`` in a
    checkout beside ``shared/``), while the benchmark's children start in temporary folders.
    """
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("SENCA_DATA_DIR", os.path.relpath(senca_data_dir, REPO))
    out = tmp_path / "runs"
    args = ["--quick", "--methods", "smoothed_pca", "--out", str(out), "--no-report"]
    assert bregions.main(args) == 0
    f = out / "smoothed_pca__A1__seed0.json"
    run = json.loads(f.read_text())
    assert "error" not in run, run
    assert run["n_regions"] == 5  # A1: 6 pathologist classes present, "undetermined" excluded
    assert run["n_found"] <= 5
    assert len(run["labels"]) == len(run["spots"]) == 346
    assert run["ari"] > 0.1  # spatial smoothing recovers the A1 regions far above chance (about 0.27-0.31)
    assert 100 < run["peak_rss_mb"] < 8000  # the child's own peak, measured in its own process
    assert run["process_s"] >= run["wall_s"] > 0
    assert run["cpu_s"] > 0
    assert run["versions"]["numpy"] == np.__version__
    mtime = f.stat().st_mtime
    assert bregions.main(args) == 0  # cached: not rerun
    assert f.stat().st_mtime == mtime
    agg = report.aggregate_regions(report.load_runs(out))
    md = report.regions_markdown(agg)
    assert "spatially smoothed PCA + EEE GMM" in md
    assert f"{run['ari']:.3f}" in md


def test_scaling_stages_in_process(tmp_path):
    """The scaling children on a tiny tissue: every stage of the default path timed with its memory, the report."""
    pytest.importorskip("senca.model")
    path = tmp_path / "syn.h5ad"
    gen = scaling.generate(300, str(path), n_genes=200)
    assert (gen["n_obs"], gen["n_vars"]) == (300, 200)
    assert 300 < gen["median_umis"] < 800  # the sections' depth, 500 UMIs per spot on average
    fit = scaling.senca_path(str(path))
    assert [s["stage"] for s in fit["stages"]] == ["import", *scaling.STAGES]
    assert all(s["s"] >= 0 and 0.1 < s["peak_gb"] < 8 for s in fit["stages"])
    assert fit["n_genes_used"] == 200
    assert fit["passes"] >= 1
    assert fit["ari"] > 0.5  # the path finds the simulated regions
    assert scaling.total_seconds(fit) == pytest.approx(sum(s["s"] for s in fit["stages"][1:]))
    # the schedule as it ran: a 640-spot epoch bounded to 4 minibatches (1 alignment and 2 detection epochs here)
    tr = scaling._spacrd_schedule({"align": [1.0] * 4, "detect": [2.0] * 8, "epoch": [4.0, 8.0, 8.0]}, 640, 4)
    assert (tr["full_epoch_batches"], tr["steps_per_epoch"], tr["epochs"]) == (10, 4, 3)
    assert (tr["align_batches"], tr["detect_batches"], tr["detect_step_s"]) == (4, 8, 2.0)
    spacrd = {
        "n_target": 300,
        "stages": [{"stage": s, "s": 10.0, "peak_gb": 1.0} for s in scaling.SPACRD_STAGES],
        "train": tr,
        "auc": 0.9,
    }
    sp_md = "\n".join(scaling._spacrd_markdown(spacrd))
    assert "**1.0 min**" in sp_md  # the six stages, each run in full
    assert "bounded to 4 minibatches of 64 spots (a full epoch of this source: 10)" in sp_md
    assert "time met, memory met" in sp_md
    feat = scaling.features(200)
    assert feat["n_obs"] == 200
    assert feat["spots_per_s"] > 0
    assert scaling.exponent([1e3, 1e4, 1e5], [1.0, 10.0, 100.0]) == pytest.approx(1.0)
    big = {**fit, "stages": [{**s, "peak_gb": 9.0} if s["stage"] == "model" else s for s in fit["stages"]]}
    out = {
        "quick": True,
        "depth": 500.0,
        "n_histology": 32,
        "features": {**feat, "peak_rss_mb": 500.0},
        "rows": [
            {"n_spots": 300, "n_genes": 200, "generate": {**gen, "peak_rss_mb": 400.0}, "senca": fit},
            {"n_spots": 500_000, "n_genes": 2000, "generate": {**gen, "peak_rss_mb": 400.0}, "senca": big},
        ],
    }
    out["exponent_total"] = scaling._exponent_of(out["rows"])
    md = scaling.markdown(out)
    assert "| 300 | 200 (200) |" in md
    assert "peak RSS ≤ 8 GB — missed (9.00 GB)" in md
    assert "spots/s" in md


def test_multiclass_protocol_helpers():
    from benchmarks import multiclass

    truth = np.array(["tumour", "tumour", "stroma", "undetermined", "stroma", "stroma", "fat"])
    regions = np.array(["a", "a", "a", "b", "b", "b", "b"])
    # each region is named by its majority, undetermined spots not voting
    named = multiclass.majority_names(regions, truth)
    assert list(named) == ["tumour"] * 3 + ["stroma"] * 4
    m = multiclass.class_metrics(truth, named)
    # scored on the six spots the pathologist labelled; macro-F1 over the target's three classes (fat missed)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)
    perfect = multiclass.class_metrics(truth, np.where(truth == "undetermined", "fat", truth))
    assert perfect["ari"] == pytest.approx(1.0)
    assert perfect["f1"] == pytest.approx(1.0)


def test_spacrd_epochs_table():
    """The bounded-epoch table: per fraction, the mean over folds, ± its spread over seeds, and per fold."""
    from benchmarks import spacrd_epochs

    rows = [
        {
            "target": t,
            "seed": s,
            "fraction": f,
            "steps": 30 * (4 if f == 1 else 1),
            "auc": a,
            "auc_net": a - 0.1,
            "wall_s": 10.0,
        }
        for f in (1.0, 0.25)
        for s in (0, 1)
        for t, a in zip(spacrd_epochs.SECTIONS, [0.9, 0.8, 0.7, 0.6] if s == 0 else [1.0, 0.9, 0.8, 0.7], strict=True)
    ]
    md = spacrd_epochs.markdown({"command": "c", "seeds": [0, 1], "fractions": [1.0, 0.25], "rows": rows})
    assert "| all | 120 | 0.800 ± 0.050 | 0.700 ± 0.050 | 0.950 | 0.850 | 0.750 | 0.650 | 10 |" in md
    assert "| 0.25 of them | 30 |" in md
