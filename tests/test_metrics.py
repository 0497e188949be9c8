"""senca.metrics: region agreement and detection scores against scikit-learn / scipy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn import metrics as skm

from senca.metrics import detection_scores, gmm_threshold, region_scores


def test_region_scores_match_sklearn():
    rng = np.random.default_rng(0)
    truth = rng.choice(["tumour", "stroma", "fat"], size=300)
    pred = np.where(rng.random(300) < 0.7, pd.Series(truth).map({"tumour": 0, "stroma": 1, "fat": 2}), 3)
    s = region_scores(truth, pred)
    assert s["n"] == 300
    assert s["ari"] == pytest.approx(skm.adjusted_rand_score(truth, pred))
    assert s["nmi"] == pytest.approx(skm.normalized_mutual_info_score(truth, pred))
    assert s["homogeneity"] == pytest.approx(skm.homogeneity_score(truth, pred))
    assert s["completeness"] == pytest.approx(skm.completeness_score(truth, pred))
    assert 0.2 < s["ari"] < 0.9
    # label names do not matter, only the partition
    assert region_scores(truth, pred.astype(str) + "x")["ari"] == pytest.approx(s["ari"])


def test_region_scores_drop_undetermined_and_missing():
    truth = pd.Series(["a", "a", "b", "b", "undetermined", "undetermined", None, "b"], dtype="category")
    pred = pd.Series([0, 0, 1, 1, 1, 0, 1, np.nan])
    s = region_scores(truth, pred)
    assert s["n"] == 4
    assert s["ari"] == 1.0
    assert s["nmi"] == 1.0
    # keeping "undetermined" as a class changes the score
    kept = region_scores(truth, pred, drop=())
    assert kept["n"] == 6
    assert kept["ari"] < 1.0
    assert kept["ari"] == pytest.approx(skm.adjusted_rand_score(truth[:6].astype(str), pred[:6].astype(str)))
    assert region_scores(truth, pred, drop="b")["n"] == 4


def test_region_scores_align_series_by_index():
    truth = pd.Series(["a", "a", "b", "b"], index=["s1", "s2", "s3", "s4"])
    pred = pd.Series([1, 0, 0, 1], index=["s3", "s1", "s2", "s4"])  # same spots, shuffled
    assert region_scores(truth, pred)["ari"] == 1.0
    with pytest.raises(ValueError, match="different indices"):
        region_scores(truth, pd.Series([0, 0, 1, 1], index=["x1", "x2", "x3", "x4"]))


def test_region_scores_errors():
    with pytest.raises(ValueError, match="4 labels but pred has 3"):
        region_scores(["a", "a", "b", "b"], [0, 0, 1])
    with pytest.raises(ValueError, match="No spot left"):
        region_scores(["undetermined"] * 3, [0, 1, 2])
    with pytest.raises(TypeError):
        region_scores(5, [0])


def test_detection_scores_match_references():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(300, bool), np.ones(200, bool)]
    s = np.r_[rng.normal(0.35, 0.12, 300), rng.normal(0.65, 0.12, 200)]
    d = detection_scores(y, s)
    assert d["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert d["ap"] == pytest.approx(skm.average_precision_score(y, s))
    assert d["threshold"] == pytest.approx(gmm_threshold(s, seed=0))
    assert d["f1"] == pytest.approx(skm.f1_score(y, s >= d["threshold"]))
    assert d["ks"] == pytest.approx(ks_2samp(s[y], s[~y]).statistic)
    assert d["n"] == 500
    assert d["n_pos"] == 200
    assert 0.9 < d["auc"] < 0.99
    assert 0.35 < d["threshold"] < 0.65
    # a given threshold replaces the GMM one
    d2 = detection_scores(y.astype(int), s, threshold=0.9)
    assert d2["threshold"] == 0.9
    assert d2["f1"] == pytest.approx(skm.f1_score(y, s >= 0.9))
    assert d2["auc"] == d["auc"]


def test_detection_scores_perfect_and_inverted():
    y = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    s = np.r_[np.linspace(0, 0.3, 50), np.linspace(0.7, 1, 50)]
    d = detection_scores(y, s)
    assert d["auc"] == 1.0
    assert d["ap"] == 1.0
    assert d["f1"] == 1.0
    assert d["ks"] == 1.0
    inv = detection_scores(y, 1 - s)
    assert inv["auc"] == 0.0
    assert inv["f1"] == 0.0


def test_detection_scores_missing_labels_and_errors():
    y = pd.Series([True, False, None, True, False, True, False, np.nan])
    s = np.array([0.9, 0.1, 0.5, 0.8, 0.2, 0.7, 0.3, 0.4])
    d = detection_scores(y, s)
    assert d["n"] == 6
    assert d["auc"] == 1.0
    with pytest.raises(ValueError, match="single class"):
        detection_scores(np.ones(10, bool), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="single class"):
        detection_scores(np.zeros(10), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="10 labels but score has 9"):
        detection_scores(np.r_[np.zeros(5), np.ones(5)], np.linspace(0, 1, 9))
    with pytest.raises(ValueError, match="boolean or 0/1"):
        detection_scores(["cancer", "normal"] * 5, np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="NaN"):
        detection_scores(np.r_[np.zeros(5), np.ones(5)], np.r_[np.linspace(0, 1, 9), np.nan])


def test_gmm_threshold_is_not_captured_by_a_narrow_spike():
    # most negatives pile up near 0 (confidently scored), a few spread out, positives sit high: a mixture with a
    # variance per component crosses at the foot of the spike (about 0.03) and calls every spread negative
    # positive; the shared variance puts the threshold between the groups
    rng = np.random.default_rng(0)
    neg = np.r_[np.abs(rng.normal(0.01, 0.005, 600)), rng.uniform(0.02, 0.4, 100)]
    pos = np.clip(rng.normal(0.8, 0.15, 300), 0, 1)
    s = np.r_[neg, pos]
    y = np.r_[np.zeros(700, bool), np.ones(300, bool)]
    t = gmm_threshold(s)
    assert 0.3 < t < 0.6
    assert skm.f1_score(y, s >= t) > 0.95


def test_detection_scores_of_a_given_call():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.4
    s = y + rng.normal(0, 0.8, 200)
    call = s > 1.2
    d = detection_scores(y, s, call=call)
    assert d["f1"] == pytest.approx(f1_score(y, call))
    assert d["threshold"] == pytest.approx(s[call].min())
    assert d["auc"] == pytest.approx(detection_scores(y, s)["auc"])
    with pytest.raises(ValueError, match="call has"):
        detection_scores(y, s, call=call[:-1])
