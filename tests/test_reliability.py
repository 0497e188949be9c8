"""Reliability: bad input fails early and clearly, no public function destroys data, same seed -> same result.

Every case of issue 8 is one test here. Each either asserts the error type *and* that the message names the
problem and the fix, or asserts that the input works correctly.
"""

from __future__ import annotations

import shutil
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from lightning.pytorch.callbacks import Callback

import senca
from senca.model import SENCA, SpaCRD

SMALL = {"n_latent": 10}
FIT = {"max_epochs": 3, "enable_progress_bar": False, "accelerator": "cpu"}
DET_FIT = {"max_epochs": 2, "align_epochs": 1, "batch_size": 64, "accelerator": "cpu", "enable_progress_bar": False}


# ---------------------------------------------------------------------------------------------------- helpers
def _tissue(n_spots: int = 150, seed: int = 0, image: bool = False, **kw) -> ad.AnnData:
    return senca.datasets.synthetic(n_spots=n_spots, n_genes=40, n_histology=8, image=image, seed=seed, **kw)


def _labelled(n_spots: int = 150, seed: int = 0) -> ad.AnnData:
    adata = _tissue(n_spots, seed)
    adata.obs["cancer"] = (adata.obs["region"].astype(str) == adata.obs["region"].astype(str).iloc[0]).to_numpy()
    return adata


def _snapshot(adata: ad.AnnData) -> dict:
    """Deep copies of everything a public function must never change in place: X and every layer."""

    def dense(m):
        return m.toarray().copy() if sp.issparse(m) else np.array(m, copy=True)

    return {"X": dense(adata.X), **{f"layer:{k}": dense(v) for k, v in adata.layers.items()}}


def _assert_unchanged(adata: ad.AnnData, before: dict) -> None:
    after = _snapshot(adata)
    for key, value in before.items():
        assert key in after, f"{key} disappeared"
        np.testing.assert_array_equal(after[key], value, err_msg=f"{key} was modified in place")


def _senca(adata: ad.AnnData, seed: int = 0, image: bool = True, **fit) -> SENCA:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology" if image else None)
        model = SENCA(adata, **SMALL)
        model.train(seed=seed, **{**FIT, **fit})
    return model


@pytest.fixture(scope="module")
def trained():
    adata = _tissue(150, seed=1)
    return adata, _senca(adata)


