# %% [markdown]
# # Your own data
#
# senca reads the usual formats of spatial transcriptomics and works on AnnData and SpatialData alike. This tutorial
# shows the steps for your own sections:
#
# 1. read a 10x Visium **Space Ranger** output folder with {func}`senca.io.read_visium`;
# 2. move between AnnData and **SpatialData** (and a `.zarr` store) with {func}`senca.io.to_spatialdata` and
#    {func}`senca.io.from_spatialdata`;
# 3. describe the H&E around each spot with **your own feature extractor**, any function of the spot patches, with
#    {func}`senca.im.extract_features`;
# 4. use SENCA on **several sections** at once (`sample_key`), and call regions per section.
#
# So that it runs anywhere, the tutorial first writes two small simulated sections as Space Ranger folders; with
# real data, point the readers at your own `outs/` folders instead.

# %%
import warnings

# Known noise, silenced one by one. Every other warning below is what you will see.
# tqdm: the kernel that ran this notebook has no Jupyter widgets
warnings.filterwarnings("ignore", message="IProgress not found")
# squidpy's docstring templates, when it is imported
warnings.filterwarnings("ignore", message=".* is not a valid key!")
# zarr's notice about a future default, once per array written
warnings.filterwarnings("ignore", message="zarr v3 autosharding")

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
import spatialdata as sd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from PIL import Image

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
t_start = time.perf_counter()
workdir = Path(tempfile.mkdtemp(prefix="senca_tutorial_"))

# %% [markdown]
# ## Two simulated sections, written as Space Ranger folders
#
# {func}`senca.datasets.synthetic` simulates a Visium-like section: spots on a hexagonal grid, regions with their own
# marker genes and their own H&E colour and texture. Both sections share the same four tissue programmes laid out
# differently (quadrants and stripes), as two sections of one tumour would. `write_space_ranger` writes what Space
# Ranger writes: the count matrix (`filtered_feature_bc_matrix.h5`), the spot positions, the scale factors and the
# images. You do not need it for your own data.


# %%
def write_space_ranger(adata, outs: Path) -> None:
    """Write ``adata`` (senca.datasets.synthetic, image=True) as Space Ranger ``outs/``."""
    lib = adata.uns["spatial"][adata.obs["section"].iloc[0]]
    hires, sf = lib["images"]["hires"], lib["scalefactors"]
    (outs / "spatial").mkdir(parents=True)
    x, y = adata.obsm["spatial"].T
    pd.DataFrame(
        {
            "barcode": adata.obs_names,
            "in_tissue": 1,
            "array_row": adata.obs["array_row"],
            "array_col": adata.obs["array_col"],
            "pxl_row_in_fullres": y.round().astype(int),
            "pxl_col_in_fullres": x.round().astype(int),
        }
    ).to_csv(outs / "spatial" / "tissue_positions.csv", index=False)
    lowres_scalef = sf["tissue_hires_scalef"] / 4
    Image.fromarray(hires).save(outs / "spatial" / "tissue_hires_image.png")
    Image.fromarray(hires[::4, ::4]).save(outs / "spatial" / "tissue_lowres_image.png")
    (outs / "spatial" / "scalefactors_json.json").write_text(
        json.dumps(
            {
                "tissue_hires_scalef": sf["tissue_hires_scalef"],
                "tissue_lowres_scalef": lowres_scalef,
                "spot_diameter_fullres": sf["spot_diameter_fullres"],
                "fiducial_diameter_fullres": 1.6 * sf["spot_diameter_fullres"],
            }
        )
    )
    m = sp.csc_matrix(
        adata.layers["counts"].T.astype(np.int32)
    )  # genes x barcodes, as CellRanger stores it
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array(adata.obs_names, dtype="S")
        g["data"], g["indices"], g["indptr"] = m.data, m.indices, m.indptr
        g["shape"] = np.array(m.shape, dtype=np.int32)
        feat = g.create_group("features")
        feat["id"] = np.array([f"ENSG{i:011d}" for i in range(adata.n_vars)], dtype="S")
        feat["name"] = np.array(adata.var_names, dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        feat["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")
        feat["_all_tag_keys"] = np.array(["genome"], dtype="S")


truth = {}
for name, layout, n_spots in [("s1", "quadrants", 400), ("s2", "stripes", 300)]:
    sim = senca.datasets.synthetic(
        n_spots=n_spots, n_regions=4, layout=layout, image=True, library_id=name, seed=0
    )
    write_space_ranger(sim, workdir / name / "outs")
    truth[name] = sim.obs[
        "region"
    ]  # the simulated regions, to check the result at the end
sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())

# %% [markdown]
# ## 1. Read a Space Ranger folder
#
# {func}`senca.io.read_visium` returns an AnnData in the scanpy/squidpy spatial layout: raw counts in `X` and
# `layers["counts"]`, spot centres in full-resolution pixels in `obsm["spatial"]`, the images and scale factors in
# `uns["spatial"][library_id]` and the section name in `obs["section"]`.

