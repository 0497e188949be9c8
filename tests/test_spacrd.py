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
    s.obs["ab"] = np.where(s.obs["region"] == "R1", "A", "B")  # two classes, neither says cancer
    with pytest.raises(ValueError, match="positive_label"):
        senca.model.SpaCRD.setup_anndata(s, labels_key="ab")
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


def test_default_schedule_bounds_the_minibatches_per_epoch():
    """Above EPOCH_SPOTS spots an epoch is that many spots' minibatches; below, full epochs as before."""
    from senca.model._spacrd import EPOCH_SPOTS

    big = senca.datasets.synthetic(n_spots=4500, n_genes=60, n_regions=3, layout="stripes", seed=0)
    big.obs["cancer"] = (big.obs["region"] == "R1").to_numpy()
    assert big.n_obs > EPOCH_SPOTS
    small = big[: EPOCH_SPOTS - 96].copy()  # 2 minibatches of 2,048, as in a bounded epoch of the large source
    fit = {**FIT, "max_epochs": 2, "align_epochs": 1, "batch_size": 2048, "seed": 0}

    from lightning.pytorch.callbacks import Callback

    class Steps(Callback):  # optimiser steps per training stage
        def __init__(self):
            self.steps = {}

        def on_train_batch_end(self, trainer, pl_module, *args):
            stage = pl_module.module.stage
            self.steps[stage] = self.steps.get(stage, 0) + 1

    def trained(source, **kw):
        senca.model.SpaCRD.setup_anndata(source, layer="counts", image_key="X_histology", labels_key="cancer")
        model = senca.model.SpaCRD(source, n_top_genes=40, **SMALL)
        model.steps = Steps()
        model.train(callbacks=[model.steps], **{**fit, **kw})
        return model

    # 3 minibatches of 2,048 per full epoch, bounded to ceil(4,096 / 2,048) = 2, in both stages
    bounded = trained(big)
    assert bounded.trainer.num_training_batches == 2
    assert bounded.steps.steps == {"align": 1 * 2, "detect": 2 * 2}
    assert trained(big, limit_train_batches=1.0).steps.steps == {"align": 3, "detect": 2 * 3}  # full epochs
    # a source within the bound: full epochs and the trainer it always had (Lightning's default, not a bound)
    default = trained(small)
    assert default.trainer.num_training_batches == 2
    assert default.trainer.limit_train_batches == 1.0
    assert default.steps.steps == {"align": 2, "detect": 2 * 2}
    full = trained(small.copy(), limit_train_batches=1.0)
    t = small.copy()
    t.obs = t.obs.drop(columns=["cancer", "region"])
    a, b = t.copy(), t.copy()
    default.predict(a)
    full.predict(b)
    np.testing.assert_array_equal(a.obs["spacrd_score"].to_numpy(), b.obs["spacrd_score"].to_numpy())


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


# ------------------------------------------------------------------------------------------------ multi-class

MULTI_FIT = {**FIT, "max_epochs": 16, "align_epochs": 0, "warmup_epochs": 2, "lr": 3e-3}


def _four_region_tissue():
    """Four region types (stripes) in one tissue cut into three sections; the target section carries a batch shift."""
    adata = senca.datasets.synthetic(n_spots=720, n_genes=120, n_regions=4, n_histology=12, layout="stripes", seed=0)
    y = adata.obsm["spatial"][:, 1]
    adata.obs["sec"] = pd.Categorical([f"s{i}" for i in np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))])
    adata.obs["tissue"] = adata.obs["region"].map({"R1": "tumour", "R2": "stroma", "R3": "fat", "R4": "immune"})
    source = adata[adata.obs["sec"] != "s2"].copy()
    target = adata[adata.obs["sec"] == "s2"].copy()
    rng = np.random.default_rng(1)
    shifted = rng.poisson(target.layers["counts"].toarray() * rng.lognormal(0.0, 0.5, size=adata.n_vars))
    target.layers["counts"] = sp.csr_matrix(shifted.astype(np.float32))
    target.X = target.layers["counts"].copy()
    return source, target


