"""senca.tl: region calling (gmm / leiden / kmeans, refinement, BIC) and discordance wiring."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import senca
from senca.metrics import region_scores
from senca.tl._refine import majority_refine


def _embed(adata: AnnData, n_comps: int = 10, smooth: bool = True) -> None:
    """log-normalised PCA of the counts, optionally averaged over each spot and its 6 nearest spots."""
    from sklearn.decomposition import PCA

    x = adata.layers["counts"].toarray()
    x = np.log1p(x / x.sum(1, keepdims=True) * 1e3)  # ~ the median library size, as scanpy's default
    pcs = PCA(n_components=n_comps, svd_solver="full", random_state=0).fit_transform(x)
    adata.obsm["X_pca"] = pcs
    if smooth:
        nb = senca.pp.knn_index(adata.obsm["spatial"], 7)
        adata.obsm["X_smooth"] = pcs[nb].mean(1)


@pytest.fixture(scope="module")
def tissue() -> AnnData:
    adata = senca.datasets.synthetic(n_spots=600, n_regions=4, fold_change=1.5, mean_library_size=1000, seed=0)
    _embed(adata)
    return adata


@pytest.mark.parametrize("method", ["gmm", "leiden", "kmeans"])
def test_regions_recover_synthetic_and_hit_n_regions(tissue, method):
    adata = tissue.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a missed n_regions warns
        senca.tl.regions(adata, n_regions=4, use_rep="X_smooth", method=method, n_pcs=10)
    lab = adata.obs["senca_region"]
    assert isinstance(lab.dtype, pd.CategoricalDtype)
    assert lab.cat.categories.tolist() == ["0", "1", "2", "3"]
    sizes = lab.value_counts(sort=False).to_numpy()
    assert np.all(np.diff(sizes) <= 0)  # numbered by decreasing size
    assert region_scores(adata.obs["region"], lab)["ari"] > 0.85
    conf = adata.obs["senca_region_confidence"].to_numpy()
    assert conf.dtype == np.float64
    assert np.all((conf >= 0) & (conf <= 1))
    assert conf.mean() > 0.8
    params = adata.uns["senca_region"]["params"]
    assert params["method"] == method
    assert params["n_regions"] == 4
    assert params["n_regions_requested"] == 4
    if method == "leiden":
        assert params["resolution"] > 0


def test_leiden_search_hits_other_counts(tissue):
    adata = tissue.copy()
    for n in (2, 6):
        senca.tl.regions(adata, n_regions=n, use_rep="X_smooth", method="leiden", refine=False, overwrite=True)
        assert adata.obs["senca_region"].nunique() == n


def test_refinement_improves_noisy_embedding(tissue):
    adata = tissue.copy()
    senca.tl.regions(adata, n_regions=4, use_rep="X_pca", refine=False, key_added="raw")
    senca.tl.regions(adata, n_regions=4, use_rep="X_pca", refine=True, key_added="ref")
    raw = region_scores(adata.obs["region"], adata.obs["raw"])["ari"]
    ref = region_scores(adata.obs["region"], adata.obs["ref"])["ari"]
    assert raw < 0.75
    assert ref > raw + 0.2


def test_refine_fixes_isolated_flipped_spot():
    adata = senca.datasets.synthetic(n_spots=400, n_regions=2, layout="stripes", seed=1)
    codes = adata.obs["region"].cat.codes.to_numpy().astype(float)
    # a perfectly separable 1-D embedding, with one interior spot moved to the other region's cluster
    nb = senca.pp.knn_index(adata.obsm["spatial"], 7)
    interior = np.flatnonzero((codes[nb] == codes[:, None]).all(1) & (codes == 0))
    flipped = interior[len(interior) // 2]
    emb = codes.copy()
    emb[flipped] = 1.0
    rng = np.random.default_rng(0)
    adata.obsm["X_emb"] = np.column_stack([emb * 10, rng.normal(size=adata.n_obs)])
    senca.tl.regions(adata, n_regions=2, use_rep="X_emb", refine=False, key_added="raw", n_pcs=None)
    senca.tl.regions(adata, n_regions=2, use_rep="X_emb", refine=True, key_added="ref", n_pcs=None)
    raw = adata.obs["raw"].to_numpy()
    ref = adata.obs["ref"].to_numpy()
    others = np.setdiff1d(np.arange(adata.n_obs), [flipped])
    assert raw[flipped] != raw[nb[flipped, 1]]  # the mixture follows the embedding
    assert ref[flipped] == ref[nb[flipped, 1]]  # the refinement follows the neighbours
    assert np.array_equal(raw[others] == raw[others[0]], ref[others] == ref[others[0]])  # nothing else moves
    # its confidence is the posterior of the called label, which the mixture gave to the other region
    assert adata.obs["ref_confidence"].iloc[flipped] < 0.01


def test_majority_refine_rules():
    # square of 4 spots: 3 labelled 0, one 1 -> the 1 joins the majority; a 2-2 tie changes nothing
    nbrs = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    assert majority_refine(np.array([0, 0, 0, 1]), nbrs).tolist() == [0, 0, 0, 0]
    assert majority_refine(np.array([0, 0, 1, 1]), nbrs).tolist() == [0, 0, 1, 1]
    codes = np.array([0, 0, 0, 1])
    majority_refine(codes, nbrs)
    assert codes.tolist() == [0, 0, 0, 1]  # input untouched


def test_refinement_stays_within_samples():
    # two sections at the same coordinates: without sample_key their spots would be each other's neighbours
    a = senca.datasets.synthetic(n_spots=200, n_regions=2, layout="stripes", seed=0, library_id="a")
    b = senca.datasets.synthetic(n_spots=200, n_regions=2, layout="stripes", seed=0, library_id="b")
    both = senca.pp.concat_sections({"a": a, "b": b})
    emb = np.r_[np.zeros(200), np.ones(200)][:, None] * 10 + np.random.default_rng(0).normal(size=(400, 1))
    both.obsm["X_emb"] = emb
    senca.tl.regions(both, n_regions=2, use_rep="X_emb", sample_key="section", n_pcs=None)
    assert region_scores(both.obs["section"], both.obs["senca_region"])["ari"] == 1.0


def test_bic_picks_true_number_on_clear_mixture():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(3, 5))
    labels = np.repeat(np.arange(3), 150)
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    noise = np.column_stack([rng.multivariate_normal([0, 0], cov, size=450), rng.normal(size=(450, 3))])
    adata = AnnData(obs=pd.DataFrame(index=[f"s{i}" for i in range(450)]))
    adata.obsm["X_emb"] = centres[labels] + noise
    senca.tl.regions(adata, use_rep="X_emb", refine=False, bic_range=(1, 6))
    bic = adata.uns["senca_region"]["bic"]
    assert bic["n_regions"].tolist() == list(range(1, 7))
    assert int(bic["n_regions"][np.argmin(bic["bic"])]) == 3
    assert adata.obs["senca_region"].nunique() == 3
    assert adata.uns["senca_region"]["params"]["n_regions_requested"] == -1
    assert region_scores(labels, adata.obs["senca_region"])["ari"] == 1.0
    # kmeans takes its number from the same BIC curve
    senca.tl.regions(adata, use_rep="X_emb", method="kmeans", refine=False, bic_range=(2, 6), key_added="km")
    assert adata.obs["km"].nunique() == 3


def test_same_seed_same_regions(tissue):
    for method in ("gmm", "leiden", "kmeans"):
        a, b = tissue.copy(), tissue.copy()
        senca.tl.regions(a, n_regions=4, use_rep="X_pca", method=method, seed=3)
        senca.tl.regions(b, n_regions=4, use_rep="X_pca", method=method, seed=3)
        assert np.array_equal(a.obs["senca_region"].to_numpy(), b.obs["senca_region"].to_numpy())
        assert np.array_equal(a.obs["senca_region_confidence"].to_numpy(), b.obs["senca_region_confidence"].to_numpy())


def test_overwrite_copy_and_inputs_untouched(tissue):
    adata = tissue.copy()
    rep = adata.obsm["X_smooth"].copy()
    x = adata.X.copy()
    senca.tl.regions(adata, n_regions=4, use_rep="X_smooth")
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.tl.regions(adata, n_regions=3, use_rep="X_smooth")
    assert adata.obs["senca_region"].nunique() == 4  # the refused call wrote nothing
    adata.obs = adata.obs.drop(columns=["senca_region", "senca_region_confidence"])
    with pytest.raises(ValueError, match=r"uns\['senca_region'\]"):  # uns is protected too
        senca.tl.regions(adata, n_regions=3, use_rep="X_smooth")
    senca.tl.regions(adata, n_regions=3, use_rep="X_smooth", overwrite=True)
    assert adata.obs["senca_region"].nunique() == 3
    out = senca.tl.regions(adata, n_regions=2, use_rep="X_smooth", key_added="other", copy=True)
    assert isinstance(out, AnnData)
    assert "other" in out.obs
    assert "other" not in adata.obs
    assert np.array_equal(adata.obsm["X_smooth"], rep)
    assert (adata.X != x).nnz == 0


def test_regions_validation(tissue):
    adata = tissue[:50].copy()
    with pytest.raises(ValueError, match="exceeds the number of spots"):
        senca.tl.regions(adata, n_regions=51, use_rep="X_pca")
    with pytest.raises(KeyError, match="X_senca"):
        senca.tl.regions(adata, n_regions=3)
    bad = adata.obsm["X_pca"].copy()
    bad[3, 1] = np.nan
    adata.obsm["X_bad"] = bad
    with pytest.raises(ValueError, match="NaN"):
        senca.tl.regions(adata, n_regions=3, use_rep="X_bad")
    with pytest.raises(ValueError, match="method"):
        senca.tl.regions(adata, n_regions=3, use_rep="X_pca", method="louvain")
    with pytest.raises(TypeError, match="n_regions"):
        senca.tl.regions(adata, n_regions=2.5, use_rep="X_pca")
    with pytest.raises(KeyError, match="refine=False"):
        senca.tl.regions(adata, n_regions=3, use_rep="X_pca", spatial_key="nope")
    with pytest.raises(KeyError, match="sample_key"):
        senca.tl.regions(adata, n_regions=3, use_rep="X_pca", sample_key="nope")
    assert "senca_region" not in adata.obs


def test_regions_on_her2st_a1(senca_data_dir):
    if not hasattr(senca.datasets, "her2st"):
        pytest.skip("senca.datasets.her2st is not available")
    adata = senca.datasets.her2st("A1", image=None, data_dir=senca_data_dir, download=False)
    import scanpy as sc

    b = adata.copy()
    sc.pp.filter_genes(b, min_cells=10)
    sc.pp.normalize_total(b)
    sc.pp.log1p(b)
    sc.pp.highly_variable_genes(b, n_top_genes=2000)
    sc.pp.pca(b, n_comps=30, mask_var="highly_variable", random_state=0)
    nb = senca.pp.knn_index(adata.obsm["spatial"], 7)
    adata.obsm["X_smooth"] = b.obsm["X_pca"][nb].mean(1)
    n_classes = adata.obs["pathologist"][adata.obs["pathologist"] != "undetermined"].nunique()
    senca.tl.regions(adata, n_regions=int(n_classes), use_rep="X_smooth", n_pcs=10, n_neighbors=4, seed=0)
    scores = region_scores(adata.obs["pathologist"], adata.obs["senca_region"])
    assert scores["n"] == (adata.obs["pathologist"] != "undetermined").sum()
    assert scores["ari"] > 0.15


class _StandIn:
    """Only the wiring of tl.discordance: an object with get_discordance, not a model."""

    def __init__(self, values, trained=True):
        self.values = values
        self.is_trained_ = trained

    def get_discordance(self, adata):
        return self.values


def test_discordance_wiring():
    adata = AnnData(obs=pd.DataFrame(index=[f"s{i}" for i in range(5)]))
    senca.tl.discordance(adata, _StandIn(np.arange(5.0)))
    assert adata.obs["senca_discordance"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.tl.discordance(adata, _StandIn(np.zeros(5)))
    senca.tl.discordance(adata, _StandIn(np.zeros((5, 1))), overwrite=True)
    assert adata.obs["senca_discordance"].sum() == 0
    with pytest.raises(ValueError, match=r"expected \(5,\)"):
        senca.tl.discordance(adata, _StandIn(np.zeros(4)), key_added="d2")
    # the score does not depend on training: an untrained model is scored like a trained one
    senca.tl.discordance(adata, _StandIn(np.ones(5), trained=False), key_added="d3")
    assert adata.obs["d3"].tolist() == [1.0] * 5
    with pytest.raises(TypeError, match="get_discordance"):
        senca.tl.discordance(adata, object(), key_added="d4")
    assert "d2" not in adata.obs


def test_shared_covariance_mixture_separates_elongated_regions():
    # two long parallel clusters: one shared, strongly anisotropic covariance (mclust EEE's case);
    # k-means cuts across them, the tied mixture recovers them
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 200)
    emb = np.column_stack([rng.normal(scale=8.0, size=400), 2.0 * labels + rng.normal(scale=0.4, size=400)])
    adata = AnnData(obs=pd.DataFrame(index=[f"s{i}" for i in range(400)]))
    adata.obsm["X_emb"] = emb
    senca.tl.regions(adata, n_regions=2, use_rep="X_emb", method="gmm", refine=False, key_added="gmm")
    senca.tl.regions(adata, n_regions=2, use_rep="X_emb", method="kmeans", refine=False, key_added="km")
    assert region_scores(labels, adata.obs["gmm"])["ari"] > 0.95
    assert region_scores(labels, adata.obs["km"])["ari"] < 0.2
    conf = adata.obs["gmm_confidence"].to_numpy()
    assert np.median(conf) > 0.95


# ----------------------------------------------------------------------------------------- assign_regions
def _halves():
    """One synthetic tissue cut in two along x: the left half is the reference, the right half a 'new section'."""
    adata = senca.datasets.synthetic(n_spots=900, n_regions=4, layout="stripes", fold_change=1.5, seed=2)
    _embed(adata)
    left = (adata.obsm["spatial"][:, 1] < np.median(adata.obsm["spatial"][:, 1])).astype(bool)
    return adata[left].copy(), adata[~left].copy()


@pytest.mark.parametrize("method", ["gmm", "kmeans", "leiden"])
def test_assign_regions_reproduces_the_reference_and_labels_new_spots_alike(method):
    ref, new = _halves()
    senca.tl.regions(ref, n_regions=4, use_rep="X_smooth", method=method, n_pcs=10)
    again = ref.copy()
    senca.tl.assign_regions(again, ref, key_added="again")
    agree = (again.obs["again"].astype(str) == ref.obs["senca_region"].astype(str)).mean()
    assert agree > (0.95 if method == "leiden" else 0.99)  # Leiden regions are not nearest-centre regions
    senca.tl.assign_regions(new, ref)
    assert new.obs["senca_region"].cat.categories.tolist() == ref.obs["senca_region"].cat.categories.tolist()
    assert region_scores(new.obs["region"], new.obs["senca_region"])["ari"] > 0.8
    # one vocabulary: each true region carries the same label in both halves
    maj_ref = pd.crosstab(ref.obs["region"], ref.obs["senca_region"]).idxmax(1)
    maj_new = pd.crosstab(new.obs["region"], new.obs["senca_region"]).idxmax(1)
    assert (maj_ref == maj_new).all()
    conf = new.obs["senca_region_confidence"].to_numpy()
    assert np.all((conf >= 0) & (conf <= 1))
    assert new.uns["senca_region"]["params"]["assigned"]


def test_assign_regions_survives_h5ad_and_checks_its_input(tmp_path):
    import anndata as ad

    ref, new = _halves()
    senca.tl.regions(ref, n_regions=4, use_rep="X_smooth")
    ref.write_h5ad(tmp_path / "ref.h5ad")
    back = ad.read_h5ad(tmp_path / "ref.h5ad")
    a, b = new.copy(), new.copy()
    senca.tl.assign_regions(a, ref)
    senca.tl.assign_regions(b, back)
    assert (a.obs["senca_region"] == b.obs["senca_region"]).all()
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.tl.assign_regions(a, ref)
    with pytest.raises(KeyError, match="no regions under 'other'"):
        senca.tl.assign_regions(new.copy(), ref, reference_key="other")
    wrong = new.copy()
    wrong.obsm["X_smooth"] = wrong.obsm["X_smooth"][:, :3]
    with pytest.raises(ValueError, match="embed the new spots with the reference.s model"):
        senca.tl.assign_regions(wrong, ref)
    old = ref.copy()
    del old.uns["senca_region"]["caller"]
    with pytest.raises(KeyError, match="call senca.tl.regions on the reference again"):
        senca.tl.assign_regions(new.copy(), old)
