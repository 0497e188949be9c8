"""senca.pp: combining sections and the within-sample spatial neighbour index."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import senca


@pytest.fixture(scope="module")
def a1_b1(senca_data_dir):
    a1 = senca.datasets.her2st("A1", image="hires", data_dir=senca_data_dir, download=False)
    b1 = senca.datasets.her2st("B1", image=None, data_dir=senca_data_dir, download=False)
    return a1, b1


def test_concat_sections_keeps_the_shared_genes_and_counts(a1_b1):
    a1, b1 = a1_b1
    both = senca.pp.concat_sections([a1, b1])
    b1_genes = set(b1.var_names)
    shared = [g for g in a1.var_names if g in b1_genes]
    assert list(both.var_names) == shared  # intersection, in A1's order
    assert len(shared) < min(a1.n_vars, b1.n_vars)  # genes unique to one section are dropped
    assert both.n_obs == a1.n_obs + b1.n_obs
    assert both.obs["section"].cat.categories.tolist() == ["A1", "B1"]
    assert both.obs_names.is_unique
    assert both.obs_names[0] == f"A1_{a1.obs_names[0]}"
    # raw counts travel unchanged, gene by gene and spot by spot
    for section, part in (("A1", a1), ("B1", b1)):
        rows = (both.obs["section"] == section).to_numpy()
        assert (both.X[rows] != part[:, shared].X).nnz == 0
        assert (both.layers["counts"][rows] != part[:, shared].layers["counts"]).nnz == 0
        assert np.array_equal(both.obsm["spatial"][rows], part.obsm["spatial"])
    assert set(both.uns["spatial"]) == {"A1", "B1"}
    assert both.uns["spatial"]["A1"]["images"]["hires"].shape == (2138, 2000, 3)
    assert both.obs["pathologist"].notna().all()  # both sections are labelled
    # inputs untouched
    assert "A1_" not in a1.obs_names[0]


def test_spatial_neighbors_stay_within_sections_and_are_nearest(a1_b1):
    both = senca.pp.concat_sections(list(a1_b1))
    senca.pp.spatial_neighbors(both, n_neighbors=7, sample_key="section")
    idx = both.obsm["spatial_knn"]
    assert idx.shape == (both.n_obs, 7)
    assert idx.dtype == np.int64
    assert np.array_equal(idx[:, 0], np.arange(both.n_obs))  # self in column 0
    section = both.obs["section"].to_numpy()
    assert (section[idx] == section[:, None]).all()  # never crosses sections
    # the two sections share a pixel frame range, so a cross-section neighbour would often be closer:
    coords = both.obsm["spatial"]
    crossing = senca.pp.knn_index(coords, 7)
    assert (section[crossing] != section[:, None]).any()
    # and within a section they are the 6 nearest other spots
    for s in ("A1", "B1"):
        rows = np.flatnonzero(section == s)
        d = cdist(coords[rows], coords[rows])
        kth = np.sort(d, axis=1)[:, 6]
        local = np.searchsorted(rows, idx[rows])
        got = d[np.arange(len(rows))[:, None], local]
        assert np.all(got <= kth[:, None] + 1e-9)


def test_spatial_neighbors_key_handling():
    adata = senca.datasets.synthetic(n_spots=80, n_genes=20, seed=0)
    senca.pp.spatial_neighbors(adata, n_neighbors=4)
    with pytest.raises(ValueError, match="overwrite=True"):
        senca.pp.spatial_neighbors(adata, n_neighbors=4)
    senca.pp.spatial_neighbors(adata, n_neighbors=5, overwrite=True)
    assert adata.obsm["spatial_knn"].shape[1] == 5
    out = senca.pp.spatial_neighbors(adata, n_neighbors=3, key_added="knn3", copy=True)
    assert "knn3" in out.obsm
    assert "knn3" not in adata.obsm
    with pytest.raises(KeyError, match="sample_key"):
        senca.pp.spatial_neighbors(adata, sample_key="nope", key_added="x")
    with pytest.raises(KeyError, match="spatial_key"):
        senca.pp.spatial_neighbors(adata, spatial_key="nope", key_added="x")


def test_knn_index_self_first_with_duplicate_coordinates():
    coords = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    idx = senca.pp.knn_index(coords, 3)
    assert np.array_equal(idx[:, 0], np.arange(5))
    assert all(len(set(row)) == 3 for row in idx)
    with pytest.raises(ValueError, match="fewer than n_neighbors"):
        senca.pp.knn_index(coords, 3, groups=np.array([0, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        senca.pp.knn_index(np.array([[0.0, np.nan], [1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="shape"):
        senca.pp.knn_index(np.arange(4.0), 1)


def test_concat_sections_errors():
    a = senca.datasets.synthetic(n_spots=50, n_genes=120, seed=0)
    b = senca.datasets.synthetic(n_spots=50, n_genes=120, seed=1)
    with pytest.raises(ValueError, match="unique"):
        senca.pp.concat_sections([a, b])  # both are named "synthetic"
    b.var_names = [f"other{i}" for i in range(b.n_vars)]
    with pytest.raises(ValueError, match="shared by all sections"):
        senca.pp.concat_sections({"a": a, "b": b})
    with pytest.raises(ValueError, match="at least one"):
        senca.pp.concat_sections([])


def test_select_genes_keeps_whole_library_and_leaves_input_alone():
    adata = senca.datasets.synthetic(n_spots=200, n_genes=300, seed=0)
    before = adata.layers["counts"].copy()
    hvg = senca.pp.select_genes(adata, n_top_genes=100)
    assert hvg.shape == (200, 100)
    np.testing.assert_allclose(hvg.obs["library_size"], np.asarray(adata.layers["counts"].sum(1)).ravel())
    assert (hvg.obs["library_size"] > np.asarray(hvg.layers["counts"].sum(1)).ravel()).all()
    assert "library_size" not in adata.obs
    assert (adata.layers["counts"] != before).nnz == 0
    with pytest.raises(ValueError, match="overwrite"):
        senca.pp.select_genes(hvg, n_top_genes=50)


def test_senca_library_key_changes_normalisation():
    import warnings

    adata = senca.pp.select_genes(senca.datasets.synthetic(n_spots=150, n_genes=300, seed=0), n_top_genes=100)
    zs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key in (None, "library_size"):
            senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", library_key=key)
            model = senca.model.SENCA(adata, n_latent=4)
            model.train(seed=0)
            zs.append(model.get_latent_representation())
    assert not np.allclose(zs[0], zs[1])
    adata.obs["bad"] = 0.0
    with pytest.raises(ValueError, match="positive"):
        senca.model.SENCA.setup_anndata(adata, layer="counts", library_key="bad")


def _thinned(adata, fraction: float, seed: int = 0):
    """``adata`` with every count kept with probability ``fraction`` (binomial thinning), empty spots dropped."""
    x = adata.layers["counts"].tocsr().copy()
    x.data = np.random.default_rng(seed).binomial(x.data.astype(np.int64), fraction).astype(np.float32)
    x.eliminate_zeros()
    out = adata.copy()
    out.X, out.layers["counts"] = x, x.copy()
    return out[np.asarray(x.sum(1)).ravel() > 0].copy()


def test_gene_selection_on_shallow_counts_falls_back_without_loess():
    """At tens of UMIs per spot seurat_v3's loess breaks; the dispersion flavour takes over, with a warning."""
    from sklearn.metrics import adjusted_rand_score

    deep = senca.datasets.synthetic(n_spots=400, n_genes=3000, mean_library_size=700, seed=0)
    shallow = senca.datasets.synthetic(n_spots=400, n_genes=3000, mean_library_size=20, seed=0)
    assert np.median(np.asarray(shallow.layers["counts"].sum(1))) < 25
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # deep data: seurat_v3 as ever, no warning
        senca.model.SENCA.setup_anndata(deep, layer="counts", image_key="X_histology", n_top_genes=1000)
    with pytest.warns(UserWarning, match=r"loess fit .*median 2\d UMIs per spot.*flavor='seurat'"):
        senca.model.SENCA.setup_anndata(shallow, layer="counts", image_key="X_histology", n_top_genes=1000)
    for adata in (deep, shallow):
        manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
        assert len(manager.registry["setup_args"]["genes"]) == 1000
        adata.obsm["X_senca"] = senca.model.SENCA(adata).get_latent_representation()
        senca.tl.regions(adata, n_regions=4)
        assert adjusted_rand_score(adata.obs["region"], adata.obs["senca_region"]) > 0.8
    with pytest.warns(UserWarning, match="loess"):
        hvg = senca.pp.select_genes(shallow, n_top_genes=1000, overwrite=True)
    assert hvg.n_vars == 1000
    assert np.isfinite(hvg.var["highly_variable_rank"]).all()


