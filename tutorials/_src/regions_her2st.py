# %% [markdown]
# # Regions in a HER2+ tumour
#
# This tutorial finds tissue regions in one section of the her2st HER2-positive breast cancer dataset
# (Andersson et al., *Nat Commun* 2021) with {class}`senca.model.SENCA`, from the spots' gene expression, their
# position and the H&E image around them, and compares the regions with the pathologist's annotation.
#
# Steps: load section A1 with its H&E image, describe the H&E around every spot with a feature vector, train SENCA,
# call regions from its embedding, score them against the pathologist (ARI), look at the neighbourhood
# cross-attention and the discordance map, find marker genes per region with scanpy, and check the training curves.
#
# Everything runs on a laptop CPU in a minute or two. The data are read from `$SENCA_DATA_DIR` when it is set,
# else downloaded once into a cache.

# %%
import logging
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
from matplotlib_inline.backend_inline import set_matplotlib_formats

import senca

warnings.filterwarnings("ignore")  # keep the notebook readable: scanpy/lightning FutureWarnings and tips
plt.rcParams["figure.dpi"] = 72  # modest inline figures, stored as JPEG (H&E compresses badly as PNG)
set_matplotlib_formats("jpeg")
FIGURES = Path("figures")
FIGURES.mkdir(exist_ok=True)
t_start = time.perf_counter()
sc.settings.verbosity = 1  # scanpy: errors and warnings only
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
print("senca", senca.__version__)

# %% [markdown]
# ## Load section A1
#
# {func}`senca.datasets.her2st` returns an AnnData in the scanpy/squidpy spatial layout: raw counts in `X` and
# `layers["counts"]`, spot centres in `obsm["spatial"]` (full-resolution pixels), the H&E image and its scale factors
# in `uns["spatial"]["A1"]`, and the pathologist's label of every spot in `obs["pathologist"]`.

# %%
adata = senca.datasets.her2st("A1", image="hires")
adata

# %%
adata.obs["pathologist"].value_counts()

# %% [markdown]
# SENCA models every gene it is given; for a Visium/ST section keep about 3,000 highly variable genes (selected on
# the raw counts). {func}`senca.pp.select_genes` does that and keeps each spot's total counts over *all* genes in
# `obs["library_size"]`, so that the model normalises by the whole library. The counts stay raw.

# %%
adata = senca.pp.select_genes(adata, n_top_genes=3000)
adata.shape

# %% [markdown]
# ## Histology features
#
# {func}`senca.im.extract_features` crops a patch of the H&E around every spot at its true size (one and two spot
# diameters) and describes it with colour, stain (haematoxylin/eosin), texture and nuclear-density statistics. No
# deep-learning model is needed; `method="cnn"`, a timm backbone or any callable can replace it (see the
# *Your own data* tutorial).

# %%
senca.im.extract_features(adata, method="stats", progress=False)
adata.obsm["X_histology"].shape

# %% [markdown]
# ## Train SENCA
#
# `setup_anndata` registers the counts, the histology features and the coordinates, and builds each spot's
# neighbourhood (its nearest spots, itself included). The model and its training use their defaults; the number of
# epochs is chosen from the data size and training stops early when the validation loss stops improving. `seed`
# makes the run reproducible.

# %%
senca.model.SENCA.setup_anndata(
    adata, layer="counts", image_key="X_histology", spatial_key="spatial", library_key="library_size"
)
model = senca.model.SENCA(adata)
model

