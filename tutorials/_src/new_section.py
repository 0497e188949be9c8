# %% [markdown]
# # Apply a saved model to a new section
#
# A SENCA model set up on a cohort of sections keeps everything it needs to embed a section it has never seen: the
# genes, the principal axes, the kernel statistics and the Harmony reference that integrates the sections. Saved to
# disk with the cohort's regions, it gives a new section the cohort's region labels later, in another session,
# without refitting anything.
#
# This tutorial builds a cohort of five serial sections of one her2st tumour (A2 to A6, patient A; none of them
# annotated), calls five regions on it, saves the model and the cohort, and then, as a new session would, loads them
# and assigns regions to a new section of the same tumour, A1, whose pathologist annotation is used only to score
# the result. It runs in
# about a minute on a laptop CPU: `train()` only chooses the number of attention passes, in seconds.

# %%
import warnings

# Known noise, silenced one by one. Every other warning below is what you will see.
# tqdm: the kernel that ran this notebook has no Jupyter widgets
warnings.filterwarnings("ignore", message="IProgress not found")
# squidpy's docstring templates, when it is imported
warnings.filterwarnings("ignore", message=".* is not a valid key!")
# zarr's notice about a future default, once per array written
warnings.filterwarnings("ignore", message="zarr v3 autosharding")

import logging
import tempfile
import time
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scvi
from matplotlib_inline.backend_inline import set_matplotlib_formats

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
t_start = time.perf_counter()
workdir = Path(tempfile.mkdtemp(prefix="senca_new_section_"))

# %% [markdown]
# ## The cohort
#
# {func}`senca.pp.concat_sections` keeps the genes all sections share and records each spot's section in
# `obs["section"]`; {func}`senca.pp.select_genes` keeps 3,000 highly variable genes (chosen per section) and each
# spot's total counts over all genes in `obs["library_size"]`.

# %%
sections = {
    name: senca.datasets.her2st(name, image=None)
    for name in ["A2", "A3", "A4", "A5", "A6"]
}
cohort = senca.pp.concat_sections(sections)
cohort = senca.pp.select_genes(cohort, n_top_genes=3000, sample_key="section")
cohort.obs["section"].value_counts()

# %% [markdown]
# With `sample_key` and two or more sections, the model corrects the expression components for the section with
# Harmony before the neighbourhood attention (`integrate=None` switches it on) and keeps Harmony's reference.
# `train()` chooses the number of attention passes on all five sections together (neighbourhoods never cross
# sections). One region caller on the joint embedding then gives labels that mean the same in every section.

# %%
senca.model.SENCA.setup_anndata(
    cohort, layer="counts", sample_key="section", library_key="library_size"
)
model = senca.model.SENCA(cohort)
model.train(seed=0)
print(f"{model.selection_['passes']} attention passes")
cohort.obsm["X_senca"] = model.get_latent_representation()
senca.tl.regions(cohort, n_regions=5, use_rep="X_senca", sample_key="section", seed=0)
pd.crosstab(cohort.obs["section"], cohort.obs["senca_region"])

# %% [markdown]
# ## Save
#
# `model.save` writes the model (the fitted axes, the number of attention passes `train()` chose, Harmony's
# reference, the registry with the genes).
# The cohort AnnData carries the regions and the fitted region caller (`uns["senca_region"]`), which
# {func}`senca.tl.assign_regions` reuses; write it too.

# %%
model.save(workdir / "senca_cohort_model", overwrite=True)
cohort.write_h5ad(workdir / "cohort.h5ad")
sorted(p.name for p in workdir.rglob("*") if p.is_file())

# %% [markdown]
# ## Later: load and apply to A1
#
# Load the cohort and the model (`SENCA.load` needs the AnnData the model was set up on), then read the new section.
# The model reads genes by position: the new section must have exactly the model's genes, in the model's order.
# Keep its total counts over all of its genes in `obs["library_size"]` first, as for the cohort; a gene of the
# model that the new section did not measure gets zero counts (as scvi-tools' `prepare_query_anndata` does).

# %%
reference = ad.read_h5ad(workdir / "cohort.h5ad")
model = senca.model.SENCA.load(workdir / "senca_cohort_model", adata=reference)

a1 = senca.datasets.her2st("A1", image="hires")
a1.obs["library_size"] = np.asarray(a1.layers["counts"].sum(axis=1)).ravel()
a1.obs["section"] = "A1"
position = a1.var_names.get_indexer(reference.var_names)  # -1: not measured in A1
print(
    f"{(position < 0).sum()} of the model's {reference.n_vars} genes",
    "are not measured in A1: zero counts",
)
counts = sp.hstack(
    [sp.csr_matrix(a1.layers["counts"]), sp.csr_matrix((a1.n_obs, 1))]
).tocsr()
counts = counts[
    :, np.where(position >= 0, position, a1.n_vars)
]  # the extra all-zero column for missing genes
new = ad.AnnData(
    X=counts,
    obs=a1.obs,
    var=pd.DataFrame(index=reference.var_names),
    obsm=dict(a1.obsm),
    uns=dict(a1.uns),
)
new.layers["counts"] = counts.copy()
new.obsm["X_senca"] = model.get_latent_representation(new)
senca.tl.assign_regions(new, reference)
new.obs["senca_region"].value_counts()

# %% [markdown]
# Region labels are the cohort's: region `"2"` in A1 is region `"2"` in A4. How well do they match A1's
# pathologist annotation ("undetermined" spots left out)?

# %%
scores = senca.metrics.region_scores(new.obs["pathologist"], new.obs["senca_region"])
print(
    "A1, assigned by the saved cohort model:",
    f"ARI = {scores['ari']:.3f}, NMI = {scores['nmi']:.3f}",
)
pd.crosstab(new.obs["senca_region"], new.obs["pathologist"])

# %% [markdown]
# Read the table by rows: the in-situ ducts of A1 get a region of their own (4), while the invasive cancer, most
# of the section, falls into two of the cohort's regions (0 and 1), a split the pathologist does not make. That
# split, not a failure of the mapping, is what keeps the ARI low: each cohort region means the same in A1 as in
# A2 to A6.

# %%
fig = senca.pl.regions(
    new,
    color="senca_region",
    groundtruth="pathologist",
    title=["cohort regions, assigned", "pathologist"],
    figsize=(4.5, 4.5),
    ncols=1,  # one panel per row: legends stay readable at the page's width
)
plt.show()

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
