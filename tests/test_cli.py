"""The ``senca`` command line: fast help, one-line errors on bad input, atomic writes, and what each command writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from senca.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _need(module: str, name: str) -> None:
    mod = pytest.importorskip(module)
    if not hasattr(mod, name):
        pytest.skip(f"{module}.{name} is not available")


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error")]


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = _error_lines(result)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in lines[0], lines[0]


@pytest.fixture(scope="module")
def section(tmp_path_factory) -> Path:
    """A small synthetic section with an H&E-like image, written to .h5ad."""
    import senca

    adata = senca.datasets.synthetic(n_spots=160, n_genes=60, n_regions=3, image=True, seed=0)
    del adata.obsm["X_histology"]  # the features must come from the image
    adata.obs["cancer"] = (adata.obs["region"] == "R1").to_numpy()
    path = tmp_path_factory.mktemp("cli") / "section.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def section_with_features(tmp_path_factory) -> Path:
    """A small synthetic section with precomputed histology features and no image."""
    import senca

    adata = senca.datasets.synthetic(n_spots=160, n_genes=60, n_regions=3, image=False, seed=1)
    path = tmp_path_factory.mktemp("cli") / "features.h5ad"
    adata.write_h5ad(path)
    return path


# ------------------------------------------------------------------------------------------------ help


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); import senca.cli; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'scvi', 'lightning', 'scanpy', 'anndata', 'spatialdata') if m in sys.modules]; "
        "print(heavy, dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, dt = out.rsplit(" ", 1)
    assert heavy == "[]", out
    assert float(dt) < 1.5, out
    res = subprocess.run([sys.executable, "-m", "senca.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for command in ("demo", "features", "regions", "detect"):
        assert command in res.stdout


@pytest.mark.parametrize("command", ["demo", "features", "regions", "detect"])
def test_command_help(command):
    result = _run(command, "--help")
    assert result.exit_code == 0
    assert "--overwrite" in result.stdout
    assert "Usage: senca " + command in " ".join(result.stdout.split())


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "Commands" in result.output
    assert "regions" in result.output


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("command", ["features", "regions"])
def test_missing_input(tmp_path, command):
    result = _run(command, tmp_path / "nope.h5ad", "-o", tmp_path / "out.h5ad")
    _assert_one_line_error(result, "input not found", "nope.h5ad")
    assert not (tmp_path / "out.h5ad").exists()


def test_wrong_input_extension(tmp_path):
    bad = tmp_path / "counts.csv"
    bad.write_text("a,b\n1,2\n")
    result = _run("regions", bad, "-o", tmp_path / "out.h5ad")
    _assert_one_line_error(result, "unsupported input", ".h5ad", ".zarr")


def test_wrong_output_extension(section, tmp_path):
    result = _run("features", section, "-o", tmp_path / "out.csv")
    _assert_one_line_error(result, "unsupported output", "out.csv")


def test_corrupt_h5ad(tmp_path):
    bad = tmp_path / "broken.h5ad"
    bad.write_bytes(b"this is not hdf5")
    result = _run("features", bad, "-o", tmp_path / "out.h5ad")
    _assert_one_line_error(result, "cannot read", "broken.h5ad")


def test_existing_output_is_not_replaced(section, tmp_path):
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"keep me")
    result = _run("features", section, "-o", out)
    _assert_one_line_error(result, "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"


def test_input_is_never_the_output_without_overwrite(section):
    before = section.read_bytes()
    result = _run("regions", section, "-o", section)
    _assert_one_line_error(result, "is also an input", "--overwrite")
    assert section.read_bytes() == before


def test_missing_spatial_key(section, tmp_path):
    result = _run("regions", section, "-o", tmp_path / "out.h5ad", "--spatial-key", "xy")
    _assert_one_line_error(result, "obsm['xy']", "--spatial-key")
    assert not (tmp_path / "out.h5ad").exists()


def test_missing_layer(section, tmp_path):
    result = _run("regions", section, "-o", tmp_path / "out.h5ad", "--layer", "raw")
    _assert_one_line_error(result, "layer 'raw' not found", "--layer")


def test_missing_histology_without_image(section_with_features, tmp_path):
    result = _run("regions", section_with_features, "-o", tmp_path / "o.h5ad", "--image-key", "X_uni")
    _assert_one_line_error(result, "obsm['X_uni'] not found", "--no-image")


def test_features_needs_an_image(section_with_features, tmp_path):
    result = _run("features", section_with_features, "-o", tmp_path / "o.h5ad", "--key-added", "X_new")
    _assert_one_line_error(result, "no H&E image")


def test_features_refuses_existing_key(section_with_features, tmp_path):
    result = _run("features", section_with_features, "-o", tmp_path / "o.h5ad")
    _assert_one_line_error(result, "obsm['X_histology'] already exists", "--overwrite")


def test_bad_method(section, tmp_path):
    result = _run("regions", section, "-o", tmp_path / "o.h5ad", "--method", "dbscan")
    _assert_one_line_error(result, "--method")


def test_detect_missing_labels(section, section_with_features, tmp_path):
    result = _run(
        "detect", "--train", section_with_features, "--target", section, "-o", tmp_path / "o.h5ad",
        "--labels-key", "tumour",
    )  # fmt: skip
    _assert_one_line_error(result, "obs['tumour'] not found", "--labels-key")


def test_detect_two_unnamed_classes_need_positive(section, section_with_features, tmp_path):
    import anndata as ad

    a = ad.read_h5ad(section_with_features)
    a.obs["ab"] = np.where(a.obs["region"] == "R1", "A", "B")  # two classes, neither says cancer
    train = tmp_path / "ab.h5ad"
    a.write_h5ad(train)
    result = _run(
        "detect", "--train", train, "--target", section, "-o", tmp_path / "o.h5ad", "--labels-key", "ab",
    )  # fmt: skip
    _assert_one_line_error(result, "Cannot tell which label is the cancer class", "--positive")


def test_detect_continuous_labels_are_refused(section, section_with_features, tmp_path):
    import anndata as ad

    a = ad.read_h5ad(section_with_features)
    a.obs["depth"] = np.random.default_rng(0).normal(size=a.n_obs)
    train = tmp_path / "depth.h5ad"
    a.write_h5ad(train)
    result = _run("detect", "--train", train, "--target", section, "-o", tmp_path / "o.h5ad", "--labels-key", "depth")
    _assert_one_line_error(result, "continuous")


def test_detect_target_is_not_a_training_section(section, tmp_path):
    result = _run("detect", "--train", section, "--target", section, "-o", tmp_path / "o.h5ad")
    _assert_one_line_error(result, "also a training section")


def test_demo_without_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    monkeypatch.setenv("SENCA_DOWNLOAD", "0")  # offline: nothing to read, nothing may be downloaded
    monkeypatch.setenv("SENCA_CACHE_DIR", str(tmp_path / "cache"))
    result = _run("demo", "--out", tmp_path / "demo")
    _assert_one_line_error(result, "A1")
    result = _run("demo", "--out", tmp_path / "demo", "--data-dir", tmp_path)
    _assert_one_line_error(result, "her2st")


def test_usage_errors_exit_non_zero(tmp_path):
    result = runner.invoke(app, ["regions", str(tmp_path / "x.h5ad")])  # no -o
    assert result.exit_code == 2
    assert "Missing option" in result.output


# ------------------------------------------------------------------------------------------------ atomic writes


def test_failed_write_leaves_nothing_behind(tmp_path):
    import senca
    from senca.cli._io import check_output, write_output

    adata = senca.datasets.synthetic(n_spots=40, n_genes=20, seed=0)
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"old")
    adata.uns["not_writable"] = object()  # h5py cannot store it: the write fails half-way
    check_output(out, overwrite=True)
    with pytest.raises(Exception):  # noqa: B017,PT011 - whatever anndata raises
        write_output(None, adata, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5ad"]


def test_write_replaces_atomically_with_overwrite(tmp_path):
    import anndata as ad

    import senca
    from senca.cli._io import write_output

    adata = senca.datasets.synthetic(n_spots=40, n_genes=20, seed=0)
    out = tmp_path / "out.h5ad"
    out.write_bytes(b"old")
    write_output(None, adata, out)
    back = ad.read_h5ad(out)
    assert back.shape == adata.shape
    np.testing.assert_array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5ad"]


def test_replace_directory_atomically(tmp_path):
    from senca.cli._io import replace_atomically

    old = tmp_path / "store.zarr"
    old.mkdir()
    (old / "a").write_text("old")
    new = tmp_path / ".store.zarr.tmp"
    new.mkdir()
    (new / "b").write_text("new")
    replace_atomically(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.zarr"]


# ------------------------------------------------------------------------------------------------ commands that work


def test_features_command_writes_key(section, tmp_path):
    _need("senca.im", "extract_features")
    import anndata as ad

    out = tmp_path / "feat.h5ad"
    result = _run("features", section, "-o", out)
    assert result.exit_code == 0, result.output
    back = ad.read_h5ad(out)
    feats = back.obsm["X_histology"]
    assert feats.shape[0] == back.n_obs
    assert feats.shape[1] > 0
    assert np.isfinite(feats).all()
    # the features see the image: spots of different histology programmes differ
    prog = back.obs["histology_program"].to_numpy()
    means = np.stack([np.asarray(feats)[prog == p].mean(0) for p in np.unique(prog)])
    assert np.abs(means[0] - means[1]).max() > 0.1
    # input untouched
    assert "X_histology" not in ad.read_h5ad(section).obsm
    # running again without --overwrite refuses, with it succeeds
    assert _run("features", section, "-o", out).exit_code == 1
    assert _run("features", section, "-o", out, "--overwrite").exit_code == 0


@pytest.mark.skipif(os.environ.get("SENCA_SKIP_MODEL_TESTS") == "1", reason="model tests disabled")
def test_regions_command_writes_regions(section_with_features, tmp_path):
    _need("senca.model", "SENCA")
    import anndata as ad

    out = tmp_path / "regions.h5ad"
    result = _run(
        "regions", section_with_features, "-o", out, "--n-regions", "3", "--max-epochs", "3",
        "--accelerator", "cpu", "--truth-key", "region",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    back = ad.read_h5ad(out)
    assert back.obs["senca_region"].nunique() == 3
    assert back.obsm["X_senca"].shape == (back.n_obs, 60)  # 50 expression PCs + 10 histology tokens
    assert "ARI" in result.stderr
    # same seed, same output
    out2 = tmp_path / "regions2.h5ad"
    _run("regions", section_with_features, "-o", out2, "--n-regions", "3", "--max-epochs", "3", "--accelerator", "cpu")
    np.testing.assert_allclose(ad.read_h5ad(out2).obsm["X_senca"], back.obsm["X_senca"], rtol=1e-5, atol=1e-5)


def test_features_on_spatialdata_zarr(tmp_path):
    _need("senca.im", "extract_features")
    _need("senca.io", "to_spatialdata")
    import spatialdata as sd

    import senca

    adata = senca.datasets.synthetic(n_spots=80, n_genes=30, n_regions=2, image=True, seed=3, library_id="lib")
    del adata.obsm["X_histology"]
    senca.io.to_spatialdata(adata).write(tmp_path / "in.zarr")
    out = tmp_path / "out.zarr"
    result = _run("features", tmp_path / "in.zarr", "-o", out)
    assert result.exit_code == 0, result.output
    back = sd.read_zarr(out)
    table = back.tables["table"]
    assert table.obsm["X_histology"].shape[0] == adata.n_obs
    assert len(back.images) == 1  # the image travels with the results
    assert "X_histology" not in sd.read_zarr(tmp_path / "in.zarr").tables["table"].obsm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]  # no temporary left
    # a missing table is a one-line error
    result = _run("features", tmp_path / "in.zarr", "-o", tmp_path / "o2.zarr", "--table-key", "nope")
    _assert_one_line_error(result, "no table 'nope'", "--table-key")


def test_detect_command_scores_the_target(tmp_path):
    _need("senca.model", "SpaCRD")
    import anndata as ad

    import senca

    paths = []
    for i in range(3):  # one tissue layout, three noisy copies: train on two, score the third
        a = senca.datasets.synthetic(n_spots=120, n_genes=60, n_regions=3, seed=0, library_id=f"s{i}")
        rng = np.random.default_rng(i)
        a.X = a.X.copy()
        a.X.data = rng.poisson(a.X.data).astype(np.float32)
        a.layers["counts"] = a.X.copy()
        a.obs["tissue"] = np.where(a.obs["region"] == "R1", "tumour", "stroma")
        paths.append(tmp_path / f"s{i}.h5ad")
        a.write_h5ad(paths[-1])
    out = tmp_path / "scored.h5ad"
    result = _run(
        "detect", "--train", paths[0], paths[1], "--target", paths[2], "-o", out, "--labels-key", "tissue",
        "--positive", "tumour", "--max-epochs", "3", "--min-shared-genes", "50", "--accelerator", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    back = ad.read_h5ad(out)
    score = back.obs["spacrd_score"].to_numpy()
    assert score.min() >= 0.0
    assert score.max() <= 1.0
    assert back.obs["spacrd_cancer"].dtype == bool
    assert "AUC" in result.stderr  # the target carries labels: metrics are printed
    assert back.n_vars == 60  # the target keeps its genes
    # --no-adapt scores with the trained network as is: the same model (same seed), other scores
    plain = tmp_path / "plain.h5ad"
    result = _run(
        "detect", "--train", paths[0], paths[1], "--target", paths[2], "-o", plain, "--labels-key", "tissue",
        "--max-epochs", "3", "--min-shared-genes", "50", "--accelerator", "cpu", "--no-adapt",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cancer = ['tumour']" in result.stderr  # without --positive: the class named tumour, said (shared rule)
    assert not np.allclose(ad.read_h5ad(plain).obs["spacrd_score"].to_numpy(), score)


def test_detect_command_multiclass(tmp_path):
    """A column of three classes (and undetermined spots) trains the multi-class model; labels and probabilities out."""
    _need("senca.model", "SpaCRD")
    import anndata as ad

    import senca

    paths = []
    for i in range(3):
        a = senca.datasets.synthetic(n_spots=120, n_genes=60, n_regions=3, seed=0, library_id=f"s{i}")
        rng = np.random.default_rng(i)
        a.X = a.X.copy()
        a.X.data = rng.poisson(a.X.data).astype(np.float32)
        a.layers["counts"] = a.X.copy()
        tissue = a.obs["region"].map({"R1": "tumour", "R2": "stroma", "R3": "fat"}).astype(object).to_numpy()
        tissue[::10] = "undetermined"
        a.obs["tissue"] = tissue
        paths.append(tmp_path / f"s{i}.h5ad")
        a.write_h5ad(paths[-1])
    out = tmp_path / "labelled.h5ad"
    result = _run(
        "detect", "--train", paths[0], paths[1], "--target", paths[2], "-o", out, "--labels-key", "tissue",
        "--max-epochs", "6", "--min-shared-genes", "50", "--accelerator", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 classes" in result.stderr
    assert "macro-F1" in result.stderr  # the target carries labels: ARI / macro-F1 printed
    back = ad.read_h5ad(out)
    proba = back.obsm["spacrd_proba"]
    assert sorted(proba.columns) == ["fat", "stroma", "tumour"]
    np.testing.assert_allclose(np.asarray(proba).sum(1), 1.0, atol=1e-6)
    assert set(back.obs["spacrd_label"].astype(str)) <= {"fat", "stroma", "tumour"}
    assert "spacrd_score" not in back.obs
    # --positive turns the same column into the binary cancer call
    binary = tmp_path / "binary.h5ad"
    result = _run(
        "detect", "--train", paths[0], paths[1], "--target", paths[2], "-o", binary, "--labels-key", "tissue",
        "--positive", "tumour", "--max-epochs", "3", "--min-shared-genes", "50", "--accelerator", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "spacrd_score" in ad.read_h5ad(binary).obs


def test_demo_smoke(senca_data_dir, tmp_path):
    _need("senca.model", "SENCA")
    import anndata as ad

    out = tmp_path / "demo"
    result = _run(
        "demo", "--out", out, "--data-dir", senca_data_dir, "--max-epochs", "2", "--n-top-genes", "300",
        "--accelerator", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "her2st A1: ARI" in result.stdout
    back = ad.read_h5ad(out / "her2st_A1_senca.h5ad")
    assert back.obs["senca_region"].nunique() == 5  # the non-'undetermined' pathologist classes of A1
    assert back.obsm["X_senca"].shape[0] == back.n_obs == 346
    png = out / "her2st_A1_regions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run refuses to replace the outputs
    again = _run("demo", "--out", out, "--data-dir", senca_data_dir, "--max-epochs", "1")
    _assert_one_line_error(again, "already exists", "--overwrite")


def test_bad_accelerator(section_with_features, tmp_path):
    result = _run("regions", section_with_features, "-o", tmp_path / "o.h5ad", "--accelerator", "tpux")
    _assert_one_line_error(result, "--accelerator must be one of")
    import torch

    if not torch.cuda.is_available():
        result = _run("regions", section_with_features, "-o", tmp_path / "o.h5ad", "--accelerator", "gpu")
        _assert_one_line_error(result, "no CUDA GPU", "--accelerator cpu")
    assert not (tmp_path / "o.h5ad").exists()


def test_python_dash_m_senca():
    res = subprocess.run([sys.executable, "-m", "senca", "regions", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Usage: senca regions" in res.stdout