@pytest.fixture(scope="module")
def detector():
    source = _labelled(150, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SpaCRD.setup_anndata(source, layer="counts", image_key="X_histology", labels_key="cancer", n_neighbors=5)
        det = SpaCRD(source, n_top_genes=30)
        det.train(seed=0, **DET_FIT)
    return source, det


# ========================================================================================= 1. validation
# ---------------------------------------------------------------------------------- count layers
def _non_integer(a):
    a.layers["counts"] = a.layers["counts"].log1p()


def _negative(a):
    c = a.layers["counts"].toarray().astype(np.float32)
    c[0, 0] = -1
    a.layers["counts"] = sp.csr_matrix(c)


def _nan_counts(a):
    c = a.layers["counts"].toarray().astype(np.float32)
    c[3, 2] = np.nan
    a.layers["counts"] = sp.csr_matrix(c)


def _inf_counts(a):
    c = a.layers["counts"].toarray().astype(np.float32)
    c[3, 2] = np.inf
    a.layers["counts"] = c


def _nan_features(a):
    a.obsm["X_histology"] = a.obsm["X_histology"].copy()
    a.obsm["X_histology"][5, 1] = np.nan


def _inf_features(a):
    a.obsm["X_histology"] = a.obsm["X_histology"].copy()
    a.obsm["X_histology"][5, 1] = -np.inf


def _no_features(a):
    del a.obsm["X_histology"]


def _no_coords(a):
    del a.obsm["spatial"]


def _duplicate_names(a):
    a.obs_names = ["s"] * (a.n_obs // 2) + [f"t{i}" for i in range(a.n_obs - a.n_obs // 2)]


BAD_SETUP = {
    # case: (mutation, error type, words the message must contain)
    "non-integer counts": (_non_integer, ValueError, ["integer", "counts"]),
    "negative counts": (_negative, ValueError, ["negative", "raw counts"]),
    "NaN counts": (_nan_counts, ValueError, ["NaN", "remove"]),
    "inf counts": (_inf_counts, ValueError, ["infinite", "remove"]),
    "NaN features": (_nan_features, ValueError, ["X_histology", "NaN"]),
    "inf features": (_inf_features, ValueError, ["X_histology", "infinite"]),
    "missing image key": (_no_features, KeyError, ["X_histology", "extract_features"]),
    "missing coordinates": (_no_coords, KeyError, ["spatial", "spatial_key"]),
}


@pytest.mark.parametrize("case", list(BAD_SETUP))
def test_senca_setup_rejects(case):
    mutate, err, words = BAD_SETUP[case]
    adata = _tissue(60)
    mutate(adata)
    with pytest.raises(err) as info:
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
    for w in words:
        assert w in str(info.value), f"{case}: {info.value!s} does not mention {w!r}"


# SpaCRD models standardised log-normalised counts, but they must still be counts (library size, log1p).
SPACRD_BAD = {k: v for k, v in BAD_SETUP.items() if k not in ("NaN features", "inf features")}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", list(SPACRD_BAD))
def test_spacrd_setup_rejects(case):
    mutate, err, words = SPACRD_BAD[case]
    adata = _labelled(60)
    mutate(adata)
    with pytest.raises(err) as info:
        SpaCRD.setup_anndata(adata, layer="counts", image_key="X_histology", labels_key="cancer")
    for w in words:
        assert w in str(info.value), f"{case}: {info.value!s} does not mention {w!r}"


def test_spacrd_nan_features_mark_missing_images_but_inf_is_rejected():
    """NaN rows in the histology features are SpaCRD's documented 'no image for this spot'; inf is an error."""
    adata = _labelled(60)
    adata.obsm["X_histology"] = adata.obsm["X_histology"].copy()
    adata.obsm["X_histology"][:5] = np.nan
    SpaCRD.setup_anndata(adata, layer="counts", image_key="X_histology", labels_key="cancer")
    adata = _labelled(60)
    _inf_features(adata)
    with pytest.raises(ValueError, match="infinite"):
        SpaCRD.setup_anndata(adata, layer="counts", image_key="X_histology", labels_key="cancer")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_duplicated_obs_names_are_refused_at_setup(tmp_path):
    """Results go back by spot name (SpatialData tables, CLI outputs, label joins): repeated names are refused in
    both setups and by the command line, naming the fix; nothing is changed on the way."""
    adata = _labelled(60)
    _duplicate_names(adata)
    for setup, kw in ((SENCA.setup_anndata, {}), (SpaCRD.setup_anndata, {"labels_key": "cancer"})):
        with pytest.raises(ValueError, match=r"repeated.*adata\.obs_names_make_unique\(\)"):
            setup(adata, layer="counts", **kw)
    assert not adata.obs_names.is_unique
    assert "senca_knn" not in adata.obsm
    assert "_spacrd_label" not in adata.obs
    adata.obs_names_make_unique()  # the named fix works
    SENCA.setup_anndata(adata, layer="counts")
    SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer")
    dup = _labelled(60)
    _duplicate_names(dup)
    dup.write_h5ad(tmp_path / "dup.h5ad")
    result = _cli(["regions", str(tmp_path / "dup.h5ad"), "-o", str(tmp_path / "out.h5ad"), "--no-image"])
    assert result.exit_code == 1
    assert "obs_names_make_unique()" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.h5ad").exists()


def test_fewer_spots_than_neighbours():
    adata = _tissue(60)[:4].copy()
    with pytest.raises(ValueError, match="fewer than n_neighbors.*lower n_neighbors"):
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", n_neighbors=6)
    adata = _labelled(60)[:4].copy()
    with pytest.raises(ValueError, match="n_neighbors"):
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer", n_neighbors=7)
    # per sample too: a section with 3 spots cannot have 6 neighbours
    adata = _tissue(60)
    adata.obs["sample"] = ["a"] * (adata.n_obs - 3) + ["b"] * 3
    with pytest.raises(ValueError, match="n_neighbors"):
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", sample_key="sample", n_neighbors=6)


def test_label_column_with_one_class():
    adata = _labelled(60)
    adata.obs["cancer"] = True
    with pytest.raises(ValueError, match="only one class"):
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer")


@pytest.mark.filterwarnings("ignore:No image_key")
def test_label_column_with_nan_labels():
    """A missing label marks an unlabelled spot (left out of the loss); a column with no label at all is refused."""
    adata = _labelled(60)
    adata.obs["cancer"] = adata.obs["cancer"].astype(object)
    adata.obs.iloc[3, adata.obs.columns.get_loc("cancer")] = np.nan
    SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer")
    y = adata.obs["_spacrd_label"].to_numpy()
    assert np.isnan(y[3])
    np.testing.assert_array_equal(np.delete(y, 3), np.delete(adata.obs["cancer"].to_numpy(), 3).astype(float))
    adata.obs["none"] = np.nan
    with pytest.raises(ValueError, match="No source spot has a label"):
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="none", overwrite=True)


# the contract's label columns (DESIGN.md section 1: labels_key="cancer"): one rule for SpaCRD and `senca detect`
LABEL_COLUMNS = {
    "cancer/other": (["cancer", "other"], "cancer"),
    "tumour/normal": (["Tumour", "normal"], "Tumour"),
    "tumor/non-tumor": (["tumor", "non-tumor"], "tumor"),
    "her2st classes": (["invasive cancer", "connective tissue"], "invasive cancer"),
    "malignant/benign": (["malignant", "benign tumour"], "malignant"),
    "bool": ([True, False], True),
    "0/1": ([1, 0], 1),
    "0.0/1.0": ([1.0, 0.0], 1.0),
    "true/false text": (["TRUE", "false"], "TRUE"),
    "0/1 text": (["1", "0"], "1"),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", list(LABEL_COLUMNS))
def test_spacrd_and_cli_share_the_label_rule(case, caplog):
    from senca.cli import binary_labels as _binary_labels

    (pos, neg), taken = LABEL_COLUMNS[case]
    adata = _labelled(60)
    truth = adata.obs["cancer"].to_numpy(dtype=bool)
    adata.obs["cancer"] = pd.Series(np.where(truth, pos, neg), index=adata.obs_names).astype(type(pos))
    if isinstance(pos, str):
        adata.obs["cancer"] = adata.obs["cancer"].astype("category")
    with caplog.at_level("INFO", logger="senca._labels"):
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer")
    np.testing.assert_array_equal(adata.obs["_spacrd_label"].to_numpy(), truth.astype(np.float32))
    said = [r.getMessage() for r in caplog.records if r.name == "senca._labels"]
    if case in ("bool", "0/1", "0.0/1.0", "true/false text", "0/1 text"):
        assert said == []
    else:  # a class chosen by its name is said once, with the way to choose otherwise
        assert len(said) == 1, said
        assert repr(taken) in said[0]
        assert "positive_label" in said[0]
    from pathlib import Path

    cli = _binary_labels(adata.obs["cancer"], None, Path("s.h5ad"))
    np.testing.assert_array_equal(cli.to_numpy(), truth.astype(float))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "values",
    [
        ["A", "B"],
        ["cancer", "cancer in situ"],
        ["non-cancer", "other"],
        [1, 2],
        ["yes", "no"],
        ["Invasive", "Surrounding tumor"],  # the 10x breast annotation: guessing would invert a class
        ["IDC_1", "Healthy_1"],
        ["Tumor_edge_1", "Tumor"],
    ],
)
def test_ambiguous_label_columns_are_refused_by_spacrd_and_cli(values):
    from pathlib import Path

    from senca.cli import CLIError
    from senca.cli import binary_labels as _binary_labels

    adata = _labelled(60)
    adata.obs["cancer"] = np.where(adata.obs["cancer"], values[0], values[1])
    with pytest.raises(ValueError, match="Cannot tell which label is the cancer class.*positive_label"):
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer")
    with pytest.raises(CLIError, match="Cannot tell which label is the cancer class.*--positive"):
        _binary_labels(adata.obs["cancer"], None, Path("s.h5ad"))
    # naming the class settles it, in both
    SpaCRD.setup_anndata(adata, layer="counts", labels_key="cancer", positive_label=values[0])
    assert adata.obs["_spacrd_label"].sum() == (adata.obs["cancer"] == values[0]).sum()
    y = _binary_labels(adata.obs["cancer"], [str(values[0])], Path("s.h5ad"))
    np.testing.assert_array_equal(y.to_numpy(), adata.obs["_spacrd_label"].to_numpy())
    with pytest.raises(CLIError, match="--positive.*matches no value"):
        _binary_labels(adata.obs["cancer"], ["nope"], Path("s.h5ad"))


def test_cli_labels_keep_missing_values_missing():
    """A target's unlabelled spots are left out of the metrics, not counted as non-cancer."""
    from pathlib import Path

    from senca.cli import binary_labels as _binary_labels

    y = _binary_labels(pd.Series(["cancer", None, "other", np.nan]), None, Path("t.h5ad"))
    np.testing.assert_array_equal(y.to_numpy(), [1.0, np.nan, 0.0, np.nan])


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_sparse_and_dense_counts_give_the_same_model_input(fmt):
    """Sparse (CSR/CSC) and dense counts are all accepted and give the same embedding (same seed)."""
    base = _tissue(80)
    emb = {}
    for f in ("csr", fmt):
        adata = base.copy()
        c = adata.layers["counts"]
        adata.layers["counts"] = {"dense": c.toarray(), "csr": sp.csr_matrix(c), "csc": sp.csc_matrix(c)}[f]
        emb[f] = _senca(adata, max_epochs=1).get_latent_representation()
    np.testing.assert_allclose(emb[fmt], emb["csr"], rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_backed_anndata(tmp_path):
    """Backed (on-disk) AnnData: counts in a layer (loaded by anndata) work; counts in the on-disk X give an error
    that says to call to_memory() or use a layer."""
    adata = _tissue(60)
    adata.X = adata.layers["counts"].copy()
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match="backed.*to_memory"):
            SENCA.setup_anndata(backed, image_key="X_histology")
        with pytest.raises(ValueError, match="backed.*to_memory"):
            SpaCRD.setup_anndata(backed, labels_key="section", positive_label="synthetic")
        SENCA.setup_anndata(backed, layer="counts", image_key="X_histology")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SENCA(backed, **SMALL)
            model.train(seed=0, **{**FIT, "max_epochs": 1})
        z = model.get_latent_representation()
        assert z.shape == (60, SMALL["n_latent"] + 8)  # expression components + 8 histology tokens
        assert np.isfinite(z).all()
        backed.obsm["X_senca"] = z
        senca.tl.regions(backed, n_regions=3)
        assert backed.obs["senca_region"].nunique() == 3
    finally:
        backed.file.close()


# ---------------------------------------------------------------------------------- SpaCRD.predict
def test_predict_target_genes_disjoint(detector):
    _, det = detector
    target = _tissue(60, seed=5)
    target.var_names = [f"ENSG{i:05d}" for i in range(target.n_vars)]
    with pytest.raises(ValueError, match="same gene identifiers"):
        det.predict(target, layer="counts")


def test_predict_nan_counts(detector):
    _, det = detector
    target = _tissue(60, seed=5)
    _nan_counts(target)
    with pytest.raises(ValueError, match="NaN"):
        det.predict(target, layer="counts")


def test_predict_non_integer_counts(detector):
    _, det = detector
    target = _tissue(60, seed=5)
    _non_integer(target)
    with pytest.raises(ValueError, match="integer"):
        det.predict(target, layer="counts")


def test_predict_unseen_sections_and_categories(detector):
    """Sections (categories) never seen at training are scored separately: works, scores in [0, 1]."""
    source, det = detector
    target = _tissue(120, seed=6)
    target.obs["section"] = pd.Categorical(["new_a"] * 60 + ["new_b"] * 60)
    det.predict(target, layer="counts", sample_key="section")
    for name in ("new_a", "new_b"):
        s = target.obs.loc[target.obs["section"] == name, "spacrd_score"]
        assert s.min() == 0.0
        assert s.max() == 1.0
    assert target.obs["spacrd_cancer"].dtype == bool


@pytest.mark.parametrize("fmt", ["dense", "csc"])
def test_predict_sparse_and_dense_targets_agree(detector, fmt):
    _, det = detector
    ref = _tissue(60, seed=5)
    other = ref.copy()
    c = other.layers["counts"]
    other.layers["counts"] = c.toarray() if fmt == "dense" else sp.csc_matrix(c)
    det.predict(ref, layer="counts")
    det.predict(other, layer="counts")
    np.testing.assert_allclose(other.obs["spacrd_score"], ref.obs["spacrd_score"], rtol=1e-6, atol=1e-9)


def test_predict_section_smaller_than_the_neighbourhood(detector):
    _, det = detector
    target = _tissue(60, seed=5)
    target.obs["section"] = ["a"] * 57 + ["b"] * 3
    with pytest.raises(ValueError, match="3 spots, fewer than n_neighbors"):
        det.predict(target, layer="counts", sample_key="section")
    assert "spacrd_score" not in target.obs


def test_predict_needs_overwrite(detector):
    _, det = detector
    target = _tissue(60, seed=7)
    det.predict(target, layer="counts")
    first = target.obs["spacrd_score"].copy()
    target.obs["spacrd_score"] = -1.0
    with pytest.raises(ValueError, match="overwrite=True"):
        det.predict(target, layer="counts")
    assert (target.obs["spacrd_score"] == -1.0).all()
    det.predict(target, layer="counts", overwrite=True)
    np.testing.assert_allclose(target.obs["spacrd_score"], first)


def _renamed(q):
    q = q.copy()
    q.var_names = [f"ENSG{i}" for i in range(q.n_vars)]
    return q


QUERY_GENES = {
    "missing genes": (lambda q: q[:, :20].copy(), "lacks 20"),
    "disjoint genes": (_renamed, "none"),
    "permuted genes": (lambda q: q[:, q.var_names[::-1]].copy(), "another order"),
}


@pytest.mark.parametrize("case", list(QUERY_GENES))
def test_senca_query_genes_must_match(trained, case):
    """SENCA reads genes by position: a query with other genes, or the same genes in another order, would give a
    silently wrong embedding. It must be refused with the fix."""
    _, model = trained
    make, words = QUERY_GENES[case]
    query = make(_tissue(60, seed=3))
    with pytest.raises(ValueError, match=words):
        model.get_latent_representation(query)


def test_senca_query_with_unseen_sample_categories(trained):
    """A query section whose sample names were never seen at training is embedded (neighbours within it)."""
    _, model = trained
    query = _tissue(60, seed=3)
    query.obs["section"] = pd.Categorical(["unseen"] * 60)
    z = model.get_latent_representation(query)
    assert z.shape == (60, SMALL["n_latent"] + 8)
    assert np.isfinite(z).all()


# ---------------------------------------------------------------------------------- histology images
def _image_case(kind: str) -> ad.AnnData:
    adata = _tissue(60, image=True)
    del adata.obsm["X_histology"]  # the synthetic features: extract_features writes its own
    lib = adata.uns["spatial"]["synthetic"]
    img = lib["images"]["hires"]  # uint8 RGB
    lib["images"]["hires"] = {
        "rgb_uint8": img,
        "grayscale": np.round(img.mean(-1)).astype(np.uint8),
        "gray_1ch": np.round(img.mean(-1, keepdims=True)).astype(np.uint8),
        "rgba": np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1),
        "uint16": img.astype(np.uint16) * 257,
        "float01": img.astype(np.float32) / 255,
        "float255": img.astype(np.float32),
    }[kind]
    return adata


