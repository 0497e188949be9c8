"""SENCA: the network starts at the estimator, train() fits the passes, the paper's property on synthetic tissue,
determinism, save/load, query data, scale, validation."""

from __future__ import annotations

import threading
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import senca
from senca.data import REGISTRY_KEYS, NeighborhoodDataLoader, neighbor_key
from senca.model import SENCA

# R1/R2 look alike in H&E but express differently; R3/R4 express alike but look different.
DESIGN = {"n_regions": 4, "expression_map": [0, 1, 2, 2], "histology_map": [0, 0, 1, 2]}


def _tissue(seed: int, n_spots: int = 400):
    return senca.datasets.synthetic(n_spots=n_spots, seed=seed, **DESIGN)


def _clusters(emb: np.ndarray, n: int = 4) -> np.ndarray:
    return KMeans(n, n_init=10, random_state=0).fit_predict(emb)


def _pair_ari(adata, labels, pair) -> float:
    """ARI restricted to the spots of two regions: ~0 when the clustering cannot tell them apart."""
    keep = adata.obs["region"].isin(pair).to_numpy()
    return adjusted_rand_score(adata.obs["region"].to_numpy()[keep], labels[keep])


def _trained(adata, seed: int = 0, image: bool = True, **fit):
    SENCA.setup_anndata(adata, layer="counts", image_key="X_histology" if image else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = SENCA(adata)
        model.train(seed=seed, **fit)
    return model


def _thinned(adata, fraction: float, seed: int = 0):
    """The same tissue sequenced shallower: every count kept with probability ``fraction``."""
    rng = np.random.default_rng(seed)
    out = adata.copy()
    c = sp.csr_matrix(out.layers["counts"])
    c.data = rng.binomial(np.rint(c.data).astype(np.int64), fraction).astype(np.float32)
    out.layers["counts"] = c
    out.X = c.copy()
    return out


def _estimator(adata, model) -> np.ndarray:
    """SENCA's estimator written out in numpy from the fitted heads: a Gaussian kernel on the H&E tokens (bandwidth
    the median squared distance between neighbours) mixing the expression PCs, twice, next to the mixed H&E tokens
    weighted by their spatial autocorrelation at the expression block's spread."""
    heads = model.module
    counts = sp.csr_matrix(adata.layers["counts"]).toarray().astype(np.float64)
    x = np.log1p(1e4 * counts / np.maximum(counts.sum(1, keepdims=True), 1.0))
    e = x @ heads.gene_head.weight.double().numpy().T + heads.gene_head.bias.double().numpy()
    h = np.asarray(adata.obsm["X_histology"], dtype=np.float64)
    keys = h @ heads.image_head.weight.double().numpy().T + heads.image_head.bias.double().numpy()
    idx = adata.obsm["senca_knn"]
    k, nbr = idx.shape[1], idx[:, 1:]
    d2 = ((keys[:, None] - keys[nbr]) ** 2).sum(-1)
    logits = -d2 / (2 * np.median(d2))
    a = np.exp(logits - logits.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)

    def smooth(v):
        for _ in range(2):
            v = v / k + (1 - 1 / k) * np.einsum("nk,nkd->nd", a, v[nbr])
        return v

    def signal(v):
        m = v[nbr].mean(1)
        c = ((v - v.mean(0)) * (m - m.mean(0))).sum(0) / np.sqrt(
            ((v - v.mean(0)) ** 2).sum(0) * ((m - m.mean(0)) ** 2).sum(0)
        )
        return np.clip(c, 0, None)

    ze, zh = smooth(e), smooth(keys)
    scale = np.sqrt(ze.var(0).sum()) / np.sqrt(zh.var(0).sum())
    return np.hstack([ze, scale * zh * signal(keys)])


@pytest.fixture(scope="module")
def trained_both():
    """Three seeds of SENCA with both modalities on the decoupled synthetic tissue."""
    out = []
    for seed in range(3):
        adata = _tissue(seed)
        out.append((adata, _trained(adata, seed=seed)))
    return out


def test_recovers_regions_that_need_both_modalities(trained_both):
    for adata, model in trained_both:
        labels = _clusters(model.get_latent_representation())
        ari = adjusted_rand_score(adata.obs["region"], labels)
        assert ari >= 0.9, ari
        # both distinctions are made: the expression-only one (R1/R2) and the histology-only one (R3/R4)
        assert _pair_ari(adata, labels, ["R1", "R2"]) > 0.8
        assert _pair_ari(adata, labels, ["R3", "R4"]) > 0.8


def test_single_modality_cannot_recover_all_regions(trained_both):
    adata, _ = trained_both[0]
    # expression only (no image_key): R3 and R4 express alike, so they stay merged
    expr = adata.copy()
    with pytest.warns(UserWarning, match="expression-only"):
        model = _trained_warning_visible(expr)
    labels = _clusters(model.get_latent_representation())
    assert _pair_ari(expr, labels, ["R3", "R4"]) < 0.3
    assert adjusted_rand_score(expr.obs["region"], labels) < 0.8
    # histology only, spatially smoothed like the model's neighbourhood: R1 and R2 look alike
    nbr = adata.obsm["senca_knn"]
    hist = adata.obsm["X_histology"][nbr].mean(1)
    labels = _clusters(hist)
    assert _pair_ari(adata, labels, ["R1", "R2"]) < 0.3
    assert adjusted_rand_score(adata.obs["region"], labels) < 0.8


def _trained_warning_visible(adata):
    SENCA.setup_anndata(adata, layer="counts", image_key=None)
    model = SENCA(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.train(seed=0)
    return model


def test_discordance_is_a_finite_non_negative_score(trained_both):
    adata, model = trained_both[0]
    d = model.get_discordance()
    assert d.shape == (adata.n_obs,)
    assert d.dtype == np.float32
    assert np.all(d >= 0)
    assert np.isfinite(d).all()
    assert d.std() > 0
    senca.tl.discordance(adata, model)
    np.testing.assert_allclose(adata.obs["senca_discordance"].to_numpy(), d, rtol=1e-6)


def _border(adata, pair) -> tuple[np.ndarray, np.ndarray]:
    """Spots of ``pair`` next to the other region of the pair, and spots of ``pair`` with no other region near."""
    region = adata.obs["region"].astype(str).to_numpy()
    nbr = adata.obsm["senca_knn"][:, 1:]
    mine = np.isin(region, pair)
    other = np.where(region == pair[0], pair[1], pair[0])
    border = mine & (region[nbr] == other[:, None]).any(1)
    inside = mine & (region[nbr] == region[:, None]).all(1)
    return border, inside


def test_discordance_marks_borders_hidden_from_the_h_and_e(trained_both):
    # R1/R2 look alike in H&E but express differently: their border is discordant; R3/R4 are the reverse
    for adata, model in trained_both:
        d = model.get_discordance()
        border, inside = _border(adata, ("R1", "R2"))
        assert border.sum() >= 10
        assert d[border].mean() > 1.8 * d[inside].mean()
        border, inside = _border(adata, ("R3", "R4"))
        if border.sum() >= 10:
            assert d[border].mean() < 1.3 * d[inside].mean()


def test_attention_shapes_and_rows_sum_to_one(trained_both):
    adata, model = trained_both[0]
    a = model.get_attention()
    assert a.shape == (adata.n_obs, 6)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a[:, 0], 1.0 / 6, rtol=1e-6)  # the spot keeps 1/k, the neighbours share the rest
    with pytest.raises(ValueError, match="representation"):
        model.get_attention(representation="learned")


def test_untrained_network_is_the_estimator_with_identical_regions():
    adata = _tissue(0, n_spots=300)
    SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
    model = SENCA(adata)
    z = model.get_latent_representation()
    ref = _estimator(adata, model)
    assert z.shape == ref.shape == (300, 60)
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_array_equal(z, model.get_latent_representation(representation="estimator"))
    adata.obsm["net"], adata.obsm["ref"] = z, ref.astype(np.float32)
    senca.tl.regions(adata, n_regions=4, use_rep="net", key_added="r_net")
    senca.tl.regions(adata, n_regions=4, use_rep="ref", key_added="r_ref")
    np.testing.assert_array_equal(adata.obs["r_net"].to_numpy(), adata.obs["r_ref"].to_numpy())


def test_train_chooses_the_passes_and_the_default_output_is_the_network():
    full = _tissue(0, n_spots=300)
    SENCA.setup_anndata(full, layer="counts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        deep = SENCA(full)
        deep.train(seed=0)
        # shallow data ask for more mixing than deep data of the same tissue: the choice follows the data
        shallow_data = _thinned(full, 0.05)
        SENCA.setup_anndata(shallow_data, layer="counts")
        shallow = SENCA(shallow_data)
        before = shallow.get_latent_representation()
        shallow.train(seed=0)
    assert len(deep.selection_["loss"]) == 8
    assert deep.selection_["passes"] == int(np.argmin(deep.selection_["loss"])) + 1
    assert shallow.selection_["passes"] > deep.selection_["passes"]
    after = shallow.get_latent_representation()
    assert not np.allclose(after, before)  # training changed what the user gets...
    np.testing.assert_array_equal(shallow.get_latent_representation(representation="estimator"), before)
    net = shallow.module  # ...and it is the network's forward pass with the chosen layers
    assert int(net.passes) == shallow.selection_["passes"]
    assert after.shape == before.shape
    assert shallow.is_trained_


def test_fine_tuning_runs_with_lightning_and_is_kept_only_if_held_out_loss_improves():
    adata = _tissue(1, n_spots=200)
    model = _trained(adata, seed=0)
    selected = model.get_latent_representation()
    model.train(seed=0, max_epochs=3, lr=0.05, enable_progress_bar=False)
    info = model.finetune_
    assert set(info) == {"validation_before", "validation_after", "kept"}
    assert "train_loss" in model.history
    assert "validation_loss" in model.history
    assert len(model.history["train_loss"]) == 3
    z = model.get_latent_representation()
    if info["kept"]:
        assert info["validation_after"] < info["validation_before"]
        assert not np.allclose(z, selected)
    else:  # back to the state after choosing the passes, exactly
        np.testing.assert_array_equal(z, selected)


def test_same_seed_identical_embedding_different_seed_differs():
    adata = _thinned(_tissue(0, n_spots=200), 0.2)
    models = [_trained(adata, seed=s, max_epochs=2, lr=0.05, enable_progress_bar=False) for s in (3, 3, 4)]
    runs = [m.get_latent_representation() for m in models]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert models[0].selection_ == models[1].selection_
    assert models[0].selection_["loss"] != models[2].selection_["loss"]  # other count splits
    # the estimator does not depend on the seed at all
    np.testing.assert_array_equal(
        models[0].get_latent_representation(representation="estimator"),
        models[2].get_latent_representation(representation="estimator"),
    )


def test_save_load_round_trip(trained_both, tmp_path):
    adata, model = trained_both[0]
    z = model.get_latent_representation()
    disc = model.get_discordance()
    model.save(tmp_path / "with", save_anndata=True)
    model.save(tmp_path / "without")
    loaded = SENCA.load(tmp_path / "with")  # AnnData read back from the folder
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    loaded = SENCA.load(tmp_path / "without", adata=adata)
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    np.testing.assert_array_equal(loaded.get_discordance(), disc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        bare = SENCA.load(tmp_path / "without", adata=False)  # no data at all: set up on first use
    np.testing.assert_array_equal(bare.get_latent_representation(adata.copy()), z)


def test_model_trained_on_one_section_embeds_another(trained_both):
    adata, model = trained_both[0]
    rng = np.random.default_rng(7)
    query = adata.copy()  # another "section" of the same tissue: new counts noise, new image noise
    counts = query.layers["counts"].toarray().astype(np.int64)
    query.layers["counts"] = sp.csr_matrix(rng.binomial(counts, 0.7).astype(np.float32))
    query.X = query.layers["counts"].copy()
    query.obsm["X_histology"] = query.obsm["X_histology"] + rng.normal(0, 0.3, query.obsm["X_histology"].shape)
    del query.obsm["senca_knn"]
    for key in list(query.uns):
        del query.uns[key]
    before = (set(query.obsm), set(query.obs), set(query.uns))
    z = model.get_latent_representation(query)
    assert z.shape == (query.n_obs, model.get_latent_representation().shape[1])
    assert np.isfinite(z).all()
    # its own neighbour index was computed, and nothing was written into the query: a getter only returns
    assert (set(query.obsm), set(query.obs), set(query.uns)) == before
    np.testing.assert_array_equal(model.get_latent_representation(query), z)  # and again, the same
    assert adjusted_rand_score(query.obs["region"], _clusters(z)) > 0.8


def test_no_image_mode_trains_and_warns_once():
    adata = _tissue(1, n_spots=150)
    SENCA.setup_anndata(adata, layer="counts")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SENCA(adata)
        model.train(max_epochs=2, seed=0, enable_progress_bar=False)
        z = model.get_latent_representation()
    ours = [w for w in caught if "expression-only" in str(w.message)]
    assert len(ours) == 1
    assert z.shape == (150, 50)  # expression PCs only: no histology block without an image
    assert np.isfinite(z).all()
    a = model.get_attention(representation="estimator")
    np.testing.assert_allclose(a[:, 1:], 1 / 6, rtol=1e-6)  # without an image the estimator weighs neighbours alike


def test_neighbours_never_cross_samples_and_loader_gathers_rows():
    a = senca.datasets.synthetic(n_spots=120, seed=0, library_id="a")
    b = senca.datasets.synthetic(n_spots=150, seed=1, library_id="b")
    both = senca.pp.concat_sections([a, b])  # identical coordinates in both sections
    SENCA.setup_anndata(both, layer="counts", image_key="X_histology", sample_key="section", n_neighbors=7)
    nbr = both.obsm["senca_knn"]
    section = both.obs["section"].to_numpy()
    assert nbr.shape == (270, 7)
    assert np.array_equal(nbr[:, 0], np.arange(270))
    assert np.all(section[nbr] == section[:, None])
    manager = SENCA._get_most_recent_anndata_manager(both)
    batch = next(iter(NeighborhoodDataLoader(manager, indices=np.arange(100, 164), batch_size=64)))
    idx = batch[REGISTRY_KEYS.NEIGHBOR_KEY]
    assert idx.dtype == torch.int64
    assert idx.shape == (64, 7)
    counts = both.layers["counts"].toarray()
    np.testing.assert_array_equal(batch[neighbor_key(REGISTRY_KEYS.X_KEY)].numpy(), counts[idx.numpy()])
    np.testing.assert_allclose(batch[neighbor_key(REGISTRY_KEYS.IMAGE_KEY)].numpy(), both.obsm["X_histology"][idx])
    assert sp.issparse(both.layers["counts"])  # the bank was not densified in place


def test_twenty_thousand_spots_train_without_dense_n_by_n():
    psutil = pytest.importorskip("psutil")
    adata = senca.datasets.synthetic(n_spots=20_000, n_genes=100, n_histology=16, seed=0)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.005)

    thread = threading.Thread(target=poll, daemon=True)
    tracemalloc.start()
    thread.start()
    try:
        SENCA.setup_anndata(adata, layer="counts", image_key="X_histology")
        model = SENCA(adata, n_latent=10)
        model.train(max_epochs=1, seed=0, enable_progress_bar=False)
        z = model.get_latent_representation()
    finally:
        stop.set()
        thread.join()
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    dense = 20_000**2 * 4  # one float32 n_obs x n_obs matrix: 1.6 GB
    assert z.shape == (20_000, 20)  # 10 PCs + 10 histology tokens
    assert py_peak < dense / 8, py_peak  # numpy/python allocations
    assert peak[0] - base < dense / 4, (peak[0] - base) / 1e6  # everything, torch included


def test_setup_errors_are_clear():
    adata = _tissue(0, n_spots=60)
    with pytest.raises(KeyError, match="X_missing"):
        SENCA.setup_anndata(adata, layer="counts", image_key="X_missing")
    with pytest.raises(KeyError, match="layers"):
        SENCA.setup_anndata(adata, layer="raw")
    with pytest.raises(KeyError, match="spatial"):
        SENCA.setup_anndata(adata, layer="counts", spatial_key="xy")
    with pytest.raises(ValueError, match="n_neighbors"):
        SENCA.setup_anndata(adata[:4].copy(), layer="counts", n_neighbors=6)
    logged = adata.copy()
    logged.X = np.log1p(logged.X.toarray())
    with pytest.raises(ValueError, match="integer counts"):
        SENCA.setup_anndata(logged)
    neg = adata.copy()
    neg.X = -neg.X.toarray()
    with pytest.raises(ValueError, match="negative"):
        SENCA.setup_anndata(neg)
    bad = adata.copy()
    bad.obsm["X_histology"][3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SENCA.setup_anndata(bad, layer="counts", image_key="X_histology")
    # a neighbour index made stale by subsetting after setup is caught, not silently misread
    SENCA.setup_anndata(adata, layer="counts")
    manager = SENCA._get_most_recent_anndata_manager(adata)
    adata.obsm["senca_knn"] = adata.obsm["senca_knn"][::-1].copy()
    with pytest.raises(ValueError, match="stale"):
        NeighborhoodDataLoader(manager)


def test_spatialdata_table_is_registered_and_accepted():
    pytest.importorskip("spatialdata")
    adata = _tissue(0, n_spots=120)
    sdata = senca.io.to_spatialdata(adata)
    table_key = next(iter(sdata.tables))
    table = sdata.tables[table_key]
    if "spatial" not in table.obsm:
        table.obsm["spatial"] = adata.obsm["spatial"]
    SENCA.setup_spatialdata(sdata, table_key=table_key, image_key="X_histology", layer="counts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = SENCA(sdata)
        model.train(seed=0)
    z = model.get_latent_representation(sdata)
    assert z.shape == (120, 60)
    with pytest.raises(KeyError, match="nope"):
        SENCA.setup_spatialdata(sdata, table_key="nope")


def test_attention_follows_histology(trained_both):
    adata, model = trained_both[0]
    w = model.get_attention()
    k = adata.obsm["senca_knn"].shape[1]
    assert w.shape == (adata.n_obs, k)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(w[:, 0], 1.0 / k, rtol=1e-6)
    # neighbours that look alike in H&E (same histology programme) get more weight than those that do not
    prog = adata.obs["histology_program"].to_numpy()
    nbr = adata.obsm["senca_knn"][:, 1:]
    same = prog[nbr] == prog[:, None]
    mixed = same.any(1) & (~same).any(1)
    assert w[:, 1:][mixed][same[mixed]].mean() > 2 * w[:, 1:][mixed][~same[mixed]].mean()


# ----------------------------------------------------------------------------------------- cohort mode
def _batch_copy(adata, name: str, seed: int, factor: float = 2.5, n_batch_genes: int = 60):
    """The same tissue in another run: counts redrawn (80 % binomial thinning) and a gene-specific batch effect."""
    rng = np.random.default_rng(seed)
    out = adata.copy()
    c = out.layers["counts"]
    c = rng.binomial((c.toarray() if sp.issparse(c) else np.asarray(c)).astype(np.int64), 0.8).astype(np.float32)
    genes = rng.choice(c.shape[1], n_batch_genes, replace=False)
    c[:, genes] = np.round(c[:, genes] * factor)
    out.layers["counts"] = sp.csr_matrix(c)
    out.X = out.layers["counts"].copy()
    out.obs["section"] = name
    return out


def _mixing(z, sections, k=10) -> float:
    """Fraction of each spot's k nearest neighbours in the embedding that come from another section."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)[1][:, 1:]
    return float((sections[idx] != sections[:, None]).mean())


def _same_region_gap(z, sections, regions, a, b) -> float:
    """Distance between the same region's centres in sections a and b, over the mean distance between regions."""
    cats = np.unique(regions)
    cen = {(s, r): z[(sections == s) & (regions == r)].mean(0) for s in (a, b) for r in cats}
    same = np.mean([np.linalg.norm(cen[(a, r)] - cen[(b, r)]) for r in cats])
    other = np.mean([np.linalg.norm(cen[(a, r)] - cen[(a, q)]) for r in cats for q in cats if r != q])
    return float(same / other)


def test_cohort_integration_aligns_sections_and_maps_a_new_one(tmp_path):
    base = senca.datasets.synthetic(n_spots=400, n_regions=4, seed=0)
    first = _batch_copy(base, "s1", 1, factor=1.0, n_batch_genes=0)
    cohort = senca.pp.concat_sections({"s1": first, "s2": _batch_copy(base, "s2", 2)})
    sections = cohort.obs["section"].astype(str).to_numpy()
    regions = cohort.obs["region"].astype(str).to_numpy()
    SENCA.setup_anndata(cohort, layer="counts", sample_key="section")
    plain = SENCA(cohort, integrate=False).get_latent_representation()
    model = SENCA(cohort)  # two samples: integration is on by default
    z = model.get_latent_representation()
    # without integration each section sits apart; with it the same region of both sections coincides
    assert _mixing(plain, sections) < 0.05
    assert _same_region_gap(plain, sections, regions, "s1", "s2") > 0.5
    assert _mixing(z, sections) > 0.3
    assert _same_region_gap(z, sections, regions, "s1", "s2") < 0.25
    # a section with its own batch effect, never seen in training, lands on the same regions
    new = _batch_copy(base, "s3", 3)
    new.obsm["X_senca"] = model.get_latent_representation(new)
    both = np.vstack([z[sections == "s1"], new.obsm["X_senca"]])
    lab = np.r_[sections[sections == "s1"], ["s3"] * new.n_obs]
    reg = np.r_[regions[sections == "s1"], new.obs["region"].astype(str).to_numpy()]
    assert _same_region_gap(both, lab, reg, "s1", "s3") < 0.25
    cohort.obsm["X_senca"] = z
    senca.tl.regions(cohort, n_regions=4, sample_key="section")
    senca.tl.assign_regions(new, cohort)
    assert adjusted_rand_score(new.obs["region"], new.obs["senca_region"]) > 0.9
    # the reference travels with the model
    model.save(tmp_path / "cohort")
    back = SENCA.load(tmp_path / "cohort", adata=cohort)
    np.testing.assert_allclose(back.get_latent_representation(new), new.obsm["X_senca"], rtol=1e-5, atol=1e-5)


def test_setup_selects_genes_and_keeps_the_whole_library(tmp_path):
    adata = senca.datasets.synthetic(n_spots=300, n_genes=400, seed=0)
    SENCA.setup_anndata(adata, layer="counts", n_top_genes=100)
    chosen = SENCA._get_most_recent_anndata_manager(adata).registry["setup_args"]["genes"]
    assert len(chosen) == 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = SENCA(adata)
        z = model.get_latent_representation()
        assert model.module.n_genes == 100
        # the same as selecting the genes beforehand and registering the whole library by hand
        pre = senca.pp.select_genes(adata, n_top_genes=100)
        assert sorted(pre.var_names) == sorted(chosen)
        pre = pre[:, chosen].copy()
        SENCA.setup_anndata(pre, layer="counts", library_key="library_size")
        np.testing.assert_allclose(SENCA(pre).get_latent_representation(), z, rtol=1e-4, atol=1e-4)
        # the choice travels with the model: new data and a reloaded model use the same genes
        model.save(tmp_path / "m")
        other = senca.datasets.synthetic(n_spots=200, n_genes=400, seed=1)
        back = SENCA.load(tmp_path / "m", adata=adata)
        np.testing.assert_allclose(back.get_latent_representation(other), model.get_latent_representation(other))
        assert back.registry_["setup_args"]["genes"] == chosen
        assert SENCA._get_most_recent_anndata_manager(other, required=False) is None  # reading did not set it up
    with pytest.raises(KeyError, match="not in adata.var_names"):
        SENCA.setup_anndata(adata, layer="counts", genes=["gene0", "no_such_gene"])


def test_setup_refuses_to_replace_a_different_neighbour_index_without_overwrite():
    adata = _tissue(0, n_spots=150)
    SENCA.setup_anndata(adata, layer="counts")
    SENCA.setup_anndata(adata, layer="counts")  # the same setup again writes the same index: allowed
    first = adata.obsm["senca_knn"].copy()
    with pytest.raises(ValueError, match=r"obsm\['senca_knn'\] already exists.*overwrite=True"):
        SENCA.setup_anndata(adata, layer="counts", n_neighbors=8)
    np.testing.assert_array_equal(adata.obsm["senca_knn"], first)  # untouched
    SENCA.setup_anndata(adata, layer="counts", n_neighbors=8, overwrite=True)
    assert adata.obsm["senca_knn"].shape == (150, 8)
    SENCA.setup_anndata(adata, layer="counts", n_neighbors=6, neighbors_key="knn6")  # or another key
    assert adata.obsm["knn6"].shape == (150, 6)
