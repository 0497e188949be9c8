# %% [markdown]
# # Annotating a new section in the pathologist's vocabulary
#
# A pathologist annotated some sections; you want the others annotated the same way. Given a label column with
# three or more classes, {class}`senca.model.SpaCRD` learns all of them and labels every spot of a new section with
# one of them, with class probabilities. This tutorial trains it on three sections of the her2st HER2-positive
# breast cancer dataset, from three patients (B1, C1, D1), with the pathologist's annotation, and annotates a
# section from a fourth patient (A1), whose own annotation is used only to evaluate the result. A1 is the one
# annotated her2st section with a public H&E image, so its labels can be drawn over the tissue.
#
# The sources carry no H&E (their images are not published with their labels), so this model uses expression and
# space only. Spots the pathologist marked *undetermined* are not trained on, and not scored.

# %%
import warnings

# Known noise, silenced one by one. Every other warning below is what you will see.
# tqdm: the kernel that ran this notebook has no Jupyter widgets
warnings.filterwarnings("ignore", message="IProgress not found")
# squidpy's docstring templates, when it is imported
warnings.filterwarnings("ignore", message=".* is not a valid key!")
# Lightning's tip about DataLoader workers: senca gathers neighbourhoods in-process
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scvi
from matplotlib_inline.backend_inline import set_matplotlib_formats
from sklearn.metrics import f1_score

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
FIGURES = Path("figures")
FIGURES.mkdir(exist_ok=True)
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
t_start = time.perf_counter()

# %% [markdown]
# ## Source sections: B1, C1, D1
#
# {func}`senca.datasets.her2st` reads each section (raw counts, coordinates, the pathologist's labels in
# `obs["pathologist"]`), and {func}`senca.pp.concat_sections` keeps the genes shared by all of them and records each
# spot's section. Not every class is in every section, and some of A1's are in none: the sources hold no
# *cancer in situ*.

# %%
sources = {name: senca.datasets.her2st(name, image=None) for name in ["B1", "C1", "D1"]}
source = senca.pp.concat_sections(sources)
pd.crosstab(source.obs["pathologist"], source.obs["section"], margins=True)

# %% [markdown]
# ## Train
#
# The label column has more than two classes, so `setup_anndata` sets up a multi-class model: one prior mean per
# class in SpaCRD's VAE, one logit per class. *undetermined* spots (`unlabeled_category=`, the default) and missing
# labels take no part in the classification loss; their expression still informs their neighbours. The vocabulary
# is the classes of the labelled source spots, `detector.classes`.

# %%
senca.model.SpaCRD.setup_anndata(
    source, layer="counts", labels_key="pathologist", sample_key="section"
)
detector = senca.model.SpaCRD(source)
t0 = time.perf_counter()
detector.train(seed=0, enable_progress_bar=False)
print(f"trained in {time.perf_counter() - t0:.0f} s on {source.n_obs} spots")
print("vocabulary:", detector.classes)

# %% [markdown]
# ## Annotate A1
#
# `predict` writes the label of every spot, `obs["spacrd_label"]` (categorical, the source's vocabulary), its
# probability `obs["spacrd_confidence"]`, and every class's probability, `obsm["spacrd_proba"]` (a DataFrame). It
# adapts to the new section without its labels first: each class's most typical spots in A1 (by the network's
# evidence for that class, standardised over the section) become pseudo-labels for a logistic regression on A1's
# own genes, whose class probabilities are then pooled over neighbourhoods. We keep A1's annotation aside.

# %%
target = senca.datasets.her2st("A1", image="hires")
truth = target.obs["pathologist"].astype(str).to_numpy()
detector.predict(target)
target.obsm["spacrd_proba"].round(2).head()

# %% [markdown]
# ## Against the pathologist
#
# The adjusted Rand index (ARI, 0 for a random labelling, 1 for the pathologist's partition) and the macro-F1
# (the mean over A1's classes of each class's F1), on the spots the pathologist did not mark *undetermined*.

# %%
keep = truth != "undetermined"
labels = target.obs["spacrd_label"].astype(str).to_numpy()
ari = senca.metrics.region_scores(truth, labels)["ari"]
macro_f1 = f1_score(truth[keep], labels[keep], labels=sorted(set(truth[keep])), average="macro")
print(f"ARI {ari:.3f}, macro-F1 {macro_f1:.3f} on {keep.sum()} spots")

# %% [markdown]
# What did the adaptation to A1 add? `adapt=None, n_smooth=0` gives the trained networks' own labels (under another
# `key_added`, so nothing is overwritten).

