"""Property-based robustness tests (hypothesis): neighbour index, concatenation, count parsing, patches, regions.

Small ``max_examples`` and ``deadline=None`` keep the whole file to a few seconds on 2 cores.
"""

from __future__ import annotations

import gzip
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import senca

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

coord = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


# ---------------------------------------------------------------------------------------------- knn_index
@st.composite
def coords_groups_k(draw):
    n = draw(st.integers(1, 40))
    xy = draw(hnp.arrays(np.float64, (n, 2), elements=coord))
    if draw(st.booleans()):  # many exact duplicates: stacked spots, a real pipeline artefact
        xy = np.round(xy / 5000) * 5000
    n_groups = draw(st.integers(1, 3))
    groups = np.asarray(draw(st.lists(st.integers(0, n_groups - 1), min_size=n, max_size=n))).astype(str)
    k = draw(st.integers(1, 8))
    return xy, groups, k


@FAST
@given(coords_groups_k(), st.booleans())
def test_knn_index_properties(data, use_groups):
    xy, groups, k = data
    g = groups if use_groups else np.zeros(len(xy), dtype=str)
    smallest = pd.Series(g).value_counts().min()
    if k > smallest:
        with pytest.raises(ValueError, match="n_neighbors"):
            senca.pp.knn_index(xy, k, groups if use_groups else None)
        return
    nbr = senca.pp.knn_index(xy, k, groups if use_groups else None)
    n = len(xy)
    assert nbr.shape == (n, k)
    assert nbr.dtype == np.int64
    np.testing.assert_array_equal(nbr[:, 0], np.arange(n))  # self first, even with duplicated coordinates
    assert (nbr >= 0).all()
    assert (nbr < n).all()
    assert all(len(set(row)) == k for row in nbr)  # k distinct spots
    assert (g[nbr] == g[:, None]).all()  # never across groups
    d = np.linalg.norm(xy[nbr] - xy[:, None], axis=-1)
    assert (np.diff(d, axis=1) >= -1e-9).all()  # nearest first
    # the k-th neighbour is really among the k nearest of the group (up to ties)
    for i in range(0, n, max(1, n // 5)):
        same = np.flatnonzero(g == g[i])
        all_d = np.sort(np.linalg.norm(xy[same] - xy[i], axis=1))
        assert d[i, -1] <= all_d[k - 1] + 1e-9


@FAST
@given(hnp.arrays(np.float64, (5, 2), elements=st.sampled_from([np.nan, np.inf, 0.0, 1.0])))
def test_knn_index_non_finite(xy):
    assume(not np.isfinite(xy).all())
    with pytest.raises(ValueError, match="NaN or infinite"):
        senca.pp.knn_index(xy, 2)


# ---------------------------------------------------------------------------------------------- concat_sections
@st.composite
def sections(draw):
    n_sec = draw(st.integers(1, 3))
    pool = [f"g{i}" for i in range(12)]
    out = []
    for _ in range(n_sec):
        genes = draw(st.lists(st.sampled_from(pool), min_size=3, max_size=12, unique=True))
        n = draw(st.integers(1, 6))
        x = draw(hnp.arrays(np.float32, (n, len(genes)), elements=st.integers(0, 50).map(float)))
        a = ad.AnnData(sp.csr_matrix(x) if draw(st.booleans()) else x, var=pd.DataFrame(index=genes))
        a.obs_names = [f"s{i}" for i in range(n)]  # the same names in every section
        a.layers["counts"] = a.X.copy()
        a.obsm["spatial"] = draw(hnp.arrays(np.float64, (n, 2), elements=coord))
        out.append(a)
    return out


@FAST
@given(sections())
def test_concat_sections_properties(parts):
    shared = [g for g in parts[0].var_names if all(g in p.var_names for p in parts[1:])]
    before = [(p.X.copy(), p.obs_names.copy(), p.var_names.copy()) for p in parts]
    named = {f"sec{i}": p for i, p in enumerate(parts)}
    if len(shared) < 2:
        with pytest.raises(ValueError, match="same gene identifiers"):
            senca.pp.concat_sections(named, min_shared_genes=2)
        return
    out = senca.pp.concat_sections(named, min_shared_genes=2)
    assert out.n_obs == sum(p.n_obs for p in parts)
    assert list(out.var_names) == shared
    assert out.obs_names.is_unique
    assert list(out.obs["section"].cat.categories) == list(named)
    start = 0
    for name, p in named.items():
        block = out[start : start + p.n_obs]
        assert (block.obs["section"] == name).all()
        for layer in (None, "counts"):
            got = block.X if layer is None else block.layers[layer]
            want = (p.X if layer is None else p.layers[layer])[:, [p.var_names.get_loc(g) for g in shared]]
            got = got.toarray() if sp.issparse(got) else np.asarray(got)
            want = want.toarray() if sp.issparse(want) else np.asarray(want)
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(block.obsm["spatial"], p.obsm["spatial"])
        start += p.n_obs
    for p, (x, obs, var) in zip(parts, before):  # inputs untouched
        x0 = x.toarray() if sp.issparse(x) else x
        x1 = p.X.toarray() if sp.issparse(p.X) else p.X
        np.testing.assert_array_equal(x0, x1)
        assert p.obs_names.equals(obs)
        assert p.var_names.equals(var)


# ---------------------------------------------------------------------------------------------- count parsing
@FAST
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=st.integers(0, 10**6)))
def test_her2st_count_parsing_round_trip(tmp_path_factory, counts):
    from senca.datasets._her2st import _read_counts

    path = tmp_path_factory.mktemp("cnt") / "X1.tsv.gz"
    genes = [f"G{j}" for j in range(counts.shape[1])]
    ids = [f"{i}x{i + 1}" for i in range(counts.shape[0])]
    df = pd.DataFrame(counts, index=ids, columns=genes)
    with gzip.open(path, "wt") as fh:
        df.to_csv(fh, sep="\t")
    got_ids, got_genes, x = _read_counts(path)
    assert list(got_ids) == ids
    assert list(got_genes) == genes
    assert sp.isspmatrix_csr(x) or sp.issparse(x)
    np.testing.assert_array_equal(x.toarray(), counts.astype(np.float32))