@pytest.fixture(scope="module")
def rgb_features():
    adata = _image_case("rgb_uint8")
    senca.im.extract_features(adata, method="stats", progress=False, standardize=False)
    return adata.obsm["X_histology"]


@pytest.mark.parametrize("kind", ["rgba", "uint16", "float01", "float255", "grayscale", "gray_1ch"])
def test_image_formats(kind, rgb_features):
    """RGBA (opaque), uint16 and float images in [0, 1] or [0, 255] give the uint8-RGB features; gray works."""
    adata = _image_case(kind)
    senca.im.extract_features(adata, method="stats", progress=False, standardize=False)
    feats = adata.obsm["X_histology"]
    assert feats.shape == rgb_features.shape
    assert np.isfinite(feats).all()
    if kind in ("rgba", "uint16", "float01", "float255"):
        np.testing.assert_allclose(feats, rgb_features, rtol=1e-3, atol=1e-3)


def test_image_with_nan_pixels():
    """A float image with NaN pixels under some spots: a ValueError that points at the image and the fix."""
    adata = _image_case("float01")
    img = adata.uns["spatial"]["synthetic"]["images"]["hires"]
    img[10:200, 10:200] = np.nan
    with pytest.raises(ValueError, match=r"NaN(.|\n)*nan_to_num"):
        senca.im.extract_features(adata, progress=False)
    assert "X_histology" not in adata.obsm


