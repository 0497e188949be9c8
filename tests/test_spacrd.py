"""SpaCRD: transfer to a batch-shifted section, neighbourhood signal, no label leakage, determinism, save/load."""

from __future__ import annotations

import warnings

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import roc_auc_score

import senca
from senca.model._adapt import pseudo_labels

SMALL = {"n_hidden": 64, "n_embed": 32, "n_heads": 4, "n_latent": 8, "n_members": 1}
FIT = {
    "max_epochs": 12,
    "align_epochs": 4,
    "accelerator": "cpu",
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def _transfer_data():
    """Three sections cut from one tissue (same expression programmes); the target carries a batch shift."""
    adata = senca.datasets.synthetic(n_spots=660, n_genes=120, n_regions=4, n_histology=12, layout="stripes", seed=0)
    y = adata.obsm["spatial"][:, 1]
    adata.obs["sec"] = pd.Categorical([f"s{i}" for i in np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))])
    adata.obs["cancer"] = (adata.obs["region"] == "R1").to_numpy()
    source = adata[adata.obs["sec"] != "s2"].copy()
    target = adata[adata.obs["sec"] == "s2"].copy()
    rng = np.random.default_rng(1)
    shifted = rng.poisson(target.layers["counts"].toarray() * rng.lognormal(0.0, 0.7, size=adata.n_vars))
    target.layers["counts"] = sp.csr_matrix(shifted.astype(np.float32))
    target.X = target.layers["counts"].copy()
    target.obsm["X_histology"] = target.obsm["X_histology"] * 1.5 + 0.7
    return source, target