def test_gene_selection_on_thinned_her2st(senca_data_dir):
    """her2st thinned to 0.02x and 0.1x (29 and 675 median UMIs per spot) broke seurat_v3 in every case tried."""
    cases = {"B1": 0.02, "D1": 0.1}
    for section, fraction in cases.items():
        adata = _thinned(senca.datasets.her2st(section, image=None, data_dir=senca_data_dir, download=False), fraction)
        depth = np.median(np.asarray(adata.layers["counts"].sum(1)))
        assert 20 <= depth <= 700
        with pytest.warns(UserWarning, match="loess"):
            senca.model.SENCA.setup_anndata(adata, layer="counts")
        manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
        genes = manager.registry["setup_args"]["genes"]
        assert len(genes) == 3000
        assert set(genes) <= set(adata.var_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no image: expression-only mode
            z = senca.model.SENCA(adata).get_latent_representation()
        assert z.shape[0] == adata.n_obs
        assert np.isfinite(z).all()


def test_spacrd_gene_features_are_computed_row_by_row():
    """SpaCRD's standardised genes come from the sparse counts on demand, equal to the dense computation."""
    import scipy.sparse as sp

    from senca.pp._section_features import SectionGenes, gene_features

    a = senca.datasets.synthetic(n_spots=300, n_genes=80, seed=0, library_id="a")
    b = senca.datasets.synthetic(n_spots=200, n_genes=80, seed=1, library_id="b", mean_library_size=800)
    both = senca.pp.concat_sections([a, b], min_shared_genes=80)
    counts, groups = both.layers["counts"], both.obs["section"].to_numpy()
    genes = [*both.var_names[::2], "absent"]
    dense = np.log1p(counts[:, ::2].toarray().astype(np.float64) * (1e4 / np.asarray(counts.sum(1)).astype(np.float64)))
    dense = np.c_[dense, np.zeros(len(dense))]
    for method in ("zscore", "minmax"):
        x = gene_features(sp.csr_matrix(counts), both.var_names, genes, groups, method)
        assert isinstance(x, SectionGenes)
        assert x.shape == (500, 41)
        expected = np.zeros_like(dense, dtype=np.float32)
        for g in ("a", "b"):
            rows = groups == g
            d = dense[rows]
            lo, spread = (d.mean(0), d.std(0)) if method == "zscore" else (d.min(0), d.max(0) - d.min(0))
            expected[rows] = np.clip((d - lo) / np.where(spread > 1e-6, spread, np.inf), -10, 10)
        np.testing.assert_array_equal(np.asarray(x), expected)  # the same values, to the last bit
        idx = np.random.default_rng(0).integers(0, 500, (20, 7))
        np.testing.assert_array_equal(x[idx], expected[idx])  # neighbourhoods, as loaders gather them
        np.testing.assert_array_equal(x[10:30], expected[10:30])
        np.testing.assert_array_equal(x[groups == "b"], expected[groups == "b"])
    assert np.all(np.asarray(x)[:, -1] == 0)  # a gene the data lacks is 0
