"""senca.pl: figures on synthetic tissue with and without an H&E image (headless Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.contour import ContourSet

import senca


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def with_image():
    adata = senca.datasets.synthetic(n_spots=300, n_regions=3, image=True, seed=0)
    rng = np.random.default_rng(0)
    adata.obs["senca_region"] = adata.obs["region"].cat.rename_categories(["0", "1", "2"])
    cancer = (adata.obs["region"] == "R1").to_numpy()
    adata.obs["cancer"] = cancer
    adata.obs["spacrd_score"] = np.clip(0.6 * cancer + rng.uniform(0, 0.4, adata.n_obs), 0, 1)
    adata.obs["spacrd_cancer"] = adata.obs["spacrd_score"] >= 0.5
    return adata


@pytest.fixture(scope="module")
def without_image(with_image):
    adata = with_image.copy()
    del adata.uns["spatial"]
    return adata


def _map_axes(fig):
    """Axes that hold the spots (not colour bars)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


@pytest.mark.parametrize("image", [True, False])
def test_regions_panels(with_image, without_image, image, tmp_path):
    adata = (with_image if image else without_image).copy()
    fig = senca.pl.regions(adata)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].get_images()) == (1 if image else 0)  # the H&E is drawn when there is one
    out = tmp_path / "regions.png"
    fig2 = senca.pl.regions(adata, groundtruth="region", save=out)
    assert len(fig2.axes) == 2
    assert out.exists()
    assert out.stat().st_size > 1000
    titles = [ax.get_title() for ax in fig2.axes]
    assert titles == ["senca_region", "region"]


def test_regions_img_false_and_errors(with_image):
    fig = senca.pl.regions(with_image.copy(), img=False)
    assert len(fig.axes[0].get_images()) == 0
    with pytest.raises(KeyError, match="senca.tl.regions"):
        senca.pl.regions(with_image, color="nope")
    with pytest.raises(KeyError, match="pathologist"):
        senca.pl.regions(with_image, groundtruth="pathologist")
    with pytest.raises(KeyError, match="library_id"):
        senca.pl.regions(with_image, library_id="other")


@pytest.mark.parametrize("image", [True, False])
@pytest.mark.parametrize("stat", ["entropy", "max", "self"])
def test_attention_map(with_image, without_image, image, stat):
    adata = with_image if image else without_image
    k = 6
    rng = np.random.default_rng(0)
    attn = rng.dirichlet(np.full(k, 0.5), size=adata.n_obs)
    fig = senca.pl.attention(adata, attn, stat=stat, neighbors=None)
    assert len(fig.axes) == 2  # map + colour bar
    ax = _map_axes(fig)[0]
    assert len(ax.get_images()) == (1 if image else 0)
    pts = ax.collections[-1]
    values = np.asarray(pts.get_array())
    assert values.shape == (adata.n_obs,)
    assert np.all((values >= 0) & (values <= 1 + 1e-9))
    if stat == "max":
        np.testing.assert_allclose(values, attn.max(1))
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    idx = senca.pp.knn_index(adata.obsm["spatial"], k)
    expected = ((attn > 1 / k) & (idx != np.arange(adata.n_obs)[:, None])).sum()
    assert len(lines) == 1
    assert len(lines[0].get_segments()) == expected


def test_attention_from_obsm_and_errors(with_image):
    adata = with_image.copy()
    uniform = np.full((adata.n_obs, 6), 1 / 6)
    adata.obsm["senca_attention"] = uniform
    senca.pp.spatial_neighbors(adata, n_neighbors=6)
    fig = senca.pl.attention(adata, lines=True)
    ax = _map_axes(fig)[0]
    np.testing.assert_allclose(np.asarray(ax.collections[-1].get_array()), 1.0)  # uniform = max entropy
    assert not any(isinstance(c, LineCollection) for c in ax.collections)  # nothing above uniform
    # the model's own index (obsm["senca_knn"]) is the one the attention columns refer to
    n = adata.n_obs
    own = np.column_stack([np.arange(n), (np.arange(n) + 7) % n, np.tile(np.arange(n)[:, None], (1, 4))])
    adata.obsm["senca_knn"] = own
    focused = np.zeros((n, 6))
    focused[:, 1] = 1.0
    fig = senca.pl.attention(adata, focused)
    (lines,) = [c for c in _map_axes(fig)[0].collections if isinstance(c, LineCollection)]
    ends = np.array([seg[1] for seg in lines.get_segments()])
    np.testing.assert_allclose(ends, adata.obsm["spatial"][(np.arange(n) + 7) % n])
    with pytest.raises(KeyError, match="get_attention"):
        senca.pl.attention(adata, "missing")
    with pytest.raises(ValueError, match="shape"):
        senca.pl.attention(adata, uniform[:10])
    with pytest.raises(ValueError, match="k=4"):
        senca.pl.attention(adata, np.full((adata.n_obs, 4), 0.25), neighbors="spatial_knn")
    with pytest.raises(ValueError, match="stat"):
        senca.pl.attention(adata, uniform, stat="mean")


