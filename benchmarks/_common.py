"""Shared benchmark helpers: isolated runs (wall time + peak RSS per subprocess), versions, machine, her2st I/O.

Every measured run happens in its own Python process so that its peak resident memory (``ru_maxrss``) is its own
and not the high-water mark of whatever ran before it. The parent writes a JSON spec, the child
(``python -m benchmarks._common SPEC OUT``) imports ``module:function``, calls it with the spec's keyword arguments,
and writes the function's result dict plus ``wall_s``, ``peak_rss_mb``, ``versions`` and ``python`` to ``OUT``.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"
REPO = ROOT.parent

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
}

PACKAGES = [
    "senca",
    "torch",
    "scvi-tools",
    "lightning",
    "anndata",
    "scanpy",
    "squidpy",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "igraph",
    "leidenalg",
    "graphst-modern",
    "spagcn-modern",
    "pybanksy",
    "stagate-modern",
    "torch-geometric",
    "POT",
    "psutil",
]


# --------------------------------------------------------------------------------------------------- environment
def versions(packages: list[str] | None = None) -> dict[str, str]:
    """Installed versions of ``packages`` ("not installed" where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in packages or PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    return out


def senca_git() -> str:
    """Commit of the senca source tree (``+dirty`` when src/senca has uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src/senca"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str]:
    """A short description of the machine the numbers come from."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    except OSError:
        pass
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except ImportError:
        pass
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "gpu": gpu,
        "load_1min": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
    }


def now() -> str:
    """UTC time stamp."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def single_thread() -> None:
    """Pin every numeric library of this process to one thread (the machines are shared)."""
    os.environ.update(THREAD_ENV)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def bench_python() -> str:
    """The interpreter that has the peer packages (``.venv-bench``) if it exists, else this one."""
    cand = REPO / ".venv-bench" / "bin" / "python"
    return str(cand) if cand.exists() else sys.executable


# --------------------------------------------------------------------------------------------------- isolated runs
def run_isolated(
    target: str, kwargs: dict, python: str | None = None, timeout: float | None = None, env: dict | None = None
) -> dict:
    """Run ``target`` (``"module:function"``) with ``kwargs`` in a fresh process; return its result dict.

    The result holds whatever the function returned plus ``wall_s`` (the call itself, imports excluded),
    ``process_s`` (the whole child, imports included), ``peak_rss_mb`` (the child's peak resident memory),
    ``versions`` and ``python``. Failures return ``{"error": ...}`` with the tail of stderr.
    """
    with tempfile.TemporaryDirectory(prefix="senca_bench_") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"target": target, "kwargs": kwargs}))
        child_env = {**os.environ, **THREAD_ENV, "SENCA_DATA_DIR": str(data_dir()), "SENCA_DOWNLOAD": "0"}
        child_env.update(env or {})
        child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH", "")]))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [python or sys.executable, "-m", "benchmarks._common", str(spec), str(out)],
                cwd=tmp,
                env=child_env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        process_s = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-6:]
            return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-800:]}
        res = json.loads(out.read_text())
        res["process_s"] = round(process_s, 2)
        return res


def _child(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    single_thread()
    import warnings

    warnings.filterwarnings("ignore")
    mod_name, fn_name = spec["target"].split(":")
    fn = getattr(importlib.import_module(mod_name), fn_name)
    t0 = time.perf_counter()
    res = fn(**spec["kwargs"])
    wall = time.perf_counter() - t0
    res = dict(res or {})
    res.setdefault("wall_s", round(wall, 3))
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN covers helpers the method may spawn (R, workers)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res["peak_rss_mb"] = round(max(own, kids) / 1024, 1)
    res["versions"] = versions()
    res["senca_git"] = senca_git()
    res["python"] = sys.executable
    Path(out_path).write_text(json.dumps(res, default=_json_default))


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def dump_json(obj, path: Path) -> None:
    """Write ``obj`` as indented JSON (numpy scalars/arrays allowed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=_json_default))


# --------------------------------------------------------------------------------------------------- her2st
def data_dir() -> Path:
    """``$SENCA_DATA_DIR`` (default ``/work/shared/data``), made absolute: isolated runs start in a temporary folder."""
    return Path(os.environ.get("SENCA_DATA_DIR", "/work/shared/data")).expanduser().resolve()


def labelled_sections() -> list[str]:
    """her2st sections with pathologist labels available locally (senca.datasets when it has a lister)."""
    try:
        import senca.datasets as ds

        if hasattr(ds, "her2st_sections"):
            return list(ds.her2st_sections("labels", data_dir=data_dir(), local_only=True))
    except ImportError:
        pass
    lbl = data_dir() / "her2st" / "ST-pat" / "lbl"
    return sorted(p.name.split("_")[0] for p in lbl.glob("*_labeled_coordinates.tsv"))


def load_her2st(section: str, image: bool = False):
    """AnnData of one her2st section: raw counts, ``obsm["spatial"]``, ``obs["pathologist"]`` (+ hires image).

    Uses ``senca.datasets.her2st`` when it exists; otherwise reads the files as MANIFEST.md describes.
    """
    try:
        import senca.datasets as ds

        if hasattr(ds, "her2st"):
            has_image = image and section in ds.her2st_sections("image", data_dir=data_dir(), local_only=True)
            adata = ds.her2st(section, image="hires" if has_image else None, data_dir=data_dir(), download=False)
            if not has_image:
                adata.uns.pop("spatial", None)  # no image: nothing for image-based methods to find
            return adata
    except ImportError:
        pass
    return _read_her2st(section, image)


