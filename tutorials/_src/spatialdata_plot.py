# %% [markdown]
# # SpatialData in, spatialdata-plot out
#
# senca works on {class}`spatialdata.SpatialData` objects directly: the models' `setup_spatialdata` reads the
# table that annotates the spots, computes histology features from an image element when you name one, and the
# results go back into that table, where [spatialdata-plot](https://spatialdata.scverse.org/projects/plot) draws
# them over the image.
#
# The section here is simulated ({func}`senca.datasets.synthetic`: five regions, an H&E-like image at a quarter of
# full resolution), so the tutorial needs no download and runs in seconds. With your own data, start from
# `spatialdata_io.visium(...)` or `senca.io.read_visium(path, spatialdata=True)`.

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
from pathlib import Path

import matplotlib.pyplot as plt
import scvi
import spatialdata as sd
import spatialdata_plot  # noqa: F401  (registers the .pl accessor on SpatialData)
from matplotlib_inline.backend_inline import set_matplotlib_formats

import senca

plt.rcParams["figure.dpi"] = 100
set_matplotlib_formats("png")
scvi.settings.verbosity = logging.WARNING  # scvi-tools: no info messages
workdir = Path(tempfile.mkdtemp(prefix="senca_sdata_"))

# %% [markdown]
# ## A SpatialData object
#
# {func}`senca.io.to_spatialdata` turns the simulated AnnData into a SpatialData: the H&E-like image (an image
# element with a scale transformation to the spots' full-resolution pixels), one circle per spot, and the AnnData
# as the table annotating the circles. We drop the histology features the simulator provides, so that senca
# computes them from the image element.

# %%
adata = senca.datasets.synthetic(n_spots=800, n_regions=5, image=True, seed=0)
del adata.obsm["X_histology"]
sdata = senca.io.to_spatialdata(adata)
sdata.write(workdir / "section.zarr")
sdata = sd.read_zarr(workdir / "section.zarr")
sdata

# %% [markdown]
# ## SENCA on the SpatialData
#
# `image_key` names the image element: `setup_spatialdata` cuts a patch around every spot at its true size (the
# scale comes from the element's transformation), computes the `"stats"` features of
# {func}`senca.im.extract_features`, stores them in the table's `obsm["X_histology"]` and registers them. (An
# `obsm` key of the table is used as it is.)

# %%
senca.model.SENCA.setup_spatialdata(
    sdata, image_key="synthetic_hires_image", layer="counts"
)
table = sdata.tables["table"]
table.obsm["X_histology"].shape

# %% [markdown]
# `train()` chooses the number of attention passes (seconds). Results go into the table.

# %%
model = senca.model.SENCA(sdata)
model.train(seed=0)
table.obsm["X_senca"] = model.get_latent_representation()
senca.tl.regions(table, n_regions=5, use_rep="X_senca", seed=0)
table.obs["senca_discordance"] = model.get_discordance()
print(senca.metrics.region_scores(table.obs["region"], table.obs["senca_region"]))

# %% [markdown]
# ## Drawing with spatialdata-plot
#
# spatialdata-plot colours the circles by any column of the table that annotates them, over the image, in the
# coordinate system they share (`"synthetic"`).

# %%
fig, axes = plt.subplots(2, 1, figsize=(6, 8.5))
sdata.pl.render_images("synthetic_hires_image").pl.render_shapes(
    "synthetic", color="region"
).pl.show(ax=axes[0], title="simulated regions")
sdata.pl.render_images("synthetic_hires_image").pl.render_shapes(
    "synthetic", color="senca_region"
).pl.show(ax=axes[1], title="SENCA regions")
plt.show()

# %%
sdata.pl.render_shapes("synthetic", color="senca_discordance", cmap="viridis").pl.show(
    title="discordance", figsize=(4.5, 3.6)
)
plt.show()

# %% [markdown]
# The table is written back with the object, so the results travel with the image and the spots:

# %%
sdata.write(workdir / "section_senca.zarr")
back = sd.read_zarr(workdir / "section_senca.zarr")
back.tables["table"].obs[["region", "senca_region", "senca_discordance"]].head()