@FAST
@given(st.sampled_from(["-1", "0.5", "nan", "abc", ""]), st.integers(0, 2), st.integers(0, 2))
def test_her2st_bad_counts_are_reported_as_corrupt(tmp_path_factory, bad, i, j):
    from senca.datasets._her2st import _read_counts

    path = tmp_path_factory.mktemp("cnt") / "X1.tsv.gz"
    cells = [["1", "2", "3"] for _ in range(3)]
    cells[i][j] = bad
    text = "\tG0\tG1\tG2\n" + "".join(f"{r}x1\t" + "\t".join(c) + "\n" for r, c in enumerate(cells))
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    with pytest.raises(ValueError, match="(?i)corrupt|damaged|re-download|delete"):
        _read_counts(path)


# ---------------------------------------------------------------------------------------------- patches
@st.composite
def images_and_spots(draw):
    h, w = draw(st.integers(8, 60)), draw(st.integers(8, 60))
    layout = draw(st.sampled_from(["gray", "gray1", "rgb", "rgba"]))
    dtype = draw(st.sampled_from(["uint8", "uint16", "float01", "float255"]))
    shape = {"gray": (h, w), "gray1": (h, w, 1), "rgb": (h, w, 3), "rgba": (h, w, 4)}[layout]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    u = rng.random(shape)
    img = {
        "uint8": (u * 255).astype(np.uint8),
        "uint16": (u * 65535).astype(np.uint16),
        "float01": u.astype(np.float32),
        "float255": (u * 255).astype(np.float32),
    }[dtype]
    scalef = draw(st.sampled_from([1.0, 0.5, 0.25]))
    n = draw(st.integers(1, 12))
    # spot centres inside the image, in full-resolution pixels
    xs = rng.uniform(0, (w - 1) / scalef, n)
    ys = rng.uniform(0, (h - 1) / scalef, n)
    diameter = draw(st.floats(2.0, 80.0))
    return img, scalef, np.column_stack([xs, ys]), diameter


