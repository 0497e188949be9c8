"""senca.io: the AnnData <-> SpatialData bridge and the Space Ranger reader."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image

import senca

warnings.filterwarnings("ignore", message=".*region.*categorical.*")


def _same_counts(a, b) -> bool:
    return a.shape == b.shape and (sp.csr_matrix(a) != sp.csr_matrix(b)).nnz == 0


def _check_round_trip(adata, back, libs):
    assert list(back.obs_names) == list(adata.obs_names)
    assert list(back.var_names) == list(adata.var_names)
    assert _same_counts(back.X, adata.X)
    assert _same_counts(back.layers["counts"], adata.layers["counts"])
    assert np.array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    pd.testing.assert_frame_equal(back.obs, adata.obs)
    for lib in libs:
        src, dst = adata.uns["spatial"][lib], back.uns["spatial"][lib]
        assert set(dst["images"]) == set(src["images"])
        for key, img in src["images"].items():
            assert np.array_equal(dst["images"][key], img)
            assert dst["images"][key].dtype == img.dtype
        for key, value in src["scalefactors"].items():
            assert dst["scalefactors"][key] == pytest.approx(value, rel=1e-12)


@pytest.fixture(scope="module")
def a1(senca_data_dir):
    return senca.datasets.her2st("A1", data_dir=senca_data_dir, download=False)


def test_her2st_round_trip_through_zarr(a1, tmp_path):
    import spatialdata as sd

    sdata = senca.io.to_spatialdata(a1)
    assert sorted(sdata.images) == ["A1_hires_image"]
    assert sorted(sdata.shapes) == ["A1"]
    table = sdata.tables["table"]
    assert table.uns["spatialdata_attrs"] == {"region": "A1", "region_key": "library_id", "instance_key": "spot_id"}
    assert "images" not in table.uns["spatial"]["A1"]  # the image lives in the image element only
    _check_round_trip(a1, senca.io.from_spatialdata(sdata), ["A1"])
    sdata.write(tmp_path / "a1.zarr")
    _check_round_trip(a1, senca.io.from_spatialdata(sd.read_zarr(tmp_path / "a1.zarr")), ["A1"])


def test_transformations_put_spots_on_the_right_pixels(a1):
    """Circles sit at the full-res coordinates with the spot radius; the image maps to them by its scale factor."""
    import spatialdata as sd
    from spatialdata.transformations import get_transformation

    sdata = senca.io.to_spatialdata(a1)
    sf = a1.uns["spatial"]["A1"]["scalefactors"]
    circles = sdata.shapes["A1"]
    assert np.allclose(circles["radius"], sf["spot_diameter_fullres"] / 2)
    table = sdata.tables["table"]
    xy = np.c_[circles.geometry.x, circles.geometry.y][table.obs["spot_id"].to_numpy()]
    assert np.array_equal(xy, a1.obsm["spatial"])
    m = get_transformation(sdata.images["A1_hires_image"], "A1").to_affine_matrix(("x", "y"), ("x", "y"))
    assert np.allclose(np.diag(m)[:2], 1 / sf["tissue_hires_scalef"])
    # cropping the image in full-res coordinates around a spot gives the hires pixels around that spot
    x, y = a1.obsm["spatial"][10]
    r = sf["spot_diameter_fullres"] / 2
    crop = sd.bounding_box_query(
        sdata.images["A1_hires_image"],
        axes=("x", "y"),
        min_coordinate=[x - r, y - r],
        max_coordinate=[x + r, y + r],
        target_coordinate_system="A1",
    )
    s = sf["tissue_hires_scalef"]
    img = a1.uns["spatial"]["A1"]["images"]["hires"]
    expected = img[
        int(np.floor((y - r) * s)) : int(np.ceil((y + r) * s)), int(np.floor((x - r) * s)) : int(np.ceil((x + r) * s))
    ]
    got = crop.transpose("y", "x", "c").values
    assert abs(got.shape[0] - expected.shape[0]) <= 1
    assert abs(got.shape[1] - expected.shape[1]) <= 1
    h, w = min(got.shape[0], expected.shape[0]), min(got.shape[1], expected.shape[1])
    assert np.abs(got[:h, :w].astype(int) - expected[:h, :w].astype(int)).mean() < 30


def test_synthetic_round_trip_with_and_without_image():
    with_img = senca.datasets.synthetic(n_spots=150, n_genes=40, image=True, seed=0)
    _check_round_trip(with_img, senca.io.from_spatialdata(senca.io.to_spatialdata(with_img)), ["synthetic"])
    multiscale = senca.io.to_spatialdata(with_img, scale_factors=[2])
    assert len(multiscale.images["synthetic_hires_image"].children) == 2
    _check_round_trip(with_img, senca.io.from_spatialdata(multiscale), ["synthetic"])
    plain = senca.datasets.synthetic(n_spots=150, n_genes=40, image=False, seed=1)
    sdata = senca.io.to_spatialdata(plain)
    assert len(sdata.images) == 0
    # no scale factors: spot diameter = half the spot spacing (100 px hex grid), as in legacy ST and ~Visium
    assert np.allclose(sdata.shapes["library"]["radius"], 25)
    back = senca.io.from_spatialdata(sdata)
    assert np.array_equal(back.obsm["spatial"], plain.obsm["spatial"])
    assert _same_counts(back.X, plain.X)
    assert back.uns["spatial"]["library"]["scalefactors"]["spot_diameter_fullres"] == pytest.approx(50)


def test_two_sections_keep_their_own_coordinate_systems():
    a = senca.datasets.synthetic(n_spots=100, n_genes=30, image=True, library_id="a", seed=0)
    b = senca.datasets.synthetic(n_spots=120, n_genes=30, image=True, hires_scalef=0.5, library_id="b", seed=1)
    both = senca.pp.concat_sections([a, b], min_shared_genes=10)
    sdata = senca.io.to_spatialdata(both)
    assert sorted(sdata.shapes) == ["a", "b"]
    assert sorted(sdata.images) == ["a_hires_image", "b_hires_image"]
    back = senca.io.from_spatialdata(sdata)
    assert np.array_equal(back.obsm["spatial"], both.obsm["spatial"])
    assert _same_counts(back.X, both.X)
    assert back.uns["spatial"]["b"]["scalefactors"]["tissue_hires_scalef"] == pytest.approx(0.5)
    assert np.array_equal(back.uns["spatial"]["a"]["images"]["hires"], a.uns["spatial"]["a"]["images"]["hires"])
    assert (back.obs["library_id"].astype(str) == both.obs["section"].astype(str)).all()


def test_bridge_errors():
    adata = senca.datasets.synthetic(n_spots=60, n_genes=20, seed=0)
    with pytest.raises(TypeError, match="expects an AnnData"):
        senca.io.to_spatialdata(adata.to_df())
    with pytest.raises(KeyError, match="spatial_key"):
        senca.io.to_spatialdata(adata, spatial_key="xy")
    sdata = senca.io.to_spatialdata(adata)
    with pytest.raises(KeyError, match="available: \\['table'\\]"):
        senca.io.from_spatialdata(sdata, table_key="counts")
    clash = adata.copy()
    clash.obs["spot_id"] = 0
    with pytest.raises(ValueError, match="spot_id"):
        senca.io.to_spatialdata(clash)


def _write_feature_h5(path, barcodes, counts) -> None:
    """A CellRanger v3 ``filtered_feature_bc_matrix.h5``: ``counts`` (barcodes x genes, integer) and their barcodes."""
    m = sp.csc_matrix(counts.T)  # genes x barcodes
    n_genes = counts.shape[1]
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.asarray(barcodes).astype("S"))
        g.create_dataset("data", data=m.data)
        g.create_dataset("indices", data=m.indices)
        g.create_dataset("indptr", data=m.indptr)
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        feat = g.create_group("features")
        feat.create_dataset("id", data=np.array([f"ENSG{i:011d}" for i in range(n_genes)], dtype="S"))
        feat.create_dataset("name", data=np.array([f"GENE{i}" for i in range(n_genes)], dtype="S"))
        feat.create_dataset("feature_type", data=np.array(["Gene Expression"] * n_genes, dtype="S"))
        feat.create_dataset("genome", data=np.array(["GRCh38"] * n_genes, dtype="S"))
        feat.create_dataset("_all_tag_keys", data=np.array(["genome"], dtype="S"))


def _write_spaceranger(root, n_rows=8, n_cols=10, n_genes=30, seed=0, hires_scalef=0.2, lowres_scalef=0.05):
    """A minimal Space Ranger ``outs/`` folder: CellRanger-v3 h5, positions with header, scale factors, PNGs."""
    (root / "spatial").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    rows = rows.ravel()
    cols = cols.ravel() * 2 + rows % 2
    n = len(rows)
    barcodes = np.array([f"{''.join(rng.choice(list('ACGT'), 16))}-1" for _ in range(n)])
    in_tissue = np.ones(n, dtype=int)
    in_tissue[:5] = 0
    px_row, px_col = 300 + rows * 173, 300 + cols * 100
    pd.DataFrame(
        {
            "barcode": barcodes,
            "in_tissue": in_tissue,
            "array_row": rows,
            "array_col": cols,
            "pxl_row_in_fullres": px_row,
            "pxl_col_in_fullres": px_col,
        }
    ).to_csv(root / "spatial" / "tissue_positions.csv", index=False)
    full_h, full_w = px_row.max() + 300, px_col.max() + 300
    for name, s in (("hires", hires_scalef), ("lowres", lowres_scalef)):
        img = rng.integers(0, 255, (int(full_h * s), int(full_w * s), 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "spatial" / f"tissue_{name}_image.png")
    scalefactors = {
        "tissue_hires_scalef": hires_scalef,
        "tissue_lowres_scalef": lowres_scalef,
        "spot_diameter_fullres": 89.4,
        "fiducial_diameter_fullres": 144.5,
    }
    (root / "spatial" / "scalefactors_json.json").write_text(json.dumps(scalefactors))
    keep = in_tissue == 1
    counts = rng.poisson(3, (keep.sum(), n_genes)).astype(np.int32)
    _write_feature_h5(root / "filtered_feature_bc_matrix.h5", barcodes[keep], counts)
    return counts, barcodes[keep], np.c_[px_col, px_row][keep].astype(float), scalefactors


def test_read_visium_from_a_space_ranger_folder(tmp_path):
    counts, barcodes, xy, scalefactors = _write_spaceranger(tmp_path / "outs")
    adata = senca.io.read_visium(tmp_path / "outs", library_id="s1")
    assert list(adata.obs_names) == list(barcodes)
    assert list(adata.var_names) == [f"GENE{i}" for i in range(counts.shape[1])]
    assert adata.X.dtype == np.float32
    assert np.array_equal(adata.X.toarray(), counts)
    assert _same_counts(adata.layers["counts"], adata.X)
    assert np.array_equal(adata.obsm["spatial"], xy)  # (x, y) = (pxl_col, pxl_row) in full-res pixels
    assert adata.obs["section"].unique().tolist() == ["s1"]
    lib = adata.uns["spatial"]["s1"]
    for key in ("tissue_hires_scalef", "tissue_lowres_scalef", "spot_diameter_fullres"):
        assert lib["scalefactors"][key] == pytest.approx(scalefactors[key])
    hires = np.asarray(Image.open(tmp_path / "outs" / "spatial" / "tissue_hires_image.png"))
    assert np.allclose(lib["images"]["hires"], hires / 255 if lib["images"]["hires"].dtype.kind == "f" else hires)
    # the SpatialData route (spatialdata-io) reads back to the same spots, counts and scale factors
    sdata = senca.io.read_visium(tmp_path / "outs", library_id="s1", spatialdata=True)
    assert {"s1_hires_image", "s1_lowres_image"} <= set(sdata.images)
    back = senca.io.from_spatialdata(sdata)
    back = back[adata.obs_names]
    assert np.allclose(back.obsm["spatial"], xy)
    assert np.array_equal(back.X.toarray(), counts)
    for key in ("tissue_hires_scalef", "tissue_lowres_scalef", "spot_diameter_fullres"):
        assert back.uns["spatial"]["s1"]["scalefactors"][key] == pytest.approx(scalefactors[key])
    assert back.uns["spatial"]["s1"]["images"]["hires"].shape == hires.shape


def test_read_visium_low_res_image_only_and_no_images(tmp_path):
    """Published Visium copies often keep only the low-res image and a headerless Space Ranger 1 positions file."""
    counts, barcodes, xy, _ = _write_spaceranger(tmp_path / "outs")
    spatial = tmp_path / "outs" / "spatial"
    (spatial / "tissue_hires_image.png").unlink()
    pos = pd.read_csv(spatial / "tissue_positions.csv")
    pos.iloc[::-1].to_csv(spatial / "tissue_positions_list.csv", header=False, index=False)  # another row order
    (spatial / "tissue_positions.csv").unlink()
    adata = senca.io.read_visium(tmp_path / "outs", library_id="s1")
    assert list(adata.obs_names) == list(barcodes)
    assert np.array_equal(adata.obsm["spatial"], xy)
    assert set(adata.uns["spatial"]["s1"]["images"]) == {"lowres"}
    assert np.array_equal(adata.X.toarray(), counts)
    bare = senca.io.read_visium(tmp_path / "outs", library_id="s1", load_images=False)
    assert np.array_equal(bare.obsm["spatial"], xy)  # coordinates do not depend on loading the images
    assert "images" not in bare.uns["spatial"]["s1"]


def test_read_visium_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        senca.io.read_visium(tmp_path / "nope")
    (tmp_path / "outs").mkdir()
    with pytest.raises(FileNotFoundError, match="counts_file"):
        senca.io.read_visium(tmp_path / "outs")


def _write_visium_hd(root, n_rows=20, n_cols=30, n_genes=60, seed=0, prefix="hd1_"):
    """A Space Ranger Visium HD ``outs/`` folder in the real layout: feature slice, 8 and 16 µm bins.

    ``binned_outputs/square_008um/`` and ``square_016um/`` each hold ``filtered_feature_bc_matrix.h5`` (CellRanger
    v3), ``spatial/tissue_positions.parquet`` and ``spatial/scalefactors_json.json``; ``spatial/`` holds the tissue
    images, painted by region. The 8 µm counts are those of ``senca.datasets.synthetic`` on a square grid of bins.
    """
    adata = senca.datasets.synthetic(n_spots=n_rows * n_cols, n_genes=n_genes, n_regions=3, layout="stripes",
                                     mean_library_size=300, seed=seed)  # fmt: skip
    micron_per_px, hires, lowres = 0.25, 0.1, 0.025
    rows = adata.obs["array_row"].to_numpy() + 2  # the simulator's grid, as bins; the slide's grid has margins
    cols = adata.obs["array_col"].to_numpy()
    region = adata.obs["region"].cat.codes.to_numpy()
    (root / "spatial").mkdir(parents=True)
    with h5py.File(root / f"{prefix}feature_slice.h5", "w") as f:
        layout = {"file_format": "1.0", "transform": [1, 0, 0, 0, 1, 0, 0, 0, 1]}
        f.attrs["metadata_json"] = json.dumps({"hd_layout_json": json.dumps(layout)})
    pitch = 8.0 / micron_per_px
    size = (int((rows.max() + 3) * pitch), int((cols.max() + 3) * pitch))  # full-resolution pixels (height, width)
    for name, scale in (("hires", hires), ("lowres", lowres)):
        img = np.full((int(size[0] * scale), int(size[1] * scale), 3), 245, dtype=np.uint8)
        colours = np.array([[230, 150, 200], [110, 60, 160], [200, 120, 170]], dtype=np.uint8)
        r0, c0 = (rows * pitch * scale).astype(int), (cols * pitch * scale).astype(int)
        w = max(1, int(pitch * scale))
        for r, c, k in zip(r0, c0, region, strict=True):
            img[r : r + w, c : c + w] = colours[k]
        Image.fromarray(img).save(root / "spatial" / f"tissue_{name}_image.png")
    truth = {}
    for um in (8, 16):
        f = um // 8  # 16 µm bins sum 2 x 2 bins of 8 µm
        key = np.c_[rows // f, cols // f]
        uniq, group = np.unique(key, axis=0, return_inverse=True)
        counts = (sp.csr_matrix((np.ones(adata.n_obs), (group.ravel(), np.arange(adata.n_obs)))) @ adata.X).tocsr()
        barcodes = np.array([f"s_{um:03d}um_{r:05d}_{c:05d}-1" for r, c in uniq])
        folder = root / "binned_outputs" / f"square_{um:03d}um"
        (folder / "spatial").mkdir(parents=True)
        off = np.c_[np.arange(2), np.arange(2)]  # two bins outside the tissue, listed in the positions only
        all_rc = np.r_[uniq, off]
        centre = (all_rc + 0.5) * pitch * f
        pd.DataFrame(
            {
                "barcode": np.r_[barcodes, [f"s_{um:03d}um_off{i}-1" for i in range(2)]],
                "in_tissue": np.r_[np.ones(len(uniq), int), np.zeros(2, int)],
                "array_row": all_rc[:, 0],
                "array_col": all_rc[:, 1],
                "pxl_row_in_fullres": centre[:, 0],
                "pxl_col_in_fullres": centre[:, 1],
            }
        ).to_parquet(folder / "spatial" / "tissue_positions.parquet", index=False)
        scalefactors = {
            "spot_diameter_fullres": um / micron_per_px,
            "bin_size_um": float(um),
            "microns_per_pixel": micron_per_px,
            "regist_target_img_scalef": hires,
            "tissue_lowres_scalef": lowres,
            "fiducial_diameter_fullres": 100.0,
            "tissue_hires_scalef": hires,
        }
        (folder / "spatial" / "scalefactors_json.json").write_text(json.dumps(scalefactors))
        _write_feature_h5(folder / "filtered_feature_bc_matrix.h5", barcodes, counts.astype(np.int32))
        truth[um] = {"barcodes": barcodes, "counts": counts, "xy": centre[: len(uniq), ::-1]}
    truth["region"] = pd.Series(adata.obs["region"].to_numpy(), index=truth[8]["barcodes"])
    return truth


def test_read_visium_hd_and_setup_at_8um(tmp_path):
    """A Visium HD folder in Space Ranger's layout reads at the 8 µm bins, sets up from SpatialData, finds regions."""
    from sklearn.metrics import adjusted_rand_score

    truth = _write_visium_hd(tmp_path / "outs")
    sdata = senca.io.read_visium_hd(tmp_path / "outs")
    assert set(sdata.tables) == {"square_008um"}
    assert {"hd1_hires_image", "hd1_lowres_image", "hd1_square_008um"} <= set(sdata.images) | set(sdata.shapes)
    table = sdata.tables["square_008um"]
    assert list(table.obs_names) == list(truth[8]["barcodes"])  # the bins under tissue, in the matrix's order
    assert sp.issparse(table.X)
    assert table.X.dtype == np.float32
    assert (table.X != truth[8]["counts"]).nnz == 0
    np.testing.assert_allclose(table.obsm["spatial"], truth[8]["xy"])  # (x, y) bin centres, full-res pixels
    assert table.obs["section"].unique().tolist() == ["hd1"]

    senca.model.SENCA.setup_spatialdata(sdata, table_key="square_008um", image_key="hd1_hires_image")
    assert table.obsm["X_histology"].shape[0] == table.n_obs
    assert np.isfinite(table.obsm["X_histology"]).all()
    model = senca.model.SENCA(sdata, n_latent=4)
    table.obsm["X_senca"] = model.get_latent_representation()
    senca.tl.regions(table, n_regions=3)
    assert adjusted_rand_score(truth["region"][table.obs_names], table.obs["senca_region"]) > 0.8  # 0.89-0.92 measured

    (tmp_path / "outs" / "hd1_feature_slice.h5").rename(tmp_path / "outs" / "feature_slice.h5")  # unprefixed
    coarse = senca.io.read_visium_hd(tmp_path / "outs", bin_size=16, dataset_id="other")
    assert (coarse.tables["square_016um"].X != truth[16]["counts"]).nnz == 0
    assert coarse.tables["square_016um"].n_obs < table.n_obs
    assert "other_hires_image" in coarse.images