def _fit_multi(source, seed=0, labels_key="tissue", fit=None, **setup):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        senca.model.SpaCRD.setup_anndata(
            source, layer="counts", labels_key=labels_key, sample_key="sec", overwrite=True, **setup
        )
        model = senca.model.SpaCRD(source, **SMALL)
        model.train(seed=seed, **{**MULTI_FIT, **(fit or {})})
    return model


@pytest.fixture(scope="module")
def multi_data():
    return _four_region_tissue()


@pytest.fixture(scope="module")
def multi_model(multi_data):
    source = multi_data[0].copy()
    source.obs["tissue"] = source.obs["tissue"].astype(object)
    source.obs.loc[source.obs_names[::9], "tissue"] = "undetermined"  # unlabelled spots, left out of the loss
    return _fit_multi(source)


def test_multiclass_recovers_four_region_types_in_a_new_section(multi_model, multi_data):
    from sklearn.metrics import adjusted_rand_score

    _, target = multi_data
    t = target.copy()
    truth = t.obs.pop("tissue").astype(str).to_numpy()
    t.obs = t.obs.drop(columns=["region"])
    assert multi_model.classes == ["fat", "immune", "stroma", "tumour"]  # sorted: the column is not categorical
    multi_model.predict(t)
    proba = t.obsm["spacrd_proba"]
    assert isinstance(proba, pd.DataFrame)
    assert list(proba.columns) == multi_model.classes
    assert (proba.index == t.obs_names).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    label = t.obs["spacrd_label"]
    assert isinstance(label.dtype, pd.CategoricalDtype)
    assert list(label.cat.categories) == multi_model.classes
    assert (label.astype(str).to_numpy() == proba.columns[proba.to_numpy().argmax(1)]).all()
    np.testing.assert_allclose(t.obs["spacrd_confidence"], proba.max(1))
    assert "spacrd_score" not in t.obs  # no binary outputs from a multi-class model
    assert adjusted_rand_score(truth, label) > 0.6
    assert (label.astype(str).to_numpy() == truth).mean() > 0.75
    # key_added prefixes every output; the network alone (no adaptation, no pooling) is available too
    multi_model.predict(t, key_added="net", adapt=None, n_smooth=0)
    assert {"net_label", "net_confidence"} <= set(t.obs)
    assert "net_proba" in t.obsm
    assert adjusted_rand_score(truth, t.obs["net_label"]) > 0.3  # the network itself learned the classes
    with pytest.raises(ValueError, match="overwrite=True"):
        multi_model.predict(t)
    with pytest.raises(ValueError, match="threshold"):
        multi_model.predict(t, key_added="x", threshold="gmm")