def _adata_with_image(img, scalef, xy, diameter):
    a = ad.AnnData(np.zeros((len(xy), 1), dtype=np.float32))
    a.obsm["spatial"] = xy
    a.uns["spatial"] = {
        "lib": {
            "images": {"hires": img},
            "scalefactors": {"tissue_hires_scalef": scalef},
        }
    }
    return a


@FAST
@given(images_and_spots(), st.integers(1, 12), st.sampled_from([1.0, (1.0, 3.0)]))
def test_spot_patches_properties(case, size, context):
    img, scalef, xy, diameter = case
    adata = _adata_with_image(img, scalef, xy, diameter)
    before = img.copy()
    chunks = list(senca.im.spot_patches(adata, size=size, context=context, chunk_size=5, spot_diameter=diameter))
    rows = np.concatenate([c.rows for c in chunks])
    patches = np.concatenate([c.patches for c in chunks])
    np.testing.assert_array_equal(rows, np.arange(len(xy)))
    want = (len(xy), size, size, 3) if np.isscalar(context) else (len(xy), len(context), size, size, 3)
    assert patches.shape == want
    assert patches.dtype == np.float32
    assert np.isfinite(patches).all()
    assert patches.min() >= 0.0
    assert patches.max() <= 1.0
    np.testing.assert_array_equal(img, before)  # the image is never modified


@FAST
@given(images_and_spots())
def test_spot_patches_outside_image(case):
    img, scalef, xy, diameter = case
    xy = xy.copy()
    xy[0] = [-(img.shape[1] + 10) / scalef, 0]
    with pytest.raises(ValueError, match="outside"):
        list(senca.im.spot_patches(_adata_with_image(img, scalef, xy, diameter), size=4, spot_diameter=diameter))


# ---------------------------------------------------------------------------------------------- regions
@st.composite
def embeddings(draw):
    n = draw(st.integers(6, 60))
    d = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n_regions = draw(st.integers(1, min(5, n)))
    centres = rng.normal(scale=draw(st.sampled_from([0.0, 1.0, 10.0])), size=(n_regions, d))
    lab = rng.integers(0, n_regions, n)
    x = centres[lab] + rng.normal(size=(n, d))
    xy = rng.uniform(0, 1000, (n, 2))
    return x, xy, n_regions


@FAST
@given(embeddings(), st.sampled_from(["gmm", "kmeans"]), st.booleans())
def test_regions_properties(case, method, refine):
    x, xy, n_regions = case
    adata = ad.AnnData(np.zeros((len(x), 1), dtype=np.float32))
    adata.obsm["X_senca"] = x
    adata.obsm["spatial"] = xy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        senca.tl.regions(adata, n_regions=n_regions, method=method, refine=refine, n_neighbors=4, seed=0)
    labels = adata.obs["senca_region"]
    conf = adata.obs["senca_region_confidence"].to_numpy()
    assert labels.notna().all()
    found = labels.nunique()
    assert list(labels.cat.categories) == [str(i) for i in range(found)]
    assert adata.uns["senca_region"]["params"]["n_regions"] == found
    if found != n_regions:  # only ever fewer, and never silently
        assert found < n_regions
        assert any("asked for" in str(w.message) for w in caught), [str(w.message) for w in caught]
    if not refine and method == "kmeans" and len(np.unique(x.round(12), axis=0)) >= n_regions:
        assert found == n_regions
    assert np.isfinite(conf).all()
    assert (conf >= 0).all()
    assert (conf <= 1).all()
    sizes = labels.value_counts().reindex(labels.cat.categories).to_numpy()
    assert (np.diff(sizes) <= 0).all()  # numbered by decreasing size
