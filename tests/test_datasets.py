"""senca.datasets: the her2st reader on the real files, its lookup/download/verification logic, and label readers."""

from __future__ import annotations

import functools
import gzip
import os
import re
import shutil
import struct
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import senca
from senca.datasets import _fetch, _her2st
from senca.datasets._registry import HER2ST_FULLRES_DIMS

A1_LABELS = {  # the 346 A1 spots with a count row (two more invasive-cancer spots have labels only)
    "invasive cancer": 282,
    "connective tissue": 24,
    "cancer in situ": 21,
    "adipose tissue": 12,
    "undetermined": 5,
    "immune infiltrate": 2,
}


@pytest.fixture(autouse=True)
def _no_network_no_user_cache(tmp_path_factory, monkeypatch):
    """Never touch the network or the user's cache: an empty cache per test, downloads off unless asked for."""
    monkeypatch.setenv("SENCA_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("SENCA_DOWNLOAD", "0")


@pytest.fixture(scope="module")
def a1(senca_data_dir):
    return senca.datasets.her2st("A1", data_dir=senca_data_dir, download=False)


def _inside(adata, section):
    img = adata.uns["spatial"][section]["images"]["hires"]
    xy = adata.obsm["spatial"] * adata.uns["spatial"][section]["scalefactors"]["tissue_hires_scalef"]
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < img.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < img.shape[0])
    return ok, img, np.floor(xy).astype(int)


def test_a1_counts_labels_and_layout(a1, senca_data_dir):
    assert a1.shape == (346, 15045)
    assert sp.isspmatrix_csr(a1.X)
    assert a1.X.dtype == np.float32
    assert np.array_equal(a1.X.data, np.round(a1.X.data))
    assert a1.X.data.min() > 0
    assert (a1.X != a1.layers["counts"]).nnz == 0
    assert a1.X is not a1.layers["counts"]
    raw = pd.read_csv(senca_data_dir / "her2st/ST-cnts/A1.tsv.gz", sep="\t", index_col=0)
    assert list(a1.obs_names) == list(raw.index)
    assert list(a1.var_names) == list(raw.columns)
    assert np.array_equal(a1.X.toarray(), raw.to_numpy())
    # pathologist labels on every spot, with the published class counts
    assert a1.obs["pathologist"].notna().all()
    assert a1.obs["pathologist"].value_counts().to_dict() == A1_LABELS
    assert a1.obs["section"].unique().tolist() == ["A1"]
    assert a1.obs["patient"].unique().tolist() == ["A"]
    spots = pd.read_csv(senca_data_dir / "her2st/ST-spotfiles/A1_selection.tsv", sep="\t")
    spots.index = spots["x"].astype(str) + "x" + spots["y"].astype(str)
    assert np.array_equal(a1.obsm["spatial"], spots.loc[a1.obs_names, ["pixel_x", "pixel_y"]].to_numpy())
    assert (a1.obs_names == a1.obs["array_col"].astype(str) + "x" + a1.obs["array_row"].astype(str)).all()
    sf = a1.uns["spatial"]["A1"]["scalefactors"]
    assert sf["tissue_hires_scalef"] == pytest.approx(2000 / 6954)  # app PNG over the full-res width (dims.list)
    assert 95 < sf["spot_diameter_fullres"] < 110  # 100 um at ~1.0 px/um in A1's full-resolution frame


def test_a1_spots_fall_on_tissue_in_the_image(a1):
    ok, img, xy = _inside(a1, "A1")
    assert img.shape == (2138, 2000, 3)
    assert img.dtype == np.uint8
    assert ok.all()
    # the app PNG masks the background to black: at the right scale every spot sits on (non-black) tissue
    on_tissue = img[xy[:, 1], xy[:, 0]].max(axis=1) > 20
    assert on_tissue.mean() > 0.97
    # a wrong scale would put many spots on the black background
    bad = np.floor(a1.obsm["spatial"] * 0.25).astype(int)
    assert (img[bad[:, 1], bad[:, 0]].max(axis=1) > 20).mean() < on_tissue.mean()


@pytest.fixture(scope="module")
def c2_hires(senca_data_dir):
    return senca.datasets.her2st("C2", image="hires", download=False)