def test_image_channels_first_is_rejected():
    adata = _image_case("rgb_uint8")
    lib = adata.uns["spatial"]["synthetic"]
    lib["images"]["hires"] = np.moveaxis(lib["images"]["hires"], -1, 0)
    with pytest.raises(ValueError, match="channels-first.*moveaxis"):
        senca.im.extract_features(adata, progress=False)


def test_coordinates_outside_the_image():
    adata = _image_case("rgb_uint8")
    adata.obsm["spatial"] = adata.obsm["spatial"] * 10
    with pytest.raises(ValueError, match="outside.*another frame"):
        senca.im.extract_features(adata, progress=False)


def test_coordinates_without_scale_factor():
    """No scale factor: the frame of the coordinates is unknown; say which key is missing."""
    adata = _image_case("rgb_uint8")
    del adata.uns["spatial"]["synthetic"]["scalefactors"]["tissue_hires_scalef"]
    with pytest.raises(KeyError, match="tissue_hires_scalef"):
        senca.im.extract_features(adata, progress=False)


def test_coordinates_in_the_hires_frame_are_caught():
    """Coordinates already in hires pixels (scale factor applied twice) land inside the image, in one corner, and
    would silently crop the wrong tissue: the spots are then closer than their diameter, which is caught."""
    adata = _image_case("rgb_uint8")
    adata.obsm["spatial"] = adata.obsm["spatial"] * 0.25
    with pytest.raises(ValueError, match="another frame.*full-resolution"):
        senca.im.extract_features(adata, progress=False)
    # an explicit spot_diameter= in the units of the coordinates is the user's way out
    senca.im.extract_features(adata, progress=False, spot_diameter=55 * 0.25)
    assert np.isfinite(adata.obsm["X_histology"]).all()