def _fit(source, seed=0, image_key="X_histology", n_neighbors=7, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        senca.model.SpaCRD.setup_anndata(
            source, layer="counts", image_key=image_key, labels_key="cancer", sample_key="sec", n_neighbors=n_neighbors
        )
        model = senca.model.SpaCRD(source, **SMALL)
        model.train(seed=seed, **{**FIT, **kw})
    return model


def _scores(model, target, **kw):
    t = target.copy()
    t.obs = t.obs.drop(columns=["cancer", "region"], errors="ignore")
    model.predict(t, **kw)
    return t.obs["spacrd_score"].to_numpy(), t.obs["spacrd_cancer"].to_numpy()


@pytest.fixture(scope="module")
def data():
    return _transfer_data()


@pytest.fixture(scope="module")
def model(data):
    return _fit(data[0].copy(), seed=0)


def test_transfer_to_shifted_section(model, data):
    _, target = data
    score, call = _scores(model, target)
    y = target.obs["cancer"].to_numpy()
    assert roc_auc_score(y, score) >= 0.95
    assert score.min() == 0.0
    assert score.max() == 1.0
    assert call.dtype == bool
    # the label-free GMM call finds the cancer stripe without knowing its prevalence
    assert abs(call.mean() - y.mean()) < 0.1
    f1 = 2 * (call & y).sum() / (call.sum() + y.sum())
    assert f1 > 0.85


def test_no_label_leakage(model, data):
    _, target = data
    t = target.copy()
    s_with, c_with = _scores_keep_labels(model, t)
    t.obs["cancer"] = np.random.default_rng(0).permutation(t.obs["cancer"].to_numpy())
    s_perm, c_perm = _scores_keep_labels(model, t)
    s_none, c_none = _scores(model, target)
    np.testing.assert_array_equal(s_with, s_none)
    np.testing.assert_array_equal(s_with, s_perm)
    np.testing.assert_array_equal(c_with, c_none)
    np.testing.assert_array_equal(c_with, c_perm)


def _scores_keep_labels(model, target):
    t = target.copy()
    model.predict(t)
    return t.obs["spacrd_score"].to_numpy(), t.obs["spacrd_cancer"].to_numpy()


def test_gene_order_does_not_matter(model, data):
    _, target = data
    perm = np.random.default_rng(3).permutation(target.n_vars)
    s_ref, c_ref = _scores(model, target)
    s_perm, c_perm = _scores(model, target[:, perm].copy())
    np.testing.assert_allclose(s_ref, s_perm, atol=1e-6)
    np.testing.assert_array_equal(c_ref, c_perm)


def test_same_seed_same_scores(model, data):
    source, target = data
    again = _fit(source.copy(), seed=0)
    np.testing.assert_array_equal(_scores(model, target)[0], _scores(again, target)[0])


def test_save_load_round_trip(model, data, tmp_path):
    source, target = data
    model.save(tmp_path / "m", overwrite=True)
    loaded = senca.model.SpaCRD.load(tmp_path / "m")  # no AnnData needed to predict
    assert loaded.genes == model.genes
    assert loaded.n_neighbors == 7
    np.testing.assert_array_equal(_scores(model, target)[0], _scores(loaded, target)[0])
    with pytest.raises(RuntimeError, match="predict, not train"):
        loaded.train()


def test_mixed_sources_with_missing_images(data):
    source, target = data
    source = source.copy()
    h = source.obsm["X_histology"].copy()
    h[(source.obs["sec"] == "s1").to_numpy()] = np.nan  # section s1 has no image
    source.obsm["X_histology"] = h
    mixed = _fit(source, seed=0)
    assert mixed.module.n_image == 12
    score, _ = _scores(mixed, target)
    assert np.isfinite(score).all()
    assert roc_auc_score(target.obs["cancer"], score) >= 0.9
    # a target without the image key is scored expression-only, with a warning
    t = target.copy()
    del t.obsm["X_histology"]
    with pytest.warns(UserWarning, match="expression-only"):
        mixed.predict(t)
    assert roc_auc_score(t.obs["cancer"], t.obs["spacrd_score"]) >= 0.9


def _neighbourhood_section(seed: int, markers: np.ndarray, n_genes: int = 100):
    """Each spot's own programme is a coin flip; the label is the majority programme of its 6 neighbours."""
    adata = senca.datasets.synthetic(n_spots=500, n_genes=n_genes, n_regions=2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    prog = rng.random(adata.n_obs) < 0.5
    base = np.full(n_genes, 1.0 / n_genes)
    mu = np.tile(base, (adata.n_obs, 1))
    mu[np.ix_(prog, markers)] *= 4.0
    mu = mu / mu.sum(1, keepdims=True) * 2000.0
    counts = rng.negative_binomial(10, 10 / (10 + mu)).astype(np.float32)
    adata.X = sp.csr_matrix(counts)
    adata.layers["counts"] = adata.X.copy()
    nbr = senca.pp.knn_index(adata.obsm["spatial"], 7)
    adata.obs["cancer"] = prog[nbr[:, 1:]].mean(1) > 0.5
    adata.obs["sec"] = f"n{seed}"
    return adata


def test_neighbourhood_carries_the_signal():
    markers = np.random.default_rng(0).choice(100, 20, replace=False)
    source, target = _neighbourhood_section(0, markers), _neighbourhood_section(1, markers)
    # the spot's own expression says nothing about its label
    own = np.asarray(target.layers["counts"][:, markers].sum(1)).ravel()
    assert abs(roc_auc_score(target.obs["cancer"], own) - 0.5) < 0.1
    auc = {}
    for k in (7, 1):
        m = _fit(source.copy(), seed=0, image_key=None, n_neighbors=k, max_epochs=25)
        auc[k] = roc_auc_score(target.obs["cancer"], _scores(m, target)[0])
    assert auc[1] < 0.65
    assert auc[7] > 0.75
    assert auc[7] > auc[1] + 0.2


def test_setup_errors(data):
    source, target = data
    s = source.copy()
    s.obs["one"] = True
    with pytest.raises(ValueError, match="only one class"):
        senca.model.SpaCRD.setup_anndata(s, labels_key="one")
    with pytest.raises(ValueError, match="positive_label"):
        senca.model.SpaCRD.setup_anndata(s, labels_key="region")
    with pytest.raises(ValueError, match="labels_key"):
        senca.model.SpaCRD.setup_anndata(s)
    with pytest.warns(UserWarning, match="expression-only"):
        senca.model.SpaCRD.setup_anndata(s, labels_key="region", positive_label=["R1", "R2"])
    assert s.obs["_spacrd_label"].mean() == pytest.approx(s.obs["region"].isin(["R1", "R2"]).mean())


def test_predict_errors(model, data):
    _, target = data
    t = target.copy()
    t.var_names = [f"other{i}" for i in range(t.n_vars)]
    with pytest.raises(ValueError, match="same gene identifiers"):
        model.predict(t)
    t = target.copy()
    model.predict(t)
    with pytest.raises(ValueError, match="overwrite=True"):
        model.predict(t)
    model.predict(t, overwrite=True)


def _patient_specific_target(target):
    """The target's cancer spots carry the shared cancer programme only weakly, plus a programme of their own."""
    rng = np.random.default_rng(5)
    y = target.obs["cancer"].to_numpy()
    x = target.layers["counts"].toarray()
    hard = x.copy()
    hard[y] = rng.poisson(0.7 * x[~y].mean(0) + 0.3 * x[y])
    own = rng.choice(x.shape[1], 15, replace=False)
    hard[np.ix_(y, own)] = rng.poisson(x[np.ix_(y, own)] * 4 + 2)
    t = target.copy()
    t.layers["counts"] = sp.csr_matrix(hard.astype(np.float32))
    t.X = t.layers["counts"].copy()
    del t.obsm["X_histology"]
    return t


def test_self_training_adapts_to_a_patient_specific_target(data):
    """The target's cancer carries its own programme: the label-free adaptation must find it, for typical seeds.

    Gains over the network, median over three seeds: one seed's network can be at chance on this target, and
    self-training then follows it the wrong way (with one fixed seed the test passed or failed on float noise).
    Measured: network 0.45-0.70; gains of the linear adaptation +0.04, fine-tuning +0.10, the default +0.14 (medians).
    """
    target = _patient_specific_target(data[1])
    y = target.obs["cancer"].to_numpy()
    rows = []
    for seed in (0, 1, 2):
        # a network trained with fewer steps (the batch size of senca < 0.3) only half-finds this target's cancer
        model = _fit(data[0].copy(), seed=seed, batch_size=128)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scored expression-only
            rows.append(
                [
                    roc_auc_score(y, _scores(model, target, n_smooth=0, adapt=None)[0]),
                    roc_auc_score(y, _scores(model, target, n_smooth=0)[0]),
                    roc_auc_score(y, _scores(model, target, n_smooth=0, adapt="finetune")[0]),
                    roc_auc_score(y, _scores(model, target)[0]),
                ]
            )
    rows = np.asarray(rows)
    net = np.median(rows[:, 0])
    adapted, finetuned, full = np.median(rows[:, 1:] - rows[:, :1], axis=0)
    assert net < 0.75, rows  # the source's cancer programme alone barely finds this target's cancer
    assert adapted > 0, rows  # the linear adaptation alone (no pooling) adds a little here
    assert finetuned > 0.05, rows  # fine-tuning the network adds more
    assert full > 0.1, rows  # the default: linear adaptation and pooling


def test_predict_adapts_a_copy_and_pools_within_sections(model, data):
    _, target = data
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    _scores(model, target)
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # two target sections on the *same* coordinates: pooling and pseudo-labels must not mix them
    other = _patient_specific_target(target)
    other.obsm["X_histology"] = target.obsm["X_histology"]
    both = anndata.concat({"a": target, "b": other}, label="sec", index_unique="-")
    t = both.copy()
    t.obs = t.obs[["sec"]]
    model.predict(t, sample_key="sec", adapt_epochs=0)
    alone = _scores(model, target, adapt_epochs=0)[0]
    np.testing.assert_allclose(t.obs["spacrd_score"].to_numpy()[: target.n_obs], alone, atol=1e-6)


def test_pseudo_labels_per_section():
    score = np.r_[np.arange(10.0), 100 + np.arange(10.0)]
    groups = np.repeat(["a", "b"], 10)
    p = pseudo_labels(score, groups, 0.2)
    for g in ("a", "b"):
        rows = groups == g
        assert np.nansum(p[rows]) == 2  # the top 2 of each section, even though all of "b" is above all of "a"
        assert (p[rows] == 0).sum() == 2
    assert np.isnan(pseudo_labels(np.ones(10), np.zeros(10), 0.2)).all()  # a flat score gives no pseudo-label


def test_predict_rejects_bad_adaptation_settings(model, data):
    with pytest.raises(ValueError, match="adapt_fraction"):
        model.predict(data[1].copy(), adapt_fraction=0.6)
    with pytest.raises(ValueError, match="n_smooth"):
        model.predict(data[1].copy(), n_smooth=-1)
    with pytest.raises(ValueError, match="adapt must be"):
        model.predict(data[1].copy(), adapt="pseudo")
    with pytest.raises(ValueError, match="needs adapt='linear'"):
        model.predict(data[1].copy(), adapt=None, threshold="balanced")
    with pytest.raises(ValueError, match="threshold must be"):
        model.predict(data[1].copy(), threshold="otsu")


def test_spatialdata_source_and_target(model, data):
    pytest.importorskip("spatialdata")
    source, target = data
    sdata = senca.io.to_spatialdata(source.copy())
    table_key = next(iter(sdata.tables))
    senca.model.SpaCRD.setup_spatialdata(
        sdata, table_key=table_key, layer="counts", image_key="X_histology", labels_key="cancer", sample_key="sec"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = senca.model.SpaCRD(sdata, **SMALL)
        det.train(seed=0, **FIT)
    t = target.copy()
    t.obs = t.obs.drop(columns=["cancer", "region"])
    tdata = senca.io.to_spatialdata(t)
    det.predict(tdata)
    table = tdata.tables[next(iter(tdata.tables))]
    # the same model from AnnData gives the same scores, and the results land in the SpatialData's table
    np.testing.assert_allclose(table.obs["spacrd_score"].to_numpy(), _scores(model, target)[0], atol=1e-6)
    with pytest.raises(KeyError, match="nope"):
        senca.model.SpaCRD.setup_spatialdata(sdata, table_key="nope", labels_key="cancer")
    with pytest.raises(TypeError, match="SpatialData"):
        senca.model.SpaCRD.setup_spatialdata(source, labels_key="cancer")


def test_same_seed_same_scores_with_two_threads(data):
    """With several threads, reductions can change their order of summation unless deterministic algorithms are on."""
    source, target = data
    threads = torch.get_num_threads()
    runs = []
    try:
        torch.set_num_threads(2)
        for _ in range(2):
            src = source.copy()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                senca.model.SpaCRD.setup_anndata(src, layer="counts", image_key="X_histology", labels_key="cancer")
                det = senca.model.SpaCRD(src)  # default sizes: large enough for torch to split work over threads
                det.train(seed=5, max_epochs=1, align_epochs=1, batch_size=64, enable_progress_bar=False)
            runs.append(_scores(det, target, adapt="finetune", adapt_epochs=3)[0])
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(runs[0], runs[1])


def _interface_section(seed: int, markers: np.ndarray, n_genes: int = 100):
    """Two expression programmes in blobs; the label marks spots whose 6 neighbours mix both (>= 2 of each).

    A spot's own expression, or any *linear* function of it and of its neighbourhood's mean, cannot tell a mixed
    neighbourhood (a tumour-stroma interface) from a pure one: the label is not monotone in the neighbourhood's
    composition.
    """
    adata = senca.datasets.synthetic(n_spots=600, n_genes=n_genes, n_regions=2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    xy = np.asarray(adata.obsm["spatial"], dtype=float)
    centres = xy[rng.choice(len(xy), 12, replace=False)]
    prog = (np.argmin(((xy[:, None, :] - centres[None]) ** 2).sum(-1), 1) % 2).astype(bool)
    mu = np.full((adata.n_obs, n_genes), 1.0 / n_genes)
    mu[np.ix_(prog, markers)] *= 4.0
    mu = mu / mu.sum(1, keepdims=True) * 2000.0
    adata.X = sp.csr_matrix(rng.negative_binomial(10, 10 / (10 + mu)).astype(np.float32))
    adata.layers["counts"] = adata.X.copy()
    n_a = prog[senca.pp.knn_index(xy, 7)[:, 1:]].sum(1)
    adata.obs["cancer"] = (n_a >= 2) & (n_a <= 4)
    adata.obs["sec"] = f"i{seed}"
    return adata


def test_neighbourhood_attention_beats_a_pooled_linear_model():
    from sklearn.linear_model import LogisticRegression

    from senca.pp._section_features import gene_features

    markers = np.random.default_rng(0).choice(100, 20, replace=False)
    source, target = _interface_section(0, markers), _interface_section(1, markers)
    y = target.obs["cancer"].to_numpy()

    def spot_and_pooled(a):
        x = gene_features(a.layers["counts"], a.var_names, list(a.var_names), np.zeros(a.n_obs))
        return np.c_[x, x[senca.pp.knn_index(a.obsm["spatial"], 7)].mean(1)]

    lr = LogisticRegression(max_iter=3000).fit(spot_and_pooled(source), source.obs["cancer"])
    pooled_linear = roc_auc_score(y, lr.decision_function(spot_and_pooled(target)))
    auc = {}
    for k in (7, 1):
        m = _fit(source.copy(), seed=0, image_key=None, n_neighbors=k, max_epochs=100, align_epochs=0)
        auc[k] = roc_auc_score(y, _scores(m, target, n_smooth=0, adapt=None)[0])
    assert pooled_linear < 0.65  # the spot and its neighbourhood mean, linearly: close to chance
    assert auc[1] < 0.65  # the network without a neighbourhood: close to chance
    assert auc[7] > 0.9
    assert auc[7] > pooled_linear + 0.25


def test_train_warm_start_continues_from_the_trained_weights(data):
    source, target = data
    det = _fit(source.copy(), seed=0, max_epochs=3, align_epochs=1)
    trained = {k: v.clone() for k, v in det.module.state_dict().items()}
    det.train(seed=0, warm_start=True, **{**FIT, "max_epochs": 1})
    after = det.module.state_dict()
    assert any(not torch.equal(trained[k], after[k]) for k in trained)  # it trained
    # one epoch on from the trained weights stays close to them; fresh weights do not
    fresh = senca.module.SpaCRDModule(**det._module_kwargs).state_dict()
    key = "members.0.gene_encoder.0.weight"
    step = (after[key] - trained[key]).norm()
    assert step < 0.5 * (fresh[key] - trained[key]).norm()
    untrained = senca.model.SpaCRD(det.adata, **SMALL)
    with pytest.raises(ValueError, match="warm_start"):
        untrained.train(warm_start=True)


def test_module_ensemble_and_single_network_checkpoints():
    from senca.module import SpaCRDModule

    one = SpaCRDModule(n_genes=20, n_members=1).eval()
    old_style = {k.removeprefix("members.0."): v for k, v in one.state_dict().items()}  # saved before n_members
    again = SpaCRDModule(n_genes=20, n_members=1).eval()
    again.load_state_dict(old_style)
    x = torch.randn(5, 7, 20)
    torch.testing.assert_close(one.predict_logit(x), again.predict_logit(x))
    three = SpaCRDModule(n_genes=20, n_members=3).eval()
    logits = torch.stack([net(x, None, None, None, "detect")["logit"] for net in three.members])
    torch.testing.assert_close(three.predict_logit(x), logits.mean(0))
    with pytest.raises(ValueError, match="n_members"):
        SpaCRDModule(n_genes=20, n_members=0)


def test_linear_adapt_per_section():
    from senca.model._adapt import linear_adapt

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    x[:5, 0] += 3.0  # section a: the pseudo-positives differ from the pseudo-negatives in feature 0
    x[5:10, 0] -= 3.0
    groups = np.repeat(["a", "b"], 20)
    pseudo = np.full(40, np.nan)
    pseudo[:5], pseudo[5:10] = 1.0, 0.0  # section a: both classes
    pseudo[20:25] = 1.0  # section b: one class only -> keeps the base logits
    base = rng.normal(size=40)
    out = linear_adapt(x, pseudo, groups, base)
    np.testing.assert_array_equal(out[20:], base[20:])
    assert not np.allclose(out[:20], base[:20])
    assert (out[:5] > 0).all()  # the fit separates its own pseudo-labels
    assert (out[5:10] < 0).all()