# %%
s1 = senca.io.read_visium(workdir / "s1" / "outs", library_id="s1")
s1

# %%
s1.uns["spatial"]["s1"]["scalefactors"]

# %% [markdown]
# ## 2. SpatialData and `.zarr`
#
# {func}`senca.io.to_spatialdata` converts it into a {class}`spatialdata.SpatialData` object: the images, one circle
# per spot and the AnnData as its table, all placed in one coordinate system. It is written to and read from a
# `.zarr` store with spatialdata's own functions.

# %%
sdata = senca.io.to_spatialdata(s1)
sdata.write(workdir / "s1.zarr")
sdata = sd.read_zarr(workdir / "s1.zarr")
sdata

# %% [markdown]
# (`senca.io.read_visium(path, spatialdata=True)` reads a Space Ranger folder straight into SpatialData with
# spatialdata-io.) {func}`senca.im.extract_features` and the models' `setup_spatialdata` take the SpatialData
# object directly and write their results into its table; {func}`senca.io.from_spatialdata` turns it back into an
# AnnData at any time.

# %% [markdown]
# ## 3. Your own histology features
#
# {func}`senca.im.extract_features` crops a patch around every spot at its true size (here one and two spot
# diameters, 32 x 32 pixels each) and hands them, in chunks, to the feature extractor. Besides the built-in
# extractors (`"stats"`, `"cnn"`, `"timm"`), `method` can be any function that takes the patches, an array
# `(n, size, size, 3)` of RGB values in [0, 1], and returns one row of features per patch, e.g. a pathology
# foundation model you have locally. A small example:


# %%
def colour_and_nuclei(patches: np.ndarray) -> np.ndarray:
    """Mean and spread of each colour channel, and the dark (nuclear) pixel fraction."""
    mean = patches.mean(axis=(1, 2))
    spread = patches.std(axis=(1, 2))
    dark = (patches.mean(axis=3) < 0.45).mean(axis=(1, 2))
    return np.column_stack([mean, spread, dark])


senca.im.extract_features(
    sdata, method=colour_and_nuclei, key_added="X_histology", progress=False
)
sdata.tables["table"].obsm["X_histology"].shape  # 7 features x 2 patch sizes, z-scored

# %%
s1 = senca.io.from_spatialdata(sdata)  # back to AnnData, features included
s1.obsm["X_histology"][:3].round(2)

# %% [markdown]
# ## 4. Several sections at once
#
# Read the second section and describe its H&E with the same extractor. {func}`senca.pp.concat_sections` keeps the
# genes the sections share, every layer and `obsm` key they all have, and both images; `obs["section"]` says where
# each spot comes from.

# %%
s2 = senca.io.read_visium(workdir / "s2" / "outs", library_id="s2")
senca.im.extract_features(
    s2, method=colour_and_nuclei, key_added="X_histology", progress=False
)
adata = senca.pp.concat_sections({"s1": s1, "s2": s2})
adata

# %% [markdown]
# With `sample_key="section"` the spatial neighbourhoods stay within each section, so spots of different sections
# never attend to each other, while one model (one embedding) covers both sections and regions are comparable
# across them: with two or more sections SENCA corrects the expression for the section (Harmony) before the
# attention, and keeps that correction, so a section added later is embedded by
# `model.get_latent_representation(new)` and given the same regions by `senca.tl.assign_regions(new, adata)`
# (the tutorial *Apply a saved model to a new section* does that on her2st). `train()` chooses the number of
# attention passes from both sections (seconds). A SpatialData table works the same way: see the tutorial
# *SpatialData in, spatialdata-plot out*.

# %%
senca.model.SENCA.setup_anndata(
    adata, layer="counts", image_key="X_histology", sample_key="section"
)
model = senca.model.SENCA(adata)
model.train(seed=0)
adata.obsm["X_senca"] = model.get_latent_representation()
senca.tl.regions(adata, n_regions=4, use_rep="X_senca", sample_key="section", seed=0)
pd.crosstab(adata.obs["section"], adata.obs["senca_region"])

# %% [markdown]
# The same region labels in both sections: with `library_key` and `library_id`, {func}`senca.pl.regions` draws one
# section of a multi-section AnnData over its own image.

# %%
for name in ["s1", "s2"]:
    senca.pl.regions(
        adata,
        color="senca_region",
        library_id=name,
        library_key="section",
        title=f"section {name}",
        figsize=(5, 4.5),
    )
    plt.show()

# %% [markdown]
# Here we know the truth, so we can check it: the adjusted Rand index against the simulated regions, per section.

# %%
for name in ["s1", "s2"]:
    section = adata[adata.obs["section"] == name]
    simulated = (
        truth[name].loc[section.obs_names.str.removeprefix(f"{name}_")].to_numpy()
    )
    print(name, senca.metrics.region_scores(simulated, section.obs["senca_region"]))

# %%
shutil.rmtree(workdir)  # the simulated Space Ranger folders and the .zarr store
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
