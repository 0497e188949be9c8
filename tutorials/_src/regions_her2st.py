# %% [markdown]
# # Regions in a HER2+ tumour
#
# This tutorial finds tissue regions in one section of the her2st HER2-positive breast cancer dataset
# (Andersson et al., *Nat Commun* 2021) with {class}`senca.model.SENCA`, from the spots' gene expression, their
# position and the H&E image around them, and compares the regions with the pathologist's annotation.
#
# Steps: load section A1 with its H&E image, describe the H&E around every spot with a feature vector, create SENCA
# and let `train()` choose how many attention passes the data support, call regions on the embedding, score them
# against the pathologist (ARI), look at the attention weights, find marker genes per region with scanpy, map the
# discordance, and try the optional fine-tuning.
#
# Everything runs on a laptop CPU in about a minute. The data are read from `$SENCA_DATA_DIR` when it is set, else
# downloaded once into a cache.

# %%
import warnings

# Known noise, silenced one by one. Every other warning below is what you will see.
# tqdm: the kernel that ran this notebook has no Jupyter widgets
warnings.filterwarnings("ignore", message="IProgress not found")
# squidpy's docstring templates, when it is imported
warnings.filterwarnings("ignore", message=".* is not a valid key!")
# zarr's notice about a future default, once per array written
warnings.filterwarnings("ignore", message="zarr v3 autosharding")
# Lightning's tip about DataLoader workers: senca gathers neighbourhoods in-process
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
from matplotlib_inline.backend_inline import set_matplotlib_formats

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
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
# ## Set up SENCA
#
# `setup_anndata` registers the counts, the histology features and the coordinates, and builds each spot's
# neighbourhood (its nearest spots, itself included). Creating the model fits, without any gradient step, the
# network's initial state: the principal axes of the log-normalised counts (its gene head), the principal axes of
# the histology features (its image head) and the bandwidth of its attention kernel. In that state the network *is*
# a parameter-free estimator: each spot's expression mixed twice with its neighbours', weighted by a Gaussian kernel
# on how alike they look in H&E. It is usable as it is.

# %%
senca.model.SENCA.setup_anndata(
    adata,
    layer="counts",
    image_key="X_histology",
    spatial_key="spatial",
    library_key="library_size",
)
model = senca.model.SENCA(adata)
model

# %% [markdown]
# ## Train: how many attention passes?
#
# Each attention pass mixes a spot with its neighbours once more: too few passes leave measurement noise in, too
# many blur regions together. `model.train()` chooses the number from the data, without labels: it splits every
# spot's counts at random into two halves with independent noise, mixes one half with 1 to 8 passes and keeps the
# number whose result best predicts the other half. `model.selection_` holds the choice and the loss curve.

# %%
t0 = time.perf_counter()
model.train(seed=0)
print(
    f"train() chose {model.selection_['passes']} attention passes",
    f"in {time.perf_counter() - t0:.1f} s",
)
fig, ax = plt.subplots(figsize=(4, 3))
passes = np.arange(1, len(model.selection_["loss"]) + 1)
ax.plot(passes, model.selection_["loss"], marker="o")
ax.set_xlabel("attention passes")
ax.set_ylabel("held-out loss (count splits)")
plt.show()

# %% [markdown]
# The trained network is what every output uses from now on (`representation="network"`, the default). Its initial
# state, the estimator, stays available as `representation="estimator"`: on this section, at full depth, both make
# the same number of passes, so the embeddings agree.

# %%
np.abs(
    model.get_latent_representation()
    - model.get_latent_representation(representation="estimator")
).max()

# %% [markdown]
# ## Regions
#
# The embedding, `model.get_latent_representation()`, mixes each spot's expression (50 principal components) with
# its neighbours', weighted by how alike they look in H&E, and appends the histology features mixed the same way.
# The embedding goes to
# `obsm["X_senca"]`; {func}`senca.tl.regions` clusters it with a Gaussian mixture (one shared
# covariance, like mclust's EEE model) and smooths the labels over each spot's neighbourhood. We ask for as many
# regions as the pathologist annotated (leaving out "undetermined"). {func}`senca.pl.regions` draws them over the
# H&E beside the pathologist's annotation; keyword arguments go to {func}`squidpy.pl.spatial_scatter`.