def test_no_image_at_all():
    adata = _tissue(60)
    with pytest.raises(KeyError, match="spatial"):
        senca.im.extract_features(adata, key_added="h", progress=False)


def test_extract_features_needs_overwrite():
    adata = _tissue(60, image=True)
    before = adata.obsm["X_histology"].copy()
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.im.extract_features(adata, progress=False)
    np.testing.assert_array_equal(adata.obsm["X_histology"], before)


# ---------------------------------------------------------------------------------- tl.regions
def _embedded(n: int = 60) -> ad.AnnData:
    adata = _tissue(n)
    adata.obsm["X_senca"] = np.random.default_rng(0).normal(size=(adata.n_obs, 5))
    return adata


def test_regions_more_regions_than_spots():
    adata = _embedded()
    with pytest.raises(ValueError, match="exceeds the number of spots.*fewer"):
        senca.tl.regions(adata, n_regions=adata.n_obs + 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_regions_non_finite_embedding(bad):
    adata = _embedded()
    adata.obsm["X_senca"][4, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite.*remove"):
        senca.tl.regions(adata, n_regions=3)


def test_regions_missing_embedding():
    adata = _tissue(60)
    with pytest.raises(KeyError, match="X_senca.*get_latent_representation"):
        senca.tl.regions(adata, n_regions=3)


def test_regions_fewer_spots_than_neighbours():
    """Refinement with more neighbours than spots works: the neighbourhood is clipped to the section."""
    adata = _embedded()[:5].copy()
    senca.tl.regions(adata, n_regions=2, n_neighbors=6, refine=True)
    assert adata.obs["senca_region"].notna().all()
    assert 1 <= adata.obs["senca_region"].nunique() <= 2


def test_regions_sparse_X_as_representation():
    adata = _tissue(60)
    adata.X = sp.csr_matrix(np.log1p(adata.layers["counts"].toarray()))
    senca.tl.regions(adata, n_regions=3, use_rep="X")
    assert adata.obs["senca_region"].nunique() == 3
    assert isinstance(adata.X, sp.csr_matrix)


# ---------------------------------------------------------------------------------- datasets readers
def test_her2st_unknown_section(tmp_path):
    with pytest.raises(ValueError, match="section"):
        senca.datasets.her2st("Z9", data_dir=tmp_path, download=False)


def test_her2st_missing_files(tmp_path, monkeypatch):
    # nowhere to find the files: no $SENCA_DATA_DIR, an empty cache, no download
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    monkeypatch.setenv("SENCA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError):
        senca.datasets.her2st("A1", data_dir=tmp_path, download=False)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"n_spots": 0}, "n_spots must be >= 1"),
        ({"n_regions": 0}, "n_regions must be >= 1"),
        ({"n_spots": 3, "n_regions": 4}, "exceeds n_spots"),
        ({"dispersion": 0.0}, "dispersion"),
        ({"frac_marker_genes": 1.5}, "frac_marker_genes"),
    ],
)
def test_synthetic_bad_parameters(kwargs, words):
    with pytest.raises(ValueError, match=words):
        senca.datasets.synthetic(**kwargs)


