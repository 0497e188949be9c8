"""senca.im: scale-aware spot patches and histology feature extractors."""

from __future__ import annotations

import importlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import senca
from senca.im import extract_features, spot_patches


def _adata(image, coords_full, scalef=1.0, diameter=20.0, img_key="hires", lib="lib"):
    a = ad.AnnData(obs=pd.DataFrame(index=[f"s{i}" for i in range(len(coords_full))]))
    a.obsm["spatial"] = np.asarray(coords_full, dtype=float)
    a.uns["spatial"] = {
        lib: {
            "images": {img_key: image},
            "scalefactors": {f"tissue_{img_key}_scalef": scalef, "spot_diameter_fullres": diameter},
        }
    }
    return a


def _patches(data, **kw):
    """All patches in obs order (lazily read SpatialData images come tile by tile)."""
    chunks = list(spot_patches(data, **kw))
    rows = np.concatenate([c.rows for c in chunks])
    order = np.argsort(rows, kind="stable")
    return rows[order], np.concatenate([c.patches for c in chunks])[order]


def _smooth_image(h, w, seed=0):
    """Smooth random RGB texture (uint8), so that resampling at different scales agrees."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / 40.0
    chans = []
    for _ in range(3):
        a, b, c, d = rng.uniform(0.5, 2.0, 4)
        chans.append(0.5 + 0.25 * np.sin(a * xx + b * yy) + 0.2 * np.cos(c * xx - d * yy))
    return (np.clip(np.stack(chans, -1), 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def synth():
    a = senca.datasets.synthetic(n_spots=120, n_regions=3, image=True, seed=1)
    del a.obsm["X_histology"]  # the simulator's own features; the tests write new ones
    return a


# ---------------------------------------------------------------------------------------------------------------
# patches


@pytest.mark.parametrize("size", [9, 16, 33])
def test_patch_centred_on_marked_pixel(size):
    img = np.zeros((300, 400, 3), np.uint8)
    marks = [(120, 50), (201, 233), (30, 270)]  # (x, y) in image pixels
    for x, y in marks:
        img[y, x] = 255
    scalef = 0.5
    a = _adata(img, np.array(marks) / scalef, scalef=scalef, diameter=40.0)
    rows, p = _patches(a, size=size, context=1.0)
    assert p.shape == (3, size, size, 3)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(rows, [0, 1, 2])
    yy, xx = np.mgrid[:size, :size]
    for k in range(3):
        w = p[k, ..., 0]
        assert w.sum() > 0
        # intensity centroid exactly at the patch centre, and the brightest pixel there
        assert abs((w * yy).sum() / w.sum() - (size - 1) / 2) < 1e-3
        assert abs((w * xx).sum() / w.sum() - (size - 1) / 2) < 1e-3
        if size % 2:
            assert np.unravel_index(w.argmax(), w.shape) == (size // 2, size // 2)


def test_context_scales_patch_side():
    # a bright square exactly one spot diameter wide fills the context-1 patch and 1/4 of the context-2 patch
    img = np.zeros((200, 200), np.uint8)
    img[80:120, 80:120] = 255
    a = _adata(img, [[99.5, 99.5]], scalef=1.0, diameter=40.0)
    _, p = _patches(a, size=20, context=(1.0, 2.0))
    assert p.shape == (1, 2, 20, 20, 3)
    assert p[0, 0].mean() > 0.97
    assert abs(p[0, 1].mean() - 0.25) < 0.03


def test_scale_factors_honoured_hires_vs_fullres():
    full = _smooth_image(810, 960)
    f = 3
    # hires pixel k is centred on full-resolution pixel f * k (squidpy: hires = fullres * scalef)
    rolled = np.roll(full, (1, 1), axis=(0, 1)).astype(float)
    hires = rolled.reshape(270, f, 320, f, 3).mean((1, 3)).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    lattice = np.stack(np.meshgrid(np.arange(5), np.arange(5)), -1).reshape(-1, 2) * 130.0 + 120.0
    coords = lattice + rng.uniform(-10, 10, size=lattice.shape)  # sub-pixel positions, spots 130 px apart
    a_full = _adata(full, coords, scalef=1.0, diameter=80.0, img_key="fullres")
    a_hi = _adata(hires, coords, scalef=1 / f, diameter=80.0, img_key="hires")
    _, p_full = _patches(a_full, size=16, context=(1.0, 2.0))
    _, p_hi = _patches(a_hi, size=16, context=(1.0, 2.0))
    assert np.abs(p_full - p_hi).max() < 0.02
    # a wrong scale factor gives other content
    a_wrong = _adata(hires, coords, scalef=1 / f * 0.8, diameter=80.0)
    _, p_wrong = _patches(a_wrong, size=16, context=1.0)
    assert np.abs(p_wrong - p_full[:, 0]).max() > 0.1


def test_border_spots_padded():
    img = np.full((100, 100, 3), 200, np.uint8)
    a = _adata(img, [[0.0, 0.0], [99.0, 50.0], [50.0, 50.0]], diameter=40.0)
    _, p = _patches(a, size=20, context=1.0, pad_value=0.0)
    corner, right, inside = p
    v = 200 / 255
    assert np.allclose(inside, v, atol=1e-5)
    # spot on the corner: the top-left quadrant is padding, the bottom-right is image
    assert corner[:8, :8].max() < 1e-6
    assert np.allclose(corner[12:, 12:], v, atol=1e-5)
    assert right[:, :8].min() > v - 1e-5
    assert right[:, 12:].max() < 1e-6
    _, p_edge = _patches(a, size=20, context=1.0, pad_mode="edge")
    assert np.allclose(p_edge, v, atol=1e-5)
    _, p_refl = _patches(a, size=20, context=1.0, pad_mode="reflect")
    assert np.allclose(p_refl, v, atol=1e-5)


def test_image_formats_give_the_same_patches():
    rgb = _smooth_image(120, 150, seed=3)
    coords = [[40.0, 50.0], [100.0, 70.0], [75.0, 20.0]]
    ref = _patches(_adata(rgb, coords), size=12, context=1.0)[1]
    gray = rgb[..., 0]
    ref_gray = _patches(_adata(gray, coords), size=12, context=1.0)[1]
    assert np.allclose(ref_gray, ref_gray[..., :1])  # grayscale is replicated to RGB
    np.testing.assert_allclose(ref_gray[..., 0], ref[..., 0], atol=1e-5)
    np.testing.assert_allclose(_patches(_adata(gray[..., None], coords), size=12)[1], ref_gray, atol=1e-6)
    variants = {
        "rgba": np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1),
        "uint16": rgb.astype(np.uint16) * 257,
        "float01": rgb.astype(np.float32) / 255,
        "float255": rgb.astype(np.float64),
    }
    for name, img in variants.items():
        p = _patches(_adata(img, coords), size=12)[1]
        assert p.dtype == np.float32, name
        assert p.min() >= 0, name
        assert p.max() <= 1, name
        np.testing.assert_allclose(p, ref, atol=1e-5, err_msg=name)
    # a transparent RGBA image is white
    clear = variants["rgba"].copy()
    clear[..., 3] = 0
    assert np.allclose(_patches(_adata(clear, coords), size=12)[1], 1.0)
    # a 12-bit image in uint16 with value_range
    p12 = _patches(_adata((rgb.astype(np.uint16) * 16), coords), size=12, value_range=255 * 16)[1]
    np.testing.assert_allclose(p12, ref, atol=1e-5)


def test_out_of_image_and_missing_scale_factor_raise():
    img = np.zeros((100, 100, 3), np.uint8)
    # coordinates in full-resolution pixels but the scale factor forgotten (set to 1): spots land off the image
    a = _adata(img, [[50.0, 50.0], [380.0, 90.0]], scalef=1.0)
    with pytest.raises(ValueError, match=r"1 of 2 spots fall outside.*another frame"):
        list(spot_patches(a))
    with pytest.raises(ValueError, match="outside"):
        extract_features(a, progress=False)
    b = _adata(img, [[50.0, 50.0]], scalef=1.0)
    del b.uns["spatial"]["lib"]["scalefactors"]["tissue_hires_scalef"]
    with pytest.raises(KeyError, match="No scale factor.*scale_factor="):
        list(spot_patches(b))
    assert len(list(spot_patches(b, scale_factor=1.0))) == 1
    # coordinates already in hires pixels (scale factor applied twice): inside the image but crowded in a corner
    grid = np.stack(np.meshgrid(np.arange(10, 90, 10.0), np.arange(10, 90, 10.0)), -1).reshape(-1, 2)
    d = _adata(img, grid * 0.25, scalef=0.25, diameter=5.0)
    with pytest.raises(ValueError, match=r"would overlap.*another frame.*full-resolution"):
        list(spot_patches(d))
    assert len(list(spot_patches(d, spot_diameter=1.0))) == 1  # an explicit diameter is trusted
    assert len(list(spot_patches(_adata(img, grid, scalef=0.25, diameter=5.0)))) == 1
    c = _adata(img, [[50.0, 50.0]])
    del c.uns["spatial"]
    with pytest.raises(KeyError, match="uns\\['spatial'\\] is missing"):
        list(spot_patches(c))
    with pytest.raises(ValueError, match="context"):
        list(spot_patches(a, context=0))


def test_chunks_bound_memory(synth):
    chunks = list(spot_patches(synth, size=8, context=(1, 2, 4), chunk_size=50))
    assert [len(c.rows) for c in chunks] == [50, 50, 20]
    assert all(c.patches.shape[1:] == (3, 8, 8, 3) for c in chunks)


def test_several_libraries(synth):
    other = senca.datasets.synthetic(n_spots=80, n_regions=3, image=True, seed=2, library_id="other")
    synth2 = synth.copy()
    synth2.uns["spatial"] = {"s1": synth.uns["spatial"]["synthetic"]}
    synth2.obs["section"] = "s1"
    other.obs["section"] = "other"
    both = senca.pp.concat_sections({"s1": synth2, "other": other})
    kw = {"key_added": "X_he", "progress": False, "standardize": False, "context": 1.0}
    with pytest.raises(ValueError, match="library_key"):
        extract_features(both, **kw)
    extract_features(both, library_key="section", **kw)
    alone = synth2.copy()
    extract_features(alone, **kw)
    np.testing.assert_allclose(both.obsm["X_he"][: synth.n_obs], alone.obsm["X_he"], rtol=1e-5, atol=1e-5)
    assert both.uns["senca"]["histology"]["library_ids"] == ["s1", "other"]
    # a library without an image (her2st B1 next to A1): NaN rows on request, for SpaCRD's "no image" spots
    both.uns["spatial"]["other"]["images"] = {}
    with pytest.raises(KeyError, match="missing_image='nan'"):
        extract_features(both, library_key="section", overwrite=True, **kw)
    extract_features(both, library_key="section", missing_image="nan", key_added="X_nan", progress=False)
    x = both.obsm["X_nan"]
    assert np.isnan(x[synth.n_obs :]).all()
    assert np.isfinite(x[: synth.n_obs]).all()
    np.testing.assert_allclose(x[: synth.n_obs].mean(0), 0, atol=1e-4)
    assert both.uns["senca"]["histology"]["n_spots_without_image"] == 80


# ---------------------------------------------------------------------------------------------------------------
# features


def test_glcm_and_lbp_match_skimage():
    from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

    from senca.im._stats import GLCM_ANGLES, GLCM_PROPS, glcm, glcm_props, lbp_codes

    rng = np.random.default_rng(0)
    q = (rng.random((4, 24, 24)) * 16).astype(np.int64)
    q[0] = 5  # flat patch: correlation defined as 1
    q[1, :, :12] = 2
    g, props = glcm(q), glcm_props(glcm(q))
    for k in range(4):
        ref = graycomatrix(q[k].astype(np.uint8), [1, 2], list(GLCM_ANGLES), levels=16, symmetric=True, normed=True)
        np.testing.assert_allclose(g[k], ref, atol=1e-12)
        for i, name in enumerate(GLCM_PROPS):
            np.testing.assert_allclose(props[k, i], graycoprops(ref, name), atol=1e-6, err_msg=name)
    img = (rng.random((6, 32, 32)) * 255).astype(np.uint8)
    codes = lbp_codes(img)
    ref = np.stack([local_binary_pattern(x, 8, 1, method="uniform")[1:-1, 1:-1] for x in img])
    assert (codes == ref).mean() > 0.999


def test_stats_features_separate_histology(synth):
    a = synth.copy()
    extract_features(a, method="stats", progress=False)
    x = a.obsm["X_histology"]
    assert x.shape == (a.n_obs, 120)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
    info = a.uns["senca"]["histology"]
    assert info["method"] == "stats"
    assert info["context"] == [1.0, 2.0]
    assert len(info["feature_names"]) == 120
    # regions with different histology programmes are told apart by a linear classifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    clf = LogisticRegression(C=0.1, max_iter=2000)
    acc = cross_val_score(clf, x, a.obs["histology_program"].to_numpy(), cv=5).mean()
    assert acc > 0.85
    b = synth.copy()
    extract_features(b, method="stats", progress=False)
    np.testing.assert_array_equal(x, b.obsm["X_histology"])


def test_overwrite_and_copy(synth):
    a = synth.copy()
    a.obsm["X_histology"] = np.zeros((a.n_obs, 2))
    with pytest.raises(ValueError, match="overwrite=True"):
        extract_features(a, progress=False)
    out = extract_features(a, key_added="X_he", context=1.0, copy=True, progress=False)
    assert "X_he" in out.obsm
    assert "X_he" not in a.obsm
    assert extract_features(a, overwrite=True, progress=False) is None
    assert a.obsm["X_histology"].shape[1] == 120
    with pytest.raises(ValueError, match="method must be"):
        extract_features(a, method="vgg", key_added="X2", progress=False)


def test_cnn_deterministic_and_seeded(synth):
    kw = {"method": "cnn", "context": (1.0, 2.0), "progress": False, "method_kwargs": {"epochs": 2, "width": 8}}
    runs = []
    for seed in (0, 0, 1):
        a = synth.copy()
        extract_features(a, key_added="X_cnn", seed=seed, **kw)
        runs.append(a.obsm["X_cnn"])
    assert runs[0].shape == (synth.n_obs, 128)
    assert np.isfinite(runs[0]).all()
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    assert a.uns["senca"]["histology"]["method_epochs"] == 2


def test_callable_extractor(synth):
    a = synth.copy()

    def mean_colour(p):
        assert p.ndim == 4
        assert p.shape[1:] == (32, 32, 3)
        assert p.dtype == np.float32
        return p.mean((1, 2))

    extract_features(a, method=mean_colour, key_added="X_mean", standardize=False, progress=False)
    _, p = _patches(a, size=32, context=(1.0, 2.0))
    np.testing.assert_allclose(a.obsm["X_mean"], np.concatenate([p[:, 0].mean((1, 2)), p[:, 1].mean((1, 2))], 1), 1e-5)
    assert a.uns["senca"]["histology"]["method"].startswith("callable:")
    with pytest.raises(ValueError, match="n_patches, n_features"):
        extract_features(a, method=lambda p: p.mean(), key_added="X_bad", progress=False)


def test_spatialdata_gives_the_same_features(synth):
    pytest.importorskip("spatialdata")
    a = synth.copy()
    if hasattr(senca.io, "to_spatialdata"):
        sdata = senca.io.to_spatialdata(a)
    else:  # pragma: no cover - fallback while senca.io is being written
        sdata = _to_sdata(a)
    extract_features(a, method="stats", progress=False)
    extract_features(sdata, method="stats", progress=False)
    table = sdata.tables["table"]
    np.testing.assert_allclose(table.obsm["X_histology"], a.obsm["X_histology"], atol=1e-4)
    assert table.uns["senca"]["histology"]["method"] == "stats"
    _, pa = _patches(a, size=16, context=1.0)
    _, ps = _patches(sdata, size=16, context=1.0)
    np.testing.assert_allclose(ps, pa, atol=1e-6)
    # copy=True leaves the SpatialData untouched
    out = extract_features(sdata, key_added="X_copy", context=1.0, copy=True, progress=False)
    assert "X_copy" in out.tables["table"].obsm
    assert "X_copy" not in sdata.tables["table"].obsm


def _to_sdata(a):
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity, Scale

    info = a.uns["spatial"]["synthetic"]
    sf = info["scalefactors"]["tissue_hires_scalef"]
    img = Image2DModel.parse(
        np.moveaxis(info["images"]["hires"], -1, 0),
        dims=("c", "y", "x"),
        transformations={"global": Scale([1 / sf, 1 / sf], axes=("x", "y"))},
    )
    circles = ShapesModel.parse(
        np.asarray(a.obsm["spatial"]),
        geometry=0,
        radius=np.full(a.n_obs, info["scalefactors"]["spot_diameter_fullres"] / 2),
        transformations={"global": Identity()},
    )
    t = a.copy()
    t.obs["region"] = pd.Categorical(["spots"] * a.n_obs)
    t.obs["spot_id"] = np.arange(a.n_obs)
    t = TableModel.parse(t, region="spots", region_key="region", instance_key="spot_id")
    return SpatialData(images={"he": img}, shapes={"spots": circles}, tables={"table": t})


def test_spatialdata_transformations_and_multiscale(synth, monkeypatch):
    pytest.importorskip("spatialdata")
    import senca.im._patches as patches_module

    a = synth.copy()
    sd_built = _to_sdata(a)
    assert hasattr(sd_built.images["he"].data, "compute")  # dask-backed: read lazily, tile by tile
    rows_a, pa = _patches(a, size=12, context=(1.0, 3.0))
    monkeypatch.setattr(patches_module, "_TILE", 40)  # many small tiles, spots at tile and image borders
    rows_s, ps = _patches(sd_built, size=12, context=(1.0, 3.0), chunk_size=7)
    assert rows_s.tolist() == list(range(a.n_obs))
    np.testing.assert_allclose(ps, pa, atol=1e-6)
    monkeypatch.undo()
    pa = pa[:, 0]
    with pytest.raises(KeyError, match="Table 'nope'"):
        extract_features(sd_built, table_key="nope", progress=False)
    if not hasattr(senca.io, "to_spatialdata"):  # pragma: no cover
        return
    # multiscale image: full resolution while a spot covers >= size / min(context) pixels, else a coarser level
    sd_ms = senca.io.to_spatialdata(a, scale_factors=[2])
    np.testing.assert_allclose(_patches(sd_ms, size=12, context=1.0)[1], pa, atol=1e-6)
    coarse = _patches(sd_ms, size=4, context=1.0)[1]
    fine = _patches(a, size=4, context=1.0)[1]
    assert np.abs(coarse.mean((1, 2)) - fine.mean((1, 2))).max() < 0.05


def _timm_importable() -> bool:
    try:
        importlib.import_module("timm")
    except Exception:  # noqa: BLE001 - timm raises RuntimeError when torchvision is broken
        return False
    return True


@pytest.mark.skipif(_timm_importable(), reason="timm imports here: the missing-timm error cannot be tested")
def test_timm_missing_gives_clear_error(synth):
    with pytest.raises(ImportError, match=r"method='timm' needs the optional package timm.*pip install"):
        extract_features(synth.copy(), method="timm", key_added="X_timm", progress=False)


@pytest.mark.skipif(not _timm_importable(), reason="timm is not installed (or cannot import with this torch)")
def test_timm_extractor_runs(synth):  # pragma: no cover - only where timm imports
    a = synth.copy()
    extract_features(
        a,
        method="timm",
        model_name="resnet18",
        pretrained=False,
        size=64,
        context=1.0,
        key_added="X_timm",
        progress=False,
    )
    assert a.obsm["X_timm"].shape == (a.n_obs, 512)
    assert np.isfinite(a.obsm["X_timm"]).all()


def test_her2st_a1_stats_features_find_cancer(senca_data_dir):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    a = senca.datasets.her2st("A1", image="hires", data_dir=senca_data_dir)
    a = a[(a.obs["pathologist"] != "undetermined").to_numpy()].copy()
    extract_features(a, method="stats", progress=False)
    x = a.obsm["X_histology"]
    assert x.shape == (a.n_obs, 120)
    assert np.isfinite(x).all()
    y = a.obs["pathologist"].isin(["invasive cancer", "cancer in situ"]).to_numpy()
    clf = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
    auc = cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc").mean()
    assert auc > 0.8