# %%
detector.predict(target, key_added="network_only", adapt=None, n_smooth=0)
own = target.obs["network_only_label"].astype(str).to_numpy()
own_f1 = f1_score(truth[keep], own[keep], labels=sorted(set(truth[keep])), average="macro")
print(
    f"networks alone: ARI {senca.metrics.region_scores(truth, own)['ari']:.3f}, "
    f"macro-F1 {own_f1:.3f}"
)

# %% [markdown]
# The confusion matrix: rows are the pathologist's classes, columns SpaCRD's (counts of spots).

# %%
confusion = pd.crosstab(
    pd.Series(truth[keep], name="pathologist"),
    pd.Series(labels[keep], name="SpaCRD"),
)
confusion

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.6))
shares = confusion.div(confusion.sum(1), axis=0)
im = ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(shares.shape[1]), shares.columns, rotation=30, ha="right")
ax.set_yticks(range(shares.shape[0]), shares.index)
for i in range(shares.shape[0]):
    for j in range(shares.shape[1]):
        ax.text(j, i, confusion.iat[i, j], ha="center", va="center", fontsize=8)
ax.set(xlabel="SpaCRD", ylabel="pathologist", title="A1: spots per class (colour: share of the row)")
fig.colorbar(im, ax=ax, fraction=0.04)
fig.savefig(FIGURES / "a1_confusion.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## The labels over the H&E
#
# {func}`senca.pl.regions` draws each spot at its true size over A1's H&E, SpaCRD's labels beside the
# pathologist's. One colour per class in both panels.

# %%
names = sorted(set(detector.classes) | set(truth))
colours = dict(zip(names, plt.get_cmap("tab10").colors, strict=False))
colours["undetermined"] = (0.75, 0.75, 0.75)
for key in ("spacrd_label", "pathologist"):
    cats = [c for c in names if c in set(target.obs[key].astype(str))]
    target.obs[key] = pd.Categorical(target.obs[key].astype(str), categories=cats)
    target.uns[f"{key}_colors"] = [colours[c] for c in cats]
x, y = target.obsm["spatial"].T
pad = target.uns["spatial"]["A1"]["scalefactors"]["spot_diameter_fullres"]
fig = senca.pl.regions(
    target,
    color="spacrd_label",
    groundtruth="pathologist",
    title=["SpaCRD (trained on B1, C1, D1)", "pathologist"],
    figsize=(2.8, 2.8),
    crop_coord=(x.min() - pad, y.min() - pad, x.max() + pad, y.max() + pad),  # frame the spots
    wspace=0.7,  # room for the first panel's legend
)
fig.savefig(FIGURES / "a1_pathology_labels.png", dpi=100, bbox_inches="tight")
plt.show()

# %% [markdown]
# ## A cancer score from the classes
#
# The probability of cancer is the sum of the cancer classes' probabilities. Its area under the ROC curve against
# the pathologist's cancer (invasive or in situ; every spot) says how well the classes rank cancer, beside the
# binary model of the tutorial *Detecting cancer in a new section*.

# %%
cancer_classes = [c for c in detector.classes if c in ("invasive cancer", "cancer in situ")]
cancer_score = target.obsm["spacrd_proba"][cancer_classes].sum(1)
is_cancer = np.isin(truth, ["invasive cancer", "cancer in situ"])
auc = senca.metrics.detection_scores(is_cancer, cancer_score)["auc"]
print(f"cancer classes {cancer_classes}: AUC {auc:.3f}")

# %% [markdown]
# ## What it gets wrong, and why
#
# Read the confusion matrix with the sources in mind. A1's 21 *cancer in situ* spots cannot be labelled so: no
# source section has that class, and SpaCRD labels only in the vocabulary it was trained on. And A1 is mostly
# invasive cancer, more than any source (below): genes are standardised within each section (which removes batch
# effects between sections), so in A1 the typical spot is cancer, unlike in most sources, and every class's evidence
# shifts. The adaptation to A1 corrects part of that shift. Where the classes of a new section are in the sources
# and its composition is like theirs, expect more; the benchmarks page measures the four her2st patients in turn
# (*SpaCRD beyond two classes*, `python -m benchmarks.multiclass`), against a logistic regression with the same
# steps and against SENCA's unsupervised regions.

# %%
share = {
    name: float((a.obs["pathologist"] == "invasive cancer").mean())
    for name, a in {**sources, "A1": target}.items()
}
print("share of invasive cancer:", {k: f"{v:.0%}" for k, v in share.items()})

# %%
print(f"notebook ran in {time.perf_counter() - t_start:.0f} s")