# ---------------------------------------------------------------------------------- CLI
def _cli(args):
    from typer.testing import CliRunner

    from senca.cli import app

    return CliRunner().invoke(app, args)


def test_cli_rejects_normalised_counts_and_keeps_files(tmp_path):
    """A bad input fails with one line naming the problem; the input file and an existing output are untouched."""
    adata = _tissue(60)
    adata.X = np.log1p(adata.layers["counts"].toarray())
    del adata.layers["counts"]
    inp, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata.write_h5ad(inp)
    _tissue(30).write_h5ad(out)
    in_bytes, out_bytes = inp.read_bytes(), out.read_bytes()
    res = _cli(["regions", str(inp), "-o", str(out), "--overwrite", "--max-epochs", "1", "--n-regions", "3"])
    assert res.exit_code != 0
    assert "integer" in res.output, res.output
    assert inp.read_bytes() == in_bytes
    assert out.read_bytes() == out_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad", "out.h5ad"]  # no temp file left


def test_cli_failure_midway_leaves_output_unchanged(tmp_path):
    """Training succeeds, region calling fails (too many regions): nothing is written, the old output stays."""
    adata = _tissue(60)
    inp, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata.write_h5ad(inp)
    out.write_bytes(b"previous result")
    in_bytes = inp.read_bytes()
    res = _cli(["regions", str(inp), "-o", str(out), "--overwrite", "--no-image", "--max-epochs", "1", "-k", "1000"])
    assert res.exit_code != 0
    assert "exceeds the number of spots" in res.output, res.output
    assert out.read_bytes() == b"previous result"
    assert inp.read_bytes() == in_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad", "out.h5ad"]