# %%
adata.obsm["X_senca"] = model.get_latent_representation()
n_regions = (
    adata.obs["pathologist"].astype(str).replace("undetermined", np.nan).nunique()
)
senca.tl.regions(
    adata, n_regions=n_regions, use_rep="X_senca", key_added="senca_region", seed=0
)
adata.obs["senca_region"].value_counts()

# %%
x, y = adata.obsm["spatial"].T  # full-resolution pixels
pad = adata.uns["spatial"]["A1"]["scalefactors"]["spot_diameter_fullres"]
crop = (
    x.min() - pad,
    y.min() - pad,
    x.max() + pad,
    y.max() + pad,
)  # frame the spots (squidpy's crop_coord)
fig = senca.pl.regions(
    adata,
    color="senca_region",
    groundtruth="pathologist",
    title=["SENCA", "pathologist"],
    figsize=(4.5, 4.5),
    crop_coord=crop,
    ncols=1,  # one panel per row: legends stay readable at the page's width
)
fig.savefig(FIGURES / "a1_regions.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# How the regions overlap the pathologist's classes, and the agreement scores (adjusted Rand index and normalised
# mutual information, computed on the spots the pathologist did not mark "undetermined"):

# %%
pd.crosstab(adata.obs["senca_region"], adata.obs["pathologist"])

# %%
scores = senca.metrics.region_scores(
    adata.obs["pathologist"], adata.obs["senca_region"]
)
print(f"ARI = {scores['ari']:.3f}, NMI = {scores['nmi']:.3f}")
scores

# %% [markdown]
# ## The attention that shapes the embedding
#
# Each spot mixes in its neighbours with weights set by how alike they look in H&E. `get_attention()` returns the
# weights of the first attention layer, one row per spot and one column per neighbour (column 0 is the spot itself,
# which keeps 1/k). {func}`senca.pl.attention` colours every spot by how evenly it spreads its weight (normalised
# entropy: 1 = evenly over its neighbours) and draws a segment to every neighbour it weights more than uniformly:
# low values mark spots at a boundary visible on the H&E.

# %%
adata.obsm["senca_attention"] = model.get_attention()
fig = senca.pl.attention(adata, "senca_attention", stat="entropy", figsize=(6, 6))
plt.show()

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
pd.DataFrame(lognorm.uns["rank_genes_groups"]["names"]).head(
    8
)  # top 8 genes of each region

# %%
sc.pl.rank_genes_groups_dotplot(lognorm, n_genes=4, dendrogram=False, show=False)
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
    ncols=1,  # one panel per row: legends stay readable at the page's width
)
plt.show()

# %%
adata.obs.groupby("pathologist", observed=True)[
    "senca_discordance"
].median().sort_values()

# %% [markdown]
# ## Optional: fine-tuning
#
# `train(max_epochs=N)` goes one step further: after choosing the passes, it fine-tunes the attention (learnable
# query/key maps on the H&E tokens, an expression-similarity term and the kernel's temperature, all starting where
# they leave the estimator unchanged) with Lightning, so that the network's mix of one count half predicts the
# estimator's mix of the other. It keeps the result only if that loss, on count splits held out from the
# fine-tuning, is lower than before; otherwise the network returns to its state after choosing the passes.
# `model.finetune_` says what happened. It is off by default: whether it improves the regions by more than the
# noise between seeds is measured over several seeds and sections by `python -m benchmarks.senca_train` (see the
# *Benchmarks* page of the documentation); one run on one section, as here, cannot tell.

# %%
t0 = time.perf_counter()
model.train(seed=0, max_epochs=20, enable_progress_bar=False)
print(f"trained in {time.perf_counter() - t0:.1f} s;", model.finetune_)

# %%
adata.obsm["X_senca_tuned"] = model.get_latent_representation()
senca.tl.regions(
    adata,
    n_regions=n_regions,
    use_rep="X_senca_tuned",
    key_added="tuned_region",
    seed=0,
)
tuned = senca.metrics.region_scores(adata.obs["pathologist"], adata.obs["tuned_region"])
print(
    f"ARI after fine-tuning: {tuned['ari']:.3f}",
    f"(before: {scores['ari']:.3f})",
)

# %% [markdown]
# {func}`senca.pl.history` draws the fine-tuning's loss curves, training and validation together. We leave out the
# terms that stay at zero (scvi-tools' training plan logs KL terms, which SENCA does not have).

# %%
keys = [
    k
    for k, v in model.history.items()
    if not k.endswith("_step") and np.nanmax(np.abs(v.to_numpy())) > 0
]
fig = senca.pl.history(model, keys=keys)
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