# %%
t0 = time.perf_counter()
model.train(seed=0, enable_progress_bar=False)
print(f"trained {len(model.history['elbo_train'])} epochs in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## Regions
#
# The embedding goes to `obsm["X_senca"]`; {func}`senca.tl.regions` clusters it with a Gaussian mixture (one shared
# covariance, like mclust's EEE model) and smooths the labels over each spot's neighbourhood. We ask for as many
# regions as the pathologist annotated (leaving out "undetermined"). {func}`senca.pl.regions` draws them over the
# H&E beside the pathologist's annotation; keyword arguments go to {func}`squidpy.pl.spatial_scatter`.

# %%
adata.obsm["X_senca"] = model.get_latent_representation()
n_regions = adata.obs["pathologist"].astype(str).replace("undetermined", np.nan).nunique()
senca.tl.regions(adata, n_regions=n_regions, use_rep="X_senca", key_added="senca_region", seed=0)
adata.obs["senca_region"].value_counts()

# %%
x, y = adata.obsm["spatial"].T  # full-resolution pixels
pad = adata.uns["spatial"]["A1"]["scalefactors"]["spot_diameter_fullres"]
crop = (x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad)  # frame the spots (squidpy's crop_coord)
fig = senca.pl.regions(
    adata,
    color="senca_region",
    groundtruth="pathologist",
    title=["SENCA", "pathologist"],
    figsize=(4.5, 4.5),
    crop_coord=crop,
    wspace=0.55,
)
fig.savefig(FIGURES / "a1_regions.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# How the regions overlap the pathologist's classes, and the agreement scores (adjusted Rand index and normalised
# mutual information, computed on the spots the pathologist did not mark "undetermined"):

# %%
pd.crosstab(adata.obs["senca_region"], adata.obs["pathologist"])

# %%
scores = senca.metrics.region_scores(adata.obs["pathologist"], adata.obs["senca_region"])
print(f"ARI = {scores['ari']:.3f}, NMI = {scores['nmi']:.3f}")
scores

# %% [markdown]
# ## Where the model looks: neighbourhood cross-attention
#
# Each spot attends over its neighbourhood. `get_attention()` returns the weights, one row per spot and one column
# per neighbour (column 0 is the spot itself). {func}`senca.pl.attention` colours every spot by how evenly it spreads
# its attention (normalised entropy: 1 = evenly over its neighbours) and draws a segment to every neighbour it
# attends to more than uniformly.

# %%
adata.obsm["senca_attention"] = model.get_attention()
fig = senca.pl.attention(adata, "senca_attention", stat="entropy", figsize=(6, 6))
plt.show()

# %% [markdown]
# ## Discordance: looks alike, expresses differently
#
# {func}`senca.tl.discordance` scores every spot by how far its expression is from that of the neighbours that
# look alike in H&E. High values mark spots that look like their surroundings but express differently: candidates
# for a closer look, such as a uniform-looking area whose transcriptome changes.

# %%
senca.tl.discordance(adata, model)
fig = senca.pl.regions(
    adata,
    color="senca_discordance",
    groundtruth="pathologist",
    cmap="viridis",
    title=["discordance", "pathologist"],
    figsize=(4.5, 4.5),
    crop_coord=crop,
    wspace=0.55,
)
plt.show()

# %%
adata.obs.groupby("pathologist", observed=True)["senca_discordance"].median().sort_values()

# %% [markdown]
# ## Marker genes per region
#
# The regions are ordinary categorical annotations, so scanpy works on them directly. Rank genes on
# log-normalised counts (a copy: `X` and the counts layer stay raw).

# %%
lognorm = adata.copy()
lognorm.X = lognorm.layers["counts"].copy()
sc.pp.normalize_total(lognorm, target_sum=1e4)
sc.pp.log1p(lognorm)
sc.tl.rank_genes_groups(lognorm, groupby="senca_region", method="wilcoxon")
pd.DataFrame(lognorm.uns["rank_genes_groups"]["names"]).head(8)  # top 8 genes of each region

# %%
sc.pl.rank_genes_groups_dotplot(lognorm, n_genes=4, dendrogram=False, show=False)
plt.show()

# %% [markdown]
# ## Training curves
#
# {func}`senca.pl.history` draws the logged quantities, training and validation together. We leave out the
# per-step values and the terms that stay at zero (scvi-tools' training plan logs KL terms, which SENCA's
# deterministic encoder does not have).

# %%
keys = [k for k, v in model.history.items() if not k.endswith("_step") and np.nanmax(np.abs(v.to_numpy())) > 0]
fig = senca.pl.history(model, keys=keys)
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