def test_cli_features_wrong_frame_fails_cleanly(tmp_path):
    """`senca features` on coordinates already scaled to the hires image: one-line error, no output written."""
    adata = _image_case("rgb_uint8")
    adata.obsm["spatial"] = adata.obsm["spatial"] * 0.25
    inp, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    adata.write_h5ad(inp)
    in_bytes = inp.read_bytes()
    res = _cli(["features", str(inp), "-o", str(out)])
    assert res.exit_code != 0
    assert "another frame" in res.output, res.output
    assert not out.exists()
    assert inp.read_bytes() == in_bytes


def test_validate_helpers_edge_cases():
    from senca._validate import check_counts, check_features, check_same_genes

    check_counts(sp.csr_matrix((3, 4), dtype=np.float32), "X")  # all-zero sparse counts are counts
    check_counts(np.zeros((2, 0)), "X")
    with pytest.raises(TypeError, match="numeric"):
        check_counts(np.array([["a"]], dtype=object), "X")
    with pytest.raises(ValueError, match="2-D"):
        check_features(np.zeros(3), "h")
    check_features(np.array([[np.nan, 1.0]]), "h", allow_nan=True)
    with pytest.raises(ValueError, match="infinite"):
        check_features(np.array([[np.inf, 1.0]]), "h", allow_nan=True)
    check_same_genes(pd.Index(["a", "b"]), ["a", "b"])
    with pytest.raises(ValueError, match="lacks 1"):
        check_same_genes(["a", "c", "d"], ["a", "b"])


# ========================================================================================= 2. no data loss
def test_no_public_function_edits_X_or_layers(trained, detector, tmp_path):
    """Every public function that takes an AnnData leaves X and the layers bit-identical."""
    adata = _tissue(80, image=True, seed=4)
    adata.X = adata.layers["counts"].toarray().astype(np.float32)  # dense X, sparse layer
    adata.layers["lognorm"] = sp.csr_matrix(np.log1p(adata.X))
    before = _snapshot(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        senca.pp.spatial_neighbors(adata, key_added="knn_test")
        senca.im.extract_features(adata, key_added="h_test", progress=False)
        model = _senca(adata, max_epochs=1)
        adata.obsm["X_senca"] = model.get_latent_representation()
        model.get_attention()
        senca.tl.regions(adata, n_regions=3)
        senca.tl.discordance(adata, model)
        senca.io.to_spatialdata(adata)
        senca.pp.concat_sections({"a": adata, "b": adata.copy()}, min_shared_genes=10)
        _, det = detector
        det.predict(adata, layer="counts")
        SpaCRD.setup_anndata(adata, layer="counts", labels_key="senca_region", positive_label="0")
        d2 = SpaCRD(adata, n_top_genes=20)
        d2.train(seed=0, **{**DET_FIT, "max_epochs": 1})
        senca.pl.regions(adata, color="senca_region", show=False)
        senca.pl.attention(adata, attention=model.get_attention(), show=False)
        senca.pl.cancer_score(adata, show=False)
        copied = senca.tl.regions(adata, n_regions=2, key_added="r2", copy=True)
        sdata = senca.io.to_spatialdata(adata)
        senca.io.from_spatialdata(sdata)
    _assert_unchanged(adata, before)
    assert copied.obs["r2"].nunique() == 2
    assert "r2" not in adata.obs  # copy=True left the original alone
    import matplotlib.pyplot as plt

    plt.close("all")


def test_obs_keys_need_overwrite():
    adata = _embedded()
    senca.tl.regions(adata, n_regions=3)
    labels = adata.obs["senca_region"].copy()
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        senca.tl.regions(adata, n_regions=4)
    pd.testing.assert_series_equal(adata.obs["senca_region"], labels)
    senca.tl.regions(adata, n_regions=4, overwrite=True)
    assert adata.obs["senca_region"].nunique() == 4


def test_obsm_keys_need_overwrite():
    adata = _tissue(60)
    senca.pp.spatial_neighbors(adata)
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.pp.spatial_neighbors(adata)


def test_discordance_needs_overwrite(trained):
    adata, model = trained
    adata = adata.copy()
    adata.obs["senca_discordance"] = 1.0
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.tl.discordance(adata, model)
    assert (adata.obs["senca_discordance"] == 1.0).all()


def test_model_save_refuses_to_overwrite(trained, tmp_path):
    _, model = trained
    path = tmp_path / "model"
    model.save(str(path))
    marker = path / "keep.txt"
    marker.write_text("x")
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        model.save(str(path))
    assert marker.exists()
    model.save(str(path), overwrite=True)


def test_spacrd_save_refuses_to_overwrite(detector, tmp_path):
    _, det = detector
    det.save(str(tmp_path / "det"))
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        det.save(str(tmp_path / "det"))


# ========================================================================================= 3. reproducibility
def test_same_seed_bit_identical_embeddings_and_regions():
    runs = []
    for _ in range(2):
        adata = _tissue(120, seed=8)
        model = _senca(adata, seed=3, max_epochs=2)
        adata.obsm["X_senca"] = model.get_latent_representation()
        senca.tl.regions(adata, n_regions=4, seed=3)
        runs.append(
            (
                model.get_latent_representation(),
                adata.obs["senca_region"].to_numpy(),
                model.history["train_loss"],
                model.selection_,
            )
        )
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    pd.testing.assert_frame_equal(runs[0][2], runs[1][2])
    assert runs[0][3] == runs[1][3]
    other = _senca(_tissue(120, seed=8), seed=4, max_epochs=2)
    assert other.selection_["loss"] != runs[0][3]["loss"], "the seed has no effect"


def test_seed_does_not_depend_on_global_state():
    """Global numpy/torch draws between runs must not change a seeded result."""
    import torch

    a = _senca(_tissue(80, seed=9), seed=1, max_epochs=1)
    np.random.rand(100)
    torch.rand(100)
    b = _senca(_tissue(80, seed=9), seed=1, max_epochs=1)
    np.testing.assert_array_equal(a.get_latent_representation(), b.get_latent_representation())
    assert a.selection_ == b.selection_
    pd.testing.assert_frame_equal(a.history["train_loss"], b.history["train_loss"])


def test_training_leaves_torch_global_flags_as_they_were():
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    _senca(_tissue(80, seed=9), seed=1, max_epochs=1)  # trains with deterministic=True
    assert torch.are_deterministic_algorithms_enabled() == before


def test_spacrd_same_seed_same_scores(detector):
    source, _ = detector
    scores = []
    for _ in range(2):
        src = source.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SpaCRD.setup_anndata(src, layer="counts", image_key="X_histology", labels_key="cancer", n_neighbors=5)
            det = SpaCRD(src, n_top_genes=30)
            det.train(seed=5, **DET_FIT)
        target = _tissue(60, seed=11)
        det.predict(target, layer="counts")
        scores.append(target.obs["spacrd_score"].to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])