def test_c2_hires_is_downscaled_full_res_jpeg(c2_hires):
    ok, img, xy = _inside(c2_hires, "C2")
    full_w, full_h, _ = HER2ST_FULLRES_DIMS["C2"]
    assert img.shape[1] == 2000
    assert abs(img.shape[0] - full_h * 2000 / full_w) < 1
    assert c2_hires.uns["spatial"]["C2"]["scalefactors"]["tissue_hires_scalef"] == pytest.approx(2000 / full_w)
    assert ok.all()
    # spots sit on stained tissue, darker than the bright slide background at the image corners
    spot_brightness = np.median(img[xy[:, 1], xy[:, 0]].mean(axis=1))
    corners = np.concatenate([img[:50, :50], img[:50, -50:], img[-50:, :50], img[-50:, -50:]]).mean(axis=-1)
    assert spot_brightness < np.median(corners) - 20
    assert "pathologist" not in c2_hires.obs
    assert 130 < c2_hires.uns["spatial"]["C2"]["scalefactors"]["spot_diameter_fullres"] < 145  # ~1.37 px/um


def test_c2_fullres_matches_hires(c2_hires):
    full = senca.datasets.her2st("C2", image="fullres", download=False)
    img = full.uns["spatial"]["C2"]["images"]["hires"]  # stored under "hires" at scale 1 (squidpy default key)
    assert img.shape == (9911, 9274, 3)
    assert full.uns["spatial"]["C2"]["scalefactors"]["tissue_hires_scalef"] == 1.0
    assert full.uns["spatial"]["C2"]["metadata"]["image_resolution"] == "fullres"
    ok, _, xy = _inside(full, "C2")
    assert ok.all()
    _, himg, hxy = _inside(c2_hires, "C2")
    # same spot, same colour (means over the same ~40 full-res px window, to absorb the resampling)
    a = np.array([img[y - 20 : y + 21, x - 20 : x + 21].mean((0, 1)) for x, y in xy])
    b = np.array([himg[y - 4 : y + 5, x - 4 : x + 5].mean((0, 1)) for x, y in hxy])
    assert np.abs(a - b).mean() < 8
    # while a neighbouring spot's colour differs more
    assert np.abs(a - np.roll(b, 1, axis=0)).mean() > np.abs(a - b).mean()


def test_b1_without_image_and_the_error_with_one(senca_data_dir):
    b1 = senca.datasets.her2st("B1", image=None, download=False)
    assert b1.shape == (295, 15109)
    assert b1.obs["pathologist"].notna().all()
    assert b1.obs["pathologist"].value_counts()["breast glands"] == 41
    assert b1.uns["spatial"]["B1"]["images"] == {}
    assert set(b1.uns["spatial"]["B1"]["scalefactors"]) == {"spot_diameter_fullres"}
    with pytest.raises(FileNotFoundError) as err:
        senca.datasets.her2st("B1", image="hires", download=False)
    msg = str(err.value)
    assert str(senca_data_dir / "her2st" / "ST-imgs" / "B" / "B1") in msg  # where it looked ...
    assert "$SENCA_DATA_DIR" in msg
    assert "cache" in msg
    assert "no verified download" in msg
    assert "image=None" in msg  # ... and the fix
    # data_dir may also be the her2st folder itself
    c1 = senca.datasets.her2st("C1", image=None, data_dir=senca_data_dir / "her2st", download=False)
    assert c1.shape == (176, 15557)
    assert c1.obs["pathologist"].notna().all()


def test_relative_data_dir_is_resolved_where_read(senca_data_dir, tmp_path, monkeypatch):
    """A relative $SENCA_DATA_DIR (the README's ``../shared/data``) is made absolute when read, and reads work."""
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SENCA_DATA_DIR", os.path.relpath(senca_data_dir, work))
    assert dict(_fetch.search_roots("her2st", None))["$SENCA_DATA_DIR"] == senca_data_dir / "her2st"
    assert _fetch.data_env_dir().is_absolute()
    b1 = senca.datasets.her2st("B1", image=None, download=False)
    assert b1.shape == (295, 15109)
    with pytest.raises(FileNotFoundError) as err:
        senca.datasets.her2st("B1", image="hires", download=False)
    assert str(senca_data_dir / "her2st" / "ST-imgs") in str(err.value)  # the absolute path, usable elsewhere