def test_multiclass_unlabelled_spots_take_no_part(multi_data):
    """Spots marked undetermined and spots with a missing label train the same model; other labels do not."""
    source, target = multi_data
    drop = np.zeros(source.n_obs, dtype=bool)
    drop[::5] = True
    scores = []
    for fill in ("undetermined", np.nan, "tumour"):
        s = source.copy()
        col = s.obs["tissue"].astype(object).to_numpy()
        col[drop] = fill
        s.obs["tissue"] = col
        model = _fit_multi(s, fit={"max_epochs": 4})
        if fill != "tumour":
            assert np.isnan(s.obs["_spacrd_label"].to_numpy()[drop]).all()
        t = target.copy()
        model.predict(t, adapt=None, n_smooth=0)
        scores.append(t.obsm["spacrd_proba"].to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.allclose(scores[0], scores[2])


@pytest.mark.filterwarnings("ignore:No image_key")
def test_multiclass_absent_classes(multi_data):
    from sklearn.metrics import adjusted_rand_score

    source, target = multi_data
    s = source.copy()
    # "immune" only in section s0: a class absent from some source sections is learned from the others
    col = s.obs["tissue"].astype(object).to_numpy()
    col[((s.obs["sec"] == "s1") & (s.obs["tissue"] == "immune")).to_numpy()] = np.nan
    s.obs["tissue"] = col
    # a vocabulary class without any labelled spot: kept (one shared vocabulary), never predicted, with a warning
    vocabulary = ["tumour", "stroma", "fat", "immune", "necrosis"]
    with pytest.warns(UserWarning, match="necrosis"):
        senca.model.SpaCRD.setup_anndata(s, layer="counts", labels_key="tissue", sample_key="sec", classes=vocabulary)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = senca.model.SpaCRD(s, **SMALL)
        model.train(seed=0, **MULTI_FIT)
    assert model.classes == vocabulary
    assert model.class_counts_[-1] == 0
    # a target without one of the classes (no fat in it)
    t = target[(target.obs["tissue"] != "fat").to_numpy()].copy()
    truth = t.obs["tissue"].astype(str).to_numpy()
    for adapt in ("linear", "finetune", None):
        model.predict(t, adapt=adapt, adapt_epochs=2, key_added=str(adapt))
        proba = t.obsm[f"{adapt}_proba"]
        assert list(proba.columns) == vocabulary
        assert (proba["necrosis"] == 0).all()
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
        assert "necrosis" not in set(t.obs[f"{adapt}_label"])
    assert adjusted_rand_score(truth, t.obs["linear_label"]) > 0.5
    assert (t.obs["linear_label"].astype(str) == truth).mean() > 0.7


def test_multiclass_all_unlabelled_sections(multi_model, multi_data):
    """A target whose label column is empty is scored as any other; a wholly unlabelled source section trains."""
    source, target = multi_data
    t = target.copy()
    t.obs["tissue"] = np.nan  # labels are never read
    multi_model.predict(t)
    ref = target.copy()
    multi_model.predict(ref)
    np.testing.assert_array_equal(t.obsm["spacrd_proba"].to_numpy(), ref.obsm["spacrd_proba"].to_numpy())
    # the target itself in the source, unlabelled: its spots inform the model without any label
    joint = anndata.concat({"src": source, "tgt": target}, index_unique="-")
    joint.obs["sec"] = pd.Categorical(np.r_[source.obs["sec"].astype(str), np.full(target.n_obs, "target")])
    col = joint.obs["tissue"].astype(object).to_numpy()
    col[(joint.obs["sec"] == "target").to_numpy()] = "undetermined"
    joint.obs["tissue"] = col
    model = _fit_multi(joint)
    assert model.classes == multi_model.classes
    t2 = target.copy()
    model.predict(t2)
    assert (t2.obs["spacrd_label"].astype(str) == target.obs["tissue"].astype(str)).mean() > 0.7


def test_multiclass_save_load(multi_model, multi_data, tmp_path):
    _, target = multi_data
    multi_model.save(tmp_path / "m", overwrite=True)
    loaded = senca.model.SpaCRD.load(tmp_path / "m")
    assert loaded.classes == multi_model.classes
    assert loaded.class_counts_ == multi_model.class_counts_
    a, b = target.copy(), target.copy()
    multi_model.predict(a)
    loaded.predict(b)
    np.testing.assert_array_equal(a.obsm["spacrd_proba"].to_numpy(), b.obsm["spacrd_proba"].to_numpy())


@pytest.mark.filterwarnings("ignore:No image_key")
def test_bad_label_columns(multi_data):
    source, _ = multi_data
    s = source.copy()
    setup = senca.model.SpaCRD.setup_anndata
    s.obs["depth"] = np.random.default_rng(0).normal(size=s.n_obs)
    with pytest.raises(ValueError, match="continuous"):
        setup(s, labels_key="depth")
    s.obs["none"] = "undetermined"
    with pytest.raises(ValueError, match="No source spot has a label"):
        setup(s, labels_key="none")
    s.obs["one"] = np.where(np.arange(s.n_obs) % 2, "tumour", None)
    with pytest.raises(ValueError, match="only one class"):
        setup(s, labels_key="one")
    with pytest.raises(ValueError, match=r"\['fat'\] are not among classes="):
        setup(s, labels_key="tissue", classes=["tumour", "stroma", "immune"])
    with pytest.raises(ValueError, match="three or more"):
        setup(s, labels_key="tissue", classes=["tumour", "stroma"])
    with pytest.raises(ValueError, match="either classes= .* or positive_label="):
        setup(s, labels_key="tissue", classes=["tumour", "stroma", "fat", "immune"], positive_label="tumour")
    with pytest.raises(KeyError, match="not found"):
        setup(s, labels_key="nope")
    # positive_label makes any column binary; unlabeled_category=None keeps "undetermined" as a class
    s.obs["with_und"] = np.where(np.arange(s.n_obs) % 7 == 0, "undetermined", s.obs["tissue"].astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setup(s, labels_key="with_und", positive_label="tumour", overwrite=True)
        assert np.isnan(s.obs["_spacrd_label"]).sum() == (s.obs["with_und"] == "undetermined").sum()
        setup(s, labels_key="with_und", positive_label="tumour", unlabeled_category=None, overwrite=True)
        assert not np.isnan(s.obs["_spacrd_label"]).any()
        setup(s, labels_key="with_und", unlabeled_category=None, overwrite=True)
    det = senca.model.SpaCRD(s, **SMALL)
    assert det.classes == ["fat", "immune", "stroma", "tumour", "undetermined"]


def test_binary_loss_is_the_papers(data):
    """The binary loss of a fully labelled minibatch is SpaCRD's (BCE + 0.1 VAE + 0.1 InfoNCE), written out here."""
    import torch.nn.functional as F

    from senca.data import gather_neighborhoods

    source, _ = data
    s = source.copy()
    senca.model.SpaCRD.setup_anndata(s, layer="counts", image_key="X_histology", labels_key="cancer", sample_key="sec")
    det = senca.model.SpaCRD(s, **SMALL)
    module = det.module.eval()
    rows = np.arange(48)
    batch = gather_neighborhoods(det._features, s.obsm["_spacrd_knn"][rows], torch.device("cpu"))
    y = torch.tensor(s.obs["cancer"].to_numpy()[rows], dtype=torch.float32)
    batch["labels"] = y[:, None]
    _, _, out = module(batch, loss_kwargs={"epoch": 99})
    net = module.members[0]
    o = module.inference(**module._get_inference_input(batch))["members"][0]
    recon = ((net.vae_decoder(o["qm"]) - o["fused"]) ** 2).mean(-1).mean()  # eval: z is the posterior mean
    mu = net.prior_means[y.long()]
    kl = (0.5 * (o["qlv"].exp() + (o["qm"] - mu) ** 2 - 1 - o["qlv"]).sum(-1)).mean()
    hinge = F.relu(module.margin - (net.prior_means[0] - net.prior_means[1]).norm())
    vae = recon + 0.5 * kl + 0.1 * hinge
    bce = F.binary_cross_entropy_with_logits(o["logit"], y)
    present = o["present0"] > 0.5
    from senca.nn import info_nce

    nce = info_nce(o["th0"][present], o["tg0"][present], module.temperature)
    torch.testing.assert_close(out.loss, bce + 0.1 * vae + 0.1 * nce)
    assert o["logit"].shape == (48,)  # one logit: the binary network of senca 0.x


def test_adaptation_declines_where_it_contradicts_the_network():
    """Per section: an adaptation that orders the spots it was not fitted to against the network is not used."""
    from senca.model._adapt import agreeing_sections

    rng = np.random.default_rng(0)
    xy = np.stack(np.meshgrid(np.arange(15.0), np.arange(10.0)), -1).reshape(-1, 2)
    n = len(xy)
    groups = np.repeat(["agrees", "contradicts"], n)
    nbr = np.r_[senca.pp.knn_index(xy, 7), senca.pp.knn_index(xy, 7) + n]
    base = np.r_[xy[:, 0], xy[:, 0]] - 7.0 + rng.normal(0, 0.3, 2 * n)  # a left-to-right gradient
    pseudo = pseudo_labels(base, groups, 0.1)
    adapted = base + rng.normal(0, 0.5, 2 * n)
    middle = ~np.isfinite(pseudo) & (groups == "contradicts")
    adapted[middle] = -adapted[middle]  # agrees on the pseudo-labels, reverses everything else
    out, declined = agreeing_sections(adapted, base, pseudo, nbr, groups, passes=2)
    assert declined == ["contradicts"]
    np.testing.assert_array_equal(out[groups == "agrees"], adapted[groups == "agrees"])
    np.testing.assert_array_equal(out[groups == "contradicts"], base[groups == "contradicts"])