# ========================================================================================= 4. interrupted training
class _Boom(Callback):
    """Raises in the middle of the second epoch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 0:
            raise RuntimeError("boom: interrupted on purpose")


@pytest.mark.filterwarnings("ignore")
def test_interrupted_training_leaves_model_usable_and_data_unchanged(tmp_path):
    adata = _tissue(150, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        model = SENCA(adata, **SMALL)
    before = _snapshot(adata)
    obsm_before = {k: np.array(v, copy=True) for k, v in adata.obsm.items()}
    obs_before = adata.obs.copy()
    with pytest.raises(RuntimeError, match="boom"):
        model.train(seed=0, **{**FIT, "max_epochs": 4}, callbacks=[_Boom()])
    _assert_unchanged(adata, before)
    assert set(adata.obsm) == set(obsm_before)
    for k, v in obsm_before.items():
        np.testing.assert_array_equal(adata.obsm[k], v)
    pd.testing.assert_frame_equal(adata.obs, obs_before)
    # usable: back at the network chosen before fine-tuning started, and it trains again to completion
    z = model.get_latent_representation()
    assert np.isfinite(z).all()
    assert not model.is_trained
    state = {k: v for k, v in model.module.state_dict().items() if k != "passes"}
    model.module.reset()
    for k, v in model.module.state_dict().items():
        if k in state:
            assert v.equal(state[k]), f"{k} kept a partial fine-tuning"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(seed=0, **{**FIT, "max_epochs": 2})
    assert model.is_trained
    assert np.isfinite(model.get_latent_representation()).all()


def test_training_again_after_load_gives_the_same_network(trained, tmp_path):
    """train() starts from the estimator: a saved and reloaded model trained with the same seed gives the same
    network as the original, and the saved state (chosen passes, fine-tuned weights) survives the round trip."""
    adata, model = trained
    path = tmp_path / "m"
    model.save(str(path))
    z0 = model.get_latent_representation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = SENCA.load(str(path), adata=adata, accelerator="cpu")
    np.testing.assert_array_equal(loaded.get_latent_representation(), z0)
    assert int(loaded.module.passes) == model.selection_["passes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.train(seed=0, **FIT)
    assert loaded.selection_ == model.selection_
    np.testing.assert_allclose(loaded.get_latent_representation(), z0, rtol=1e-5, atol=1e-6)
    shutil.rmtree(path)