@pytest.mark.parametrize("image", [True, False])
def test_cancer_score_with_boundary(with_image, without_image, image, tmp_path):
    adata = with_image if image else without_image
    fig = senca.pl.cancer_score(adata, truth_key="cancer", save=tmp_path / "score.pdf")
    assert (tmp_path / "score.pdf").exists()
    assert len(fig.axes) == 2
    ax = _map_axes(fig)[0]
    assert len(ax.get_images()) == (1 if image else 0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["called (spacrd_cancer)", "reference (cancer)"]
    # the called boundary is a real line between called and not-called spots
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 2
    verts = np.concatenate([p.vertices for p in contours[0].get_paths()])
    assert len(verts) > 5
    x, y = adata.obsm["spatial"][:, 0], adata.obsm["spatial"][:, 1]
    assert x.min() <= verts[:, 0].min()
    assert verts[:, 0].max() <= x.max()
    assert y.min() <= verts[:, 1].min()
    assert verts[:, 1].max() <= y.max()


def test_cancer_score_outline_and_errors(with_image):
    fig = senca.pl.cancer_score(with_image, boundary="outline")
    ax = _map_axes(fig)[0]
    rings = ax.collections[-1]
    assert len(rings.get_offsets()) == int(with_image.obs["spacrd_cancer"].sum())
    fig = senca.pl.cancer_score(with_image, call_key=None)
    assert _map_axes(fig)[0].get_legend() is None
    adata = with_image.copy()
    adata.obs["label"] = np.where(adata.obs["cancer"], "tumour", "normal")
    with pytest.raises(ValueError, match="boolean"):
        senca.pl.cancer_score(adata, call_key="label")
    with pytest.raises(KeyError, match="predict"):
        senca.pl.cancer_score(adata, score_key="nope")
    with pytest.raises(KeyError, match="call_key=None"):
        senca.pl.cancer_score(adata, call_key="nope")


def _history(n_epochs=12):
    e = pd.Index(np.arange(n_epochs), name="epoch")
    curve = np.exp(-np.arange(n_epochs) / 4)
    keys = {
        "train_loss_step": curve + 0.1,
        "train_loss_epoch": curve,
        "validation_loss": curve + 0.2,
        "elbo_train": 5 * curve,
        "elbo_validation": 5 * curve + 1,
        "reconstruction_loss_train": 3 * curve,
        "kl_local_train": np.full(n_epochs, np.nan),
    }
    return {k: pd.DataFrame({k: v}, index=e) for k, v in keys.items()}


class _Trained:
    """A trained model only needs .history for this plot."""

    def __init__(self, history):
        self.history = history


def test_history_panels():
    fig = senca.pl.history(_Trained(_history()))
    # loss (train + validation), elbo (train + validation), reconstruction_loss; no step curve, no all-NaN curve
    assert [ax.get_title() for ax in fig.axes] == ["loss", "elbo", "reconstruction_loss"]
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2, 1]
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), _history()["validation_loss"].iloc[:, 0])
    fig = senca.pl.history(_history(), keys=["train_loss_step", "elbo_train"], ncols=1, logy=True)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_yscale() == "log"


def test_history_errors():
    with pytest.raises(KeyError, match="not in the history"):
        senca.pl.history(_history(), keys=["nope"])
    with pytest.raises(ValueError, match="train"):
        senca.pl.history({})
    with pytest.raises(TypeError, match="history"):
        senca.pl.history(3)
    with pytest.raises(ValueError, match="finite"):
        senca.pl.history(_history(), keys=["kl_local_train"])


def test_regions_plot_on_her2st_a1(senca_data_dir):
    if not hasattr(senca.datasets, "her2st"):
        pytest.skip("senca.datasets.her2st is not available")
    adata = senca.datasets.her2st("A1", image="hires", data_dir=senca_data_dir, download=False)
    adata.obs["senca_region"] = adata.obs["pathologist"]
    fig = senca.pl.regions(adata, groundtruth="pathologist")
    assert len(fig.axes) == 2
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)