def _read_her2st(section: str, image: bool):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    root = data_dir() / "her2st"
    cnt = pd.read_csv(root / "ST-cnts" / f"{section}.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(root / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t")
    spots.index = spots["x"].astype(str) + "x" + spots["y"].astype(str)
    spots = spots.loc[cnt.index]
    obs = pd.DataFrame(index=cnt.index.astype(str))
    obs["section"] = section
    obs["patient"] = section[0]
    obs["array_row"], obs["array_col"] = spots["y"].to_numpy(), spots["x"].to_numpy()
    lf = root / "ST-pat" / "lbl" / f"{section}_labeled_coordinates.tsv"
    if lf.exists():
        lbl = pd.read_csv(lf, sep="\t").dropna(subset=["x", "y"])
        lbl.index = lbl["x"].round().astype(int).astype(str) + "x" + lbl["y"].round().astype(int).astype(str)
        lbl = lbl[~lbl.index.duplicated()]
        obs["pathologist"] = pd.Categorical(lbl["label"].reindex(obs.index).astype(object).values)
    X = sp.csr_matrix(cnt.values.astype(np.float32))
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=cnt.columns.astype(str)))
    adata.var_names_make_unique()
    adata.layers["counts"] = adata.X.copy()
    adata.obsm["spatial"] = spots[["pixel_x", "pixel_y"]].to_numpy(np.float64)
    if image:
        scale = {"A1": 2000 / 6954, "A2": 2000 / 6966}.get(section)
        png = root / "app" / "www" / "imgs" / f"{section}_HE_image_dark.png"
        if scale is not None and png.exists():
            from PIL import Image
            from sklearn.neighbors import NearestNeighbors

            img = np.asarray(Image.open(png).convert("RGB"))
            d, _ = NearestNeighbors(n_neighbors=2).fit(adata.obsm["spatial"]).kneighbors(adata.obsm["spatial"])
            pitch = float(np.median(d[:, 1]))  # 200 um centre to centre; spots are 100 um wide
            adata.uns["spatial"] = {
                section: {
                    "images": {"hires": img},
                    "scalefactors": {"tissue_hires_scalef": scale, "spot_diameter_fullres": pitch / 2},
                }
            }
    return adata


def thinned(adata, fraction: float, seed: int):
    """``adata`` sequenced shallower: each count of ``layers["counts"]`` kept with probability ``fraction`` (binomial
    thinning, ``X`` the same counts); spots left without counts dropped."""
    import scipy.sparse as sp

    x = sp.csr_matrix(adata.layers["counts"]).copy()
    x.data = np.random.default_rng(seed).binomial(x.data.astype(np.int64), fraction).astype(np.float32)
    x.eliminate_zeros()
    out = adata.copy()
    out.X, out.layers["counts"] = x, x.copy()
    return out[np.asarray(x.sum(1)).ravel() > 0].copy()


def n_regions_of(labels) -> int:
    """Protocol: the number of pathologist classes present, "undetermined" excluded."""
    lab = [str(x) for x in labels if isinstance(x, str) and x not in ("undetermined", "nan")]
    return len(set(lab))


def scores(truth, pred) -> dict:
    """ARI/NMI on labelled, non-undetermined spots (senca.metrics.region_scores when it exists)."""
    truth = np.asarray([str(t) for t in truth], dtype=object)
    pred = np.asarray([str(p) for p in pred], dtype=object)
    keep = np.array([t not in ("undetermined", "nan", "None", "NA") for t in truth])
    try:
        import pandas as pd

        from senca.metrics import region_scores

        s = region_scores(pd.Series(truth[keep]), pd.Series(pred[keep]))
        return {"ari": float(s["ari"]), "nmi": float(s["nmi"]), "scorer": "senca.metrics.region_scores"}
    except (ImportError, AttributeError, TypeError):
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        return {
            "ari": float(adjusted_rand_score(truth[keep], pred[keep])),
            "nmi": float(normalized_mutual_info_score(truth[keep], pred[keep])),
            "scorer": "sklearn",
        }


def fmt_mean_std(values, digits: int = 3) -> str:
    """``"0.312 ± 0.021 (n=5)"``; a single value has no ``±``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


# ----------------------------------------------------------------------------------------------------- region methods
# names and labels of the region methods, read by regions.py (runs) and report.py (tables); kept here so that
# report.py does not import regions.py, which imports report.py
REGION_METHODS = [
    "senca_he",
    "senca",
    "smoothed_pca",
    "smoothed_pca_tl",
    "scanpy",
    "banksy",
    "spagcn",
    "graphst",
    "stagate",
]
REGION_LABELS = {
    "senca_he": "SENCA (expression + space + H&E stats)",
    "senca": "SENCA (expression + space)",
    "smoothed_pca": "spatially smoothed PCA + EEE GMM",
    "smoothed_pca_tl": "spatially smoothed PCA + senca.tl.regions (k-means-initialised EEE GMM, refine)",
    "scanpy": "scanpy PCA + Leiden (expression only)",
    "banksy": "BANKSY (pybanksy, λ=0.8, Leiden)",
    "spagcn": "SpaGCN (spagcn-modern; H&E on A1)",
    "graphst": "GraphST (graphst-modern; EEE GMM¹ + refine)",
    "stagate": "STAGATE (stagate-modern; EEE GMM¹)",
}


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
