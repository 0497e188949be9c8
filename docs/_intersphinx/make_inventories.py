"""Write the small intersphinx inventories used when the projects' own ``objects.inv`` cannot be fetched.

An offline documentation build (no internet, as on the developers' machines and CI) cannot download the inventories
of anndata, scanpy, squidpy, scvi-tools, spatialdata, numpy, pandas or Python. ``docs/conf.py`` tries each project's
own inventory first and falls back to the file written here, which lists only the names these docs link to (the
types in signatures and the functions named in the text), with the URL of each in that project's stable docs.
Every name is imported before it is written, so a renamed or removed object fails here instead of becoming a dead
link. Run it after adding a link to another project (``python docs/_intersphinx/make_inventories.py``).
"""

from __future__ import annotations

import importlib
import zlib
from pathlib import Path

HERE = Path(__file__).parent

# project -> (version shown, {role: [names]}, function name -> page relative to the docs root)
PROJECTS = {
    "anndata": (
        "stable",
        {"py:class": ["anndata.AnnData"], "py:function": ["anndata.read_h5ad", "anndata.concat"]},
        lambda name: f"generated/{name}.html#{name}",
    ),
    "scanpy": (
        "stable",
        {
            "py:function": [
                "scanpy.pp.highly_variable_genes",
                "scanpy.pp.normalize_total",
                "scanpy.pp.log1p",
                "scanpy.pp.pca",
                "scanpy.pp.neighbors",
                "scanpy.tl.leiden",
                "scanpy.tl.rank_genes_groups",
                "scanpy.pl.rank_genes_groups_dotplot",
                "scanpy.pl.spatial",
            ]
        },
        lambda name: f"generated/{name}.html#{name}",
    ),
    "squidpy": (
        "stable",
        {"py:function": ["squidpy.pl.spatial_scatter", "squidpy.gr.spatial_neighbors", "squidpy.read.visium"]},
        lambda name: f"api/{name}.html#{name}",
    ),
    "scvi": (
        "stable",
        {
            "py:class": [
                "scvi.model.base.BaseModelClass",
                "scvi.model.base.UnsupervisedTrainingMixin",
                "scvi.module.base.BaseModuleClass",
                "scvi.train.TrainingPlan",
                "scvi.data.AnnDataManager",
                "scvi.dataloaders.DataSplitter",
                "scvi.dataloaders.AnnDataLoader",
            ]
        },
        lambda name: f"api/reference/{name}.html#{name}",
    ),
    "spatialdata": (
        "stable",
        {"py:class": ["spatialdata.SpatialData"], "py:function": ["spatialdata.read_zarr"]},
        lambda name: f"api/{name.rsplit('.', 1)[1]}.html#{name}",
    ),
    "numpy": (
        "stable",
        {"py:class": ["numpy.ndarray", "numpy.random.Generator"]},
        lambda name: f"reference/generated/{name}.html#{name}",
    ),
    "pandas": (
        "stable",
        {"py:class": ["pandas.DataFrame", "pandas.Series", "pandas.Categorical"]},
        lambda name: f"reference/api/{name}.html#{name}",
    ),
    "python": (
        "3",
        {"py:class": ["str", "int", "float", "bool", "dict", "list", "tuple"], "py:data": ["None"]},
        lambda name: {
            "None": "library/constants.html#None",
            "int": "library/functions.html#int",
            "float": "library/functions.html#float",
            "bool": "library/functions.html#bool",
        }.get(name, f"library/stdtypes.html#{name}"),
    ),
}


def _check(name: str) -> None:
    if "." not in name:
        return
    module, attr = name, []
    while True:
        try:
            obj = importlib.import_module(module)
            break
        except ImportError:
            module, last = module.rsplit(".", 1)
            attr.insert(0, last)
    for a in attr:
        obj = getattr(obj, a)


def write(project: str, version: str, roles: dict[str, list[str]], url) -> Path:
    lines = []
    for role, names in roles.items():
        for name in names:
            _check(name)
            lines.append(f"{name} {role} 1 {url(name)} -")
    header = f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
    header += "# The remainder of this file is compressed using zlib.\n"
    out = HERE / f"{project}.inv"
    out.write_bytes(header.encode() + zlib.compress(("\n".join(lines) + "\n").encode()))
    return out


if __name__ == "__main__":
    for project, (version, roles, url) in PROJECTS.items():
        print(write(project, version, roles, url))