def test_missing_files_error_names_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        senca.datasets.her2st("A1", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "her2st" / "ST-cnts" / "A1.tsv.gz") in msg
    assert "$SENCA_DATA_DIR: (not set)" in msg
    assert str(_fetch.cache_dir() / "her2st" / "ST-cnts" / "A1.tsv.gz") in msg
    assert "https://github.com/almaan/her2st/raw/85df7411b987a7dec3feff9718b869a7a82091ec/data/ST-cnts/A1.tsv.gz" in msg
    assert "downloads disabled" in msg
    # $SENCA_DOWNLOAD=0 (set by the fixture) also disables downloads when download=None
    with pytest.raises(FileNotFoundError, match="downloads disabled"):
        senca.datasets.her2st("A1", data_dir=tmp_path, image=None)


@pytest.fixture
def local_repo(tmp_path, senca_data_dir):
    """A local HTTP server laid out like github.com/almaan/her2st/raw/<commit>/, holding A1's files."""
    repo = tmp_path / "repo"
    for rel, repo_rel in [
        ("ST-cnts/A1.tsv.gz", "data/ST-cnts/A1.tsv.gz"),
        ("ST-spotfiles/A1_selection.tsv", "data/ST-spotfiles/A1_selection.tsv"),
        ("ST-pat/lbl/A1_labeled_coordinates.tsv", "data/ST-pat/lbl/A1_labeled_coordinates.tsv"),
    ]:
        (repo / repo_rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(senca_data_dir / "her2st" / rel, repo / repo_rel)
    handler = functools.partial(_QuietHandler, directory=str(repo))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield repo, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verifies_and_caches(local_repo, tmp_path, monkeypatch, a1):
    repo, url = local_repo
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    monkeypatch.setitem(_fetch.BASE_URLS, "her2st", url)
    empty = tmp_path / "empty"
    got = senca.datasets.her2st("A1", image=None, data_dir=empty, download=True)
    assert (_fetch.cache_dir() / "her2st/ST-cnts/A1.tsv.gz").is_file()
    assert (got.X != a1.X).nnz == 0
    assert got.obs["pathologist"].equals(a1.obs["pathologist"])
    # second call: served from the cache, downloads off
    again = senca.datasets.her2st("A1", image=None, data_dir=empty, download=False)
    assert (again.X != a1.X).nnz == 0
    # a server copy that changed: the hash check refuses it and keeps nothing
    shutil.rmtree(_fetch.cache_dir())
    spots = repo / "data/ST-spotfiles/A1_selection.tsv"
    spots.write_bytes(spots.read_bytes().replace(b"4550.31", b"4550.32"))
    with pytest.raises(ValueError, match="does not match its registered sha256"):
        senca.datasets.her2st("A1", image=None, data_dir=empty, download=True)
    assert not (_fetch.cache_dir() / "her2st/ST-spotfiles/A1_selection.tsv").exists()


def test_download_failure_is_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    monkeypatch.setitem(_fetch.BASE_URLS, "her2st", "http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(FileNotFoundError, match=r"download: http://127\.0\.0\.1:9/data/ST-cnts/A1\.tsv\.gz \(failed"):
        senca.datasets.her2st("A1", image=None, data_dir=tmp_path, download=True)


def _copy_section(src: Path, dst: Path, section: str) -> Path:
    for rel in (f"ST-cnts/{section}.tsv.gz", f"ST-spotfiles/{section}_selection.tsv"):
        (dst / "her2st" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "her2st" / rel, dst / "her2st" / rel)
    return dst / "her2st" / f"ST-cnts/{section}.tsv.gz"


def _quirky_label_file(spots: pd.DataFrame, path: Path, crlf: bool) -> pd.Series:
    """A label file written like the original ones (adjusted float x, y) with the quirks of real files.

    Returns the labels the reader must keep, by spot id.
    """
    good = spots.iloc[:40]
    classes = np.array(["invasive cancer", "connective tissue", "immune infiltrate"])
    labels = classes[np.arange(len(good)) % 3]
    rows = [
        f"{sx}x{sy}\t{x + 0.02:.3f}\t{y - 0.03:.3f}\t{px}\t{py}\t{lab}"
        for (sx, sy, x, y, px, py), lab in zip(
            good[["x", "y", "x", "y", "pixel_x", "pixel_y"]].itertuples(index=False), labels, strict=True
        )
    ]
    first = good.iloc[0]
    rows += [
        "1379x6121\tNA\tNA\tNA\tNA\timmune infiltrate",  # no coordinates (E1-H1 of the original repository)
        "1380x6122\t NA\tNA \tNA\tNA\tundetermined",
        f"dup\t{first['x'] + 0.01}\t{first['y']}\t0\t0\tadipose tissue",  # a spot labelled twice: the first wins
        "nocount\t99.0\t99.0\t0\t0\tinvasive cancer",  # no count row
        f"nolabel\t{good.iloc[1]['x']}\t{good.iloc[1]['y']}\t0\t0\t",  # no label
    ]
    rows = [r + "  " for r in rows]  # trailing whitespace
    text = "\n".join(["Row.names\tx\ty\tpixel_x\tpixel_y\tlabel", *rows]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    ids = good["x"].astype(str) + "x" + good["y"].astype(str)
    return pd.Series(labels, index=ids.to_numpy())


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_label_file_quirks_are_skipped_with_one_warning(senca_data_dir, tmp_path, monkeypatch, crlf):
    """Rows with NA coordinates, no label, a repeated spot or no count row are skipped and counted once."""
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    _copy_section(senca_data_dir, tmp_path, "B2")
    spots = pd.read_csv(tmp_path / "her2st/ST-spotfiles/B2_selection.tsv", sep="\t")
    expected = _quirky_label_file(spots, tmp_path / "her2st/ST-pat/lbl/B2_labeled_coordinates.tsv", crlf)
    with pytest.warns(UserWarning, match="B2_labeled_coordinates") as record:
        b2 = senca.datasets.her2st("B2", image=None, data_dir=tmp_path)
    msgs = [str(w.message) for w in record if "B2_labeled_coordinates" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert "5 of the 45 rows" in msgs[0]
    for reason in ("2 with no coordinates (NA)", "1 with no label", "1 with a repeated spot", "1 with no count row"):
        assert reason in msgs[0], msgs[0]
    got = b2.obs["pathologist"].dropna()
    assert len(got) == 40
    pd.testing.assert_series_equal(got.astype(str), expected.loc[got.index], check_names=False)
    assert set(b2.obs["pathologist"].cat.categories) == {"invasive cancer", "connective tissue", "immune infiltrate"}
    # the label reader alone: the same rows, the same one warning (it cannot know the count rows)
    with pytest.warns(UserWarning, match="4 of the 45 rows") as record:
        labels = senca.datasets.her2st_labels("B2", data_dir=tmp_path)
    assert len([w for w in record if "B2_labeled" in str(w.message)]) == 1
    assert len(labels) == 41
    assert "99x99" in labels.index


def test_registered_labels_absent_offline_load_without_labels(senca_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    _copy_section(senca_data_dir, tmp_path, "E1")
    with pytest.warns(UserWarning, match=r"labels of her2st section E1 are published.*without obs\['pathologist'\]"):
        e1 = senca.datasets.her2st("E1", image=None, data_dir=tmp_path, download=False)
    assert "pathologist" not in e1.obs
    assert e1.n_obs > 0
    assert "E1_labeled_coordinates.tsv" in " ".join(f"{p} {_fetch.registry()[p]}" for p in _fetch.registry())


def test_every_registered_section_reads(senca_data_dir):
    """All 36 sections of the pinned registry: spot file and count-row ids parse and belong together, label files
    parse where present (what ``her2st`` checks before building the AnnData; the whole loads, images and the
    Visium / SpatialData readers are in ``python -m benchmarks.readers``)."""
    root = senca_data_dir / "her2st"
    reg = _fetch.registry()
    sections = senca.datasets.her2st_sections("all", data_dir=senca_data_dir, local_only=True)
    assert sections == list(_her2st.SECTIONS)
    assert len(sections) == 36
    labelled = []
    for s in sections:
        assert f"her2st/ST-cnts/{s}.tsv.gz" in reg
        spots = _her2st._read_spots(root / f"ST-spotfiles/{s}_selection.tsv")
        with gzip.open(root / f"ST-cnts/{s}.tsv.gz", "rt") as fh:
            ids = pd.Index([line.partition("\t")[0] for line in fh.read().splitlines()[1:] if line.strip()])
        assert len(ids) > 100, s
        assert ids.is_unique, s
        assert ids.isin(spots.index).all(), s
        lbl = root / f"ST-pat/lbl/{s}_labeled_coordinates.tsv"
        if lbl.is_file():
            labels, skipped = _her2st._read_labels(lbl)
            assert labels.index.isin(ids).mean() > 0.98, (s, skipped)
            labelled.append(s)
    assert {"A1", "B1", "C1", "D1"} <= set(labelled)


def test_corrupt_files_raise_clear_errors(senca_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    counts = _copy_section(senca_data_dir, tmp_path, "B2")
    good = counts.read_bytes()
    counts.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=r"corrupt or a different version: \d+ bytes"):
        senca.datasets.her2st("B2", image=None, data_dir=tmp_path)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # same size, one byte changed
    counts.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="sha256"):
        senca.datasets.her2st("B2", image=None, data_dir=tmp_path)
    # files without a registered hash are still parsed defensively
    counts.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        _her2st._read_counts(counts)
    counts.write_bytes(gzip.compress(b"\tG1\tG2\n1x1\t3\tfoo\n"))
    with pytest.raises(ValueError, match="corrupt or truncated"):
        _her2st._read_counts(counts)


def test_bad_section_and_image_arguments():
    with pytest.raises(ValueError, match="Valid sections: A1, A2.*H3"):
        senca.datasets.her2st("Z9")
    with pytest.raises(TypeError, match="string"):
        senca.datasets.her2st(1)
    with pytest.raises(ValueError, match="image must be"):
        senca.datasets.her2st("A1", image="lowres")
    with pytest.raises(ValueError, match="kind must be"):
        senca.datasets.her2st_sections("everything")
    with pytest.raises(ValueError, match="A1, B1, C1, D1 only"):
        senca.datasets.spacrd_labels("A2")


def test_fullres_unavailable_for_a1(senca_data_dir):
    with pytest.raises(FileNotFoundError, match=r"registered fullres image: B4, C2, C3, C4, C5, C6"):
        senca.datasets.her2st("A1", image="fullres", download=False)


def test_section_listing(senca_data_dir, tmp_path, monkeypatch):
    assert senca.datasets.her2st_sections("labels", local_only=True) == ["A1", "B1", "C1", "D1"]
    images = ["A1", "A2", "B4", "C2", "C3", "C4", "C5", "C6"]
    assert senca.datasets.her2st_sections("image", local_only=True) == images
    assert len(senca.datasets.her2st_sections(local_only=True)) == 36
    monkeypatch.delenv("SENCA_DATA_DIR", raising=False)
    assert senca.datasets.her2st_sections("all", data_dir=tmp_path, local_only=True) == []
    # with nothing local, the registered (downloadable) sections are listed
    labelled = ["A1", "B1", "C1", "D1", "E1", "F1", "G2", "H1"]
    assert senca.datasets.her2st_sections("labels", data_dir=tmp_path) == labelled
    assert senca.datasets.her2st_sections("image", data_dir=tmp_path) == images
    _copy_section(senca_data_dir, tmp_path, "E2")
    assert senca.datasets.her2st_sections("all", data_dir=tmp_path, local_only=True) == ["E2"]


def test_label_readers(a1, senca_data_dir):
    labels = senca.datasets.her2st_labels("A1")
    assert len(labels) == 348
    assert labels.name == "pathologist"
    assert labels.reindex(a1.obs_names).equals(a1.obs["pathologist"].set_axis(a1.obs_names))
    with pytest.raises(FileNotFoundError, match="Sections with labels: A1, B1, C1, D1, E1, F1, G2, H1"):
        senca.datasets.her2st_labels("E1")  # registered, but absent here and downloads are off
    y = senca.datasets.spacrd_labels("A1")
    assert len(y) == 346
    assert int(y.sum()) == 311
    assert list(y.index) == list(a1.obs_names)
    cancer = a1.obs["pathologist"].isin(["invasive cancer", "cancer in situ"]).to_numpy()
    assert (y.to_numpy() == cancer).mean() > 0.97  # SpaCRD's labels agree with the pathologist's 97.7 %


def test_registry_matches_dims_list(senca_data_dir):
    """The hard-coded full-resolution sizes equal the R saveRDS table app/data/dims.list."""
    raw = gzip.open(senca_data_dir / "her2st/app/data/dims.list").read()
    rows = []
    for m in re.finditer(b"JPEG", raw):  # format, then INTSXP width, height, ..., filesize
        block = raw[m.end() : m.end() + 200]
        ints = [
            struct.unpack(">i", block[h.end() : h.end() + 4])[0] for h in re.finditer(b"\0\0\0\x0d\0\0\0\x01", block)
        ]
        rows.append(tuple(ints[:3]))
    assert rows == list(HER2ST_FULLRES_DIMS.values())
    held_out = {f"her2st/ST-pat/lbl/{s}_labeled_coordinates.tsv" for s in ("E1", "F1", "G2", "H1", "J1")}
    for path, (_sha, size) in _fetch.registry().items():
        local = senca_data_dir / path
        if path in held_out and not local.exists():  # registered, kept out of the shared data for evaluation
            continue
        assert local.stat().st_size == size, path
    _fetch.verify(senca_data_dir / "her2st/ST-imgs/C/C2/5714_HE_BT_C2.jpg", "her2st/ST-imgs/C/C2/5714_HE_BT_C2.jpg")


def test_synthetic_counts_stream_in_chunks_without_changing_the_draw():
    """The simulator builds its counts chunk by chunk: any chunking gives the counts of one dense draw."""
    from senca.datasets._synthetic import _negative_binomial_counts

    rng = np.random.default_rng(0)
    profile = rng.dirichlet(np.ones(300), size=3)
    programme = rng.integers(0, 3, size=1000)
    library = rng.lognormal(np.log(500), 0.3, size=1000)
    dense = np.random.default_rng(1).negative_binomial(5.0, 5.0 / (5.0 + profile[programme] * library[:, None]))
    for chunk in (7 * 300, 1000 * 300, 10**7):
        x = _negative_binomial_counts(profile, programme, library, 5.0, np.random.default_rng(1), chunk_draws=chunk)
        assert sp.isspmatrix_csr(x)
        assert x.dtype == np.float32
        assert x.has_canonical_format
        np.testing.assert_array_equal(x.toarray(), dense)
    adata = senca.datasets.synthetic(n_spots=500, n_genes=40, seed=0)
    assert adata.X is not adata.layers["counts"]  # a copy: editing X leaves the counts alone
    assert (adata.X != adata.layers["counts"]).nnz == 0


def test_synthetic_programme_seed_shares_programmes_between_sections():
    """Sections of different seeds share their marker genes and histology centres under one programme_seed."""

    def markers(adata, programme=0):
        x = np.asarray(adata.layers["counts"].todense(), dtype=float)
        x = x / x.sum(1, keepdims=True)
        inside = np.asarray(adata.obs["expression_program"].astype(int) == programme)
        ratio = x[inside].mean(0) / np.maximum(x[~inside].mean(0), 1e-9)
        return set(np.argsort(ratio)[-10:])

    kw = {"n_spots": 600, "n_genes": 100, "n_regions": 3}
    a, b = (senca.datasets.synthetic(seed=s, programme_seed=0, **kw) for s in (1, 2))
    assert len(markers(a) & markers(b)) >= 8  # 10 marker genes per programme, counts noisy
    assert (a.X != b.X).nnz > 0  # different sections: their own layout, depth and noise
    c, d = (senca.datasets.synthetic(seed=s, **kw) for s in (1, 2))
    assert len(markers(c) & markers(d)) <= 4  # each section its own programmes (chance: 1 of 10)
    same = senca.datasets.synthetic(seed=1, programme_seed=None, **kw)
    assert (same.X != c.X).nnz == 0  # None keeps the seed's draws exactly