def test_read_visium_hd_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        senca.io.read_visium_hd(tmp_path / "nope")
    _write_visium_hd(tmp_path / "outs", n_rows=6, n_cols=6)
    with pytest.raises(FileNotFoundError, match=r"No square_002um bins .*square_008um.*square_016um"):
        senca.io.read_visium_hd(tmp_path / "outs", bin_size=2)
    with pytest.raises(ValueError, match="pass dataset_id='hd1'"):
        senca.io.read_visium_hd(tmp_path / "outs", dataset_id="other")
    (tmp_path / "outs" / "hd1_feature_slice.h5").unlink()
    with pytest.raises(FileNotFoundError, match="feature_slice.h5"):
        senca.io.read_visium_hd(tmp_path / "outs")


def test_io_and_datasets_import_no_heavy_stack():
    """senca.io and senca.datasets stay light: no scvi-tools, Lightning, torch, squidpy or spatialdata on import."""
    code = (
        "import sys, senca.io, senca.datasets; "
        "print(sorted(m for m in ('scvi', 'lightning', 'torch', 'squidpy', 'spatialdata') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_setup_spatialdata_computes_features_from_an_image_element():
    """An image element name in setup_spatialdata gives the features an AnnData with the same image gets."""
    adata = senca.datasets.synthetic(n_spots=150, image=True, hires_scalef=0.3, seed=0)
    del adata.obsm["X_histology"]
    sdata = senca.io.to_spatialdata(adata)
    image = "synthetic_hires_image"
    scale = sdata.images[image].attrs["transform"]["synthetic"].to_affine_matrix(("x", "y"), ("x", "y"))[0, 0]
    assert scale == pytest.approx(1 / 0.3)  # the image is not in the spots' pixels: its scale must be used
    senca.im.extract_features(adata, method="stats", progress=False)
    expected = adata.obsm["X_histology"]

    senca.model.SENCA.setup_spatialdata(sdata, image_key=image, layer="counts")
    table = sdata.tables["table"]
    np.testing.assert_allclose(table.obsm["X_histology"], expected, rtol=1e-5, atol=1e-5)
    assert table.uns["senca"]["histology"]["image_element"] == image
    model = senca.model.SENCA(sdata)
    assert model.adata_manager.registry["setup_args"]["image_key"] == "X_histology"
    assert model.get_latent_representation().shape == (150, 60)

    # the same element again (SpaCRD here) reuses the stored features; an obsm key is used as it is
    table.obsm["X_histology"][0, 0] = 123.0
    senca.model.SpaCRD.setup_spatialdata(
        sdata, image_key=image, layer="counts", labels_key="region", positive_label="R1"
    )
    assert table.obsm["X_histology"][0, 0] == 123.0
    senca.model.SENCA.setup_spatialdata(sdata, image_key="X_histology", layer="counts")


def test_setup_spatialdata_image_key_errors():
    sdata = senca.io.to_spatialdata(senca.datasets.synthetic(n_spots=100, image=True, seed=0))
    with pytest.raises(KeyError, match="neither a key of .*obsm.* nor an image element"):
        senca.model.SENCA.setup_spatialdata(sdata, image_key="he_image", layer="counts")
    # features of another origin under X_histology are never replaced by ones computed from the element
    before = sdata.tables["table"].obsm["X_histology"].copy()
    with pytest.raises(ValueError, match="pass image_key='X_histology' to use them"):
        senca.model.SENCA.setup_spatialdata(sdata, image_key="synthetic_hires_image", layer="counts")
    np.testing.assert_array_equal(sdata.tables["table"].obsm["X_histology"], before)
