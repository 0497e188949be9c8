# %% [markdown]
# # Detecting cancer in a new section with SpaCRD
#
# {class}`senca.model.SpaCRD` learns what cancer looks like in spatial transcriptomics from sections a pathologist
# has annotated, and scores every spot of a new, unannotated section. This tutorial trains it on three sections of
# the her2st HER2-positive breast cancer dataset, from three patients (B1, C1 and D1), and scores a section from a
# fourth patient (A1), whose annotation is used only to evaluate the result.
#
# The labels are binary: cancer = the pathologist's *invasive cancer* or *cancer in situ*, everything else
# (connective and adipose tissue, immune infiltrate, breast glands, undetermined) = not cancer.
#
# The her2st H&E images of B1, C1 and D1 are not published with their labels, so this model uses expression and
# space only. With images for every section, add histology features (see *Regions in a HER2+ tumour*) and pass
# `image_key="X_histology"` to `setup_anndata`.

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
import pandas as pd
import scvi
from matplotlib_inline.backend_inline import set_matplotlib_formats
from sklearn.metrics import roc_curve

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
FIGURES = Path("figures")
FIGURES.mkdir(exist_ok=True)
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
t_start = time.perf_counter()
CANCER = ["invasive cancer", "cancer in situ"]

# %% [markdown]
# ## Source sections: B1, C1, D1
#
# Each section is read with {func}`senca.datasets.her2st` (raw counts, coordinates, pathologist labels) and gets a
# boolean `cancer` column. {func}`senca.pp.concat_sections` keeps the genes shared by all sections and records each
# spot's section in `obs["section"]`.

# %%
sources = {}
for name in ["B1", "C1", "D1"]:
    a = senca.datasets.her2st(name, image=None)
    a.obs["cancer"] = a.obs["pathologist"].isin(CANCER)
    sources[name] = a
source = senca.pp.concat_sections(sources)
source

# %%
pd.crosstab(source.obs["section"], source.obs["cancer"], margins=True)

# %% [markdown]
# ## Train
#
# `setup_anndata` registers the counts, the labels and the section of every spot (neighbourhoods never cross
# sections, and genes are standardised within each section, which removes per-section batch shifts). Model and
# training use their defaults: an ensemble of three networks (`n_members=3`), each from its own initialisation,
# whose logits are averaged; `seed` makes the run reproducible.

# %%
senca.model.SpaCRD.setup_anndata(
    source, layer="counts", labels_key="cancer", sample_key="section"
)
detector = senca.model.SpaCRD(source)
t0 = time.perf_counter()
detector.train(seed=0, enable_progress_bar=False)
print(
    f"trained in {time.perf_counter() - t0:.0f} s "
    f"on {source.n_obs} spots, {len(detector.genes)} genes"
)

# %% [markdown]
# ## Score the new section, A1
#
# `predict` aligns the target's genes to the model's, then writes `obs["spacrd_score"]` (in [0, 1]) and the
# binary call `obs["spacrd_cancer"]`. Before scoring, it adapts to the new section without its labels: the 10 %
# of spots the networks are most sure are cancer, and the 10 % they are most sure are not (after pooling over
# neighbourhoods), become pseudo-labels for a logistic regression on A1's own genes, which picks up A1's own
# cancer programme; its logits are pooled over each spot's neighbourhood. The call is where that logistic
# regression gives even odds (its pseudo-labels are balanced), so the fraction of spots called follows the data,
# not a fixed prevalence: it never looks at labels either. We load A1 with its H&E image, for the plots, and keep
# its labels aside in `y_true`.

# %%
target = senca.datasets.her2st("A1", image="hires")
y_true = target.obs["pathologist"].isin(CANCER).to_numpy()
detector.predict(target)
target.obs[["spacrd_score", "spacrd_cancer"]].head()

# %% [markdown]
# ## How good is it?
#
# {func}`senca.metrics.detection_scores` gives the area under the ROC curve (AUC), the average precision (AP) and
# the F1 score of the binary call (passed as `call=`). Read the AP against its base rate: a score that ranks spots
# at random has an AP equal to the share of cancer spots, which in A1 is high.

# %%
scores = senca.metrics.detection_scores(
    y_true, target.obs["spacrd_score"], call=target.obs["spacrd_cancer"]
)
print(
    f"AUC = {scores['auc']:.3f}, "
    f"AP = {scores['ap']:.3f} (a random score: {y_true.mean():.3f}), "
    f"F1 = {scores['f1']:.3f} "
    f"({target.obs['spacrd_cancer'].mean():.0%} of A1's spots called cancer; "
    f"{y_true.mean():.0%} are)"
)
scores

# %% [markdown]
# What did the adaptation to A1 add? `n_smooth=0, adapt=None` gives the trained networks' own scores
# (written under another `key_added`, so nothing is overwritten).

# %%
detector.predict(target, key_added="network_only", n_smooth=0, adapt=None)
network_only = senca.metrics.detection_scores(y_true, target.obs["network_only_score"])
print(
    f"AUC without adapting to A1: {network_only['auc']:.3f}; with: {scores['auc']:.3f}"
)

# %%
fpr, tpr, _ = roc_curve(y_true, target.obs["spacrd_score"])
called = target.obs["spacrd_cancer"].to_numpy()
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.plot(fpr, tpr, label=f"SpaCRD (AUC {scores['auc']:.2f})")
ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
ax.scatter(
    [(called & ~y_true).sum() / (~y_true).sum()],
    [(called & y_true).sum() / y_true.sum()],
    c="k",
    zorder=3,
    label="label-free call",
)
ax.set(
    xlabel="false positive rate",
    ylabel="true positive rate",
    title="A1, trained on B1, C1, D1",
)
ax.legend(loc="lower right")
fig.savefig(FIGURES / "a1_roc.png", dpi=110, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## The score over the H&E
#
# {func}`senca.pl.cancer_score` colours every spot by its score, draws the boundary of the called cancer region
# (solid) and, given reference labels, the pathologist's boundary (dashed).

# %%
target.obs["pathologist_cancer"] = y_true
fig = senca.pl.cancer_score(target, truth_key="pathologist_cancer", figsize=(6, 6))
fig.savefig(FIGURES / "a1_cancer_score.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# Which spots does the call get wrong? The calls against the pathologist's classes:

# %%
pd.crosstab(target.obs["pathologist"], target.obs["spacrd_cancer"], margins=True)

# %%
in_situ = (target.obs["pathologist"] == "cancer in situ").to_numpy()
print(
    "'cancer in situ' spots of A1 called cancer:",
    f"{called[in_situ].sum()} of {in_situ.sum()}",
)
print(
    "'cancer in situ' spots in the sources:",
    int((source.obs["pathologist"] == "cancer in situ").sum()),
)

# %% [markdown]
# The detector learned cancer from B1, C1 and D1, whose cancer is all invasive: the sources hold no *cancer in situ*
# spot. A1's in-situ lesions (the ducts on the left of the section) do not look like what it learned, and the call
# counts them as non-cancer. Train on sections that contain the kinds of cancer you want found.

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
