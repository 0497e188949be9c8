"""Region identification on her2st: SENCA against baselines and published peers (ARI, NMI, time, peak memory).

Protocol: for every her2st section with pathologist labels available locally, ``n_regions`` = the number of
pathologist classes present except "undetermined"; every method is asked for that many regions; ARI and NMI are
computed on the labelled, non-undetermined spots. Each (method, section, seed) runs in its own process (honest peak
RSS) and its result is cached as JSON under ``benchmarks/results/regions_runs/``, so reruns skip finished work.

Usage::

    python -m benchmarks.regions                      # all methods, all labelled sections, 5 seeds
    python -m benchmarks.regions --quick              # CI smoke test: A1, one seed, cheap methods
    python -m benchmarks.regions --methods graphst stagate --seeds 3 --sections A1 B1

Methods (each with its documented defaults; where a peer defaults to R's mclust we use the R-free EEE Gaussian
mixture, sklearn ``GaussianMixture(covariance_type="tied")``, and say so):

``senca_he``      SENCA with H&E statistics features (sections with an image: A1)
``senca``         SENCA, expression + space only
``scanpy``        normalize_total + log1p, 3,000 HVGs, PCA 50, kNN graph, Leiden with resolution search
``smoothed_pca``  spatially smoothed PCA (mean over the 6 nearest spots, twice) + EEE GMM
``graphst``       GraphST (graphst-modern), EEE GMM on its embedding (PCA 20) + its refinement
``spagcn``        SpaGCN (spagcn-modern), histology on A1, resolution search to n_regions, its refinement
``banksy``        BANKSY (pybanksy), lambda 0.8, PCA 20, Leiden with resolution search
``stagate``       STAGATE (stagate-modern), EEE GMM on its 30-d embedding
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from benchmarks._common import (
    REGION_METHODS as ALL_METHODS,
)
from benchmarks._common import (
    RESULTS,
    bench_python,
    dump_json,
    labelled_sections,
    load_her2st,
    n_regions_of,
    run_isolated,
    scores,
)

RUNS = RESULTS / "regions_runs"
QUICK_METHODS = ["smoothed_pca", "scanpy", "senca"]
PEERS = {"graphst", "spagcn", "banksy", "stagate"}
IMAGE_METHODS = {"senca_he"}


# ----------------------------------------------------------------------------------------------------- helpers
def _log_normalise_hvg(adata, n_top_genes: int = 3000):
    import scanpy as sc

    a = adata.copy()
    a.X = a.layers["counts"].copy() if "counts" in a.layers else a.X.copy()
    sc.pp.filter_genes(a, min_cells=3)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=min(n_top_genes, a.n_vars))
    return a[:, a.var["highly_variable"]].copy()


def eee_gmm(x: np.ndarray, n_regions: int, seed: int) -> np.ndarray:
    """R-free stand-in for mclust's EEE model: a Gaussian mixture with one shared full covariance."""
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(n_components=n_regions, covariance_type="tied", n_init=1, random_state=seed, reg_covar=1e-5)
    return gm.fit_predict(np.asarray(x, dtype=np.float64))


def leiden_search(adata, n_regions: int, seed: int, key: str = "leiden", lo: float = 0.01, hi: float = 3.0):
    """Bisect the Leiden resolution until the partition has ``n_regions`` clusters (closest after 30 steps)."""
    import scanpy as sc

    best = None
    for _ in range(30):
        res = (lo + hi) / 2
        sc.tl.leiden(
            adata, resolution=res, key_added=key, random_state=seed, flavor="igraph", n_iterations=2, directed=False
        )
        k = adata.obs[key].nunique()
        if best is None or abs(k - n_regions) < abs(best[1] - n_regions):
            best = (res, k, adata.obs[key].to_numpy().copy())
        if k == n_regions:
            break
        if k > n_regions:
            hi = res
        else:
            lo = res
    return best[2], best[0]


# ----------------------------------------------------------------------------------------------------- methods
def m_smoothed_pca(adata, n_regions, seed):
    import scanpy as sc

    from senca.pp import knn_index

    a = _log_normalise_hvg(adata)
    sc.pp.pca(a, n_comps=15, random_state=seed)
    x = a.obsm["X_pca"]
    nb = knn_index(a.obsm["spatial"], 7)  # self + 6 nearest spots
    for _ in range(2):
        x = x[nb].mean(1)
    return eee_gmm(x, n_regions, seed), {"note": "15 PCs of 3,000 HVGs, smoothed twice over self + 6 nearest spots"}


def m_smoothed_pca_tl(adata, n_regions, seed):
    import scanpy as sc

    import senca
    from senca.pp import knn_index

    a = _log_normalise_hvg(adata)
    sc.pp.pca(a, n_comps=15, random_state=seed)
    x = a.obsm["X_pca"]
    nb = knn_index(a.obsm["spatial"], 7)
    for _ in range(2):
        x = x[nb].mean(1)
    a.obsm["X_smoothed"] = x
    senca.tl.regions(a, n_regions=n_regions, use_rep="X_smoothed", seed=seed)
    return a.obs["senca_region"].to_numpy(), {"note": "as smoothed PCA, clustered with senca.tl.regions defaults"}


def m_scanpy(adata, n_regions, seed):
    import scanpy as sc

    a = _log_normalise_hvg(adata)
    sc.pp.pca(a, n_comps=50, random_state=seed)
    sc.pp.neighbors(a, n_neighbors=15, random_state=seed)
    lab, res = leiden_search(a, n_regions, seed)
    return lab, {"note": f"Leiden resolution {res:.3f}"}


def _senca_common(adata, n_regions, seed, image: bool):
    import senca

    # as setup_anndata's docstring recommends: 3,000 highly variable genes, normalised by the whole library
    a = senca.pp.select_genes(adata, n_top_genes=3000, layer="counts")
    if image:
        senca.im.extract_features(a, method="stats", progress=False)
    senca.model.SENCA.setup_anndata(
        a, layer="counts", image_key="X_histology" if image else None, spatial_key="spatial", library_key="library_size"
    )
    model = senca.model.SENCA(a)
    model.train(seed=seed, enable_progress_bar=False)
    a.obsm["X_senca"] = model.get_latent_representation()
    senca.tl.regions(a, n_regions=n_regions, use_rep="X_senca", method="gmm", key_added="senca_region", seed=seed)
    return a.obs["senca_region"].to_numpy(), {"note": f"defaults, train(): {model.selection_['passes']} passes"}


def m_senca(adata, n_regions, seed):
    return _senca_common(adata, n_regions, seed, image=False)


def m_senca_he(adata, n_regions, seed):
    return _senca_common(adata, n_regions, seed, image=True)


def m_graphst(adata, n_regions, seed):
    import torch
    from GraphST import GraphST
    from GraphST.utils import refine_label
    from sklearn.decomposition import PCA

    a = adata.copy()
    a.X = a.layers["counts"].copy()
    model = GraphST.GraphST(a, device=torch.device("cpu"), random_seed=seed)
    a = model.train()
    emb = PCA(n_components=20, random_state=42).fit_transform(a.obsm["emb"])  # as GraphST's clustering()
    a.obs["domain"] = eee_gmm(emb, n_regions, seed).astype(str)
    lab = refine_label(a, radius=50, key="domain")  # GraphST's refinement (refinement=True in its tutorials)
    return np.asarray(lab), {"note": "EEE GMM on PCA-20 of emb, refine_label(radius=50)"}


def m_stagate(adata, n_regions, seed):
    import scanpy as sc
    import STAGATE_pyG as STAGATE

    a = adata.copy()
    a.X = a.layers["counts"].copy()
    sc.pp.highly_variable_genes(a, flavor="seurat_v3", n_top_genes=3000)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    # legacy ST: the 6 (hex) / 4 (square grid) nearest spots; KNN avoids guessing a pixel radius
    STAGATE.Cal_Spatial_Net(a, k_cutoff=6, model="KNN", verbose=False)
    a = STAGATE.train_STAGATE(a, random_seed=seed, device="cpu", verbose=False)
    return eee_gmm(a.obsm["STAGATE"], n_regions, seed), {"note": "KNN k=6 graph, EEE GMM on 30-d STAGATE embedding"}


def m_spagcn(adata, n_regions, seed):
    import SpaGCN as spg

    a = adata.copy()
    a.X = a.layers["counts"].copy()
    a.var_names_make_unique()
    xy = a.obsm["spatial"]
    lib = next(iter(a.uns["spatial"])) if "spatial" in a.uns else None
    if lib is not None and a.uns["spatial"][lib].get("images"):
        # SpaGCN indexes image[x_pixel, y_pixel]: x = image row (vertical), y = column; pixels of the image given
        sfac = a.uns["spatial"][lib]["scalefactors"]
        sf = sfac["tissue_hires_scalef"]
        img = a.uns["spatial"][lib]["images"]["hires"]
        x_pixel, y_pixel = (xy[:, 1] * sf).astype(int), (xy[:, 0] * sf).astype(int)
        beta = max(3, int(round(sfac["spot_diameter_fullres"] * sf)))  # spot diameter in image pixels (49 on Visium)
        histology = True
        note = f"tutorial workflow (detect_spatial_domains_ez_mode), histology=True on the A1 H&E, b={beta} px"
    else:
        img, x_pixel, y_pixel, beta, histology = None, xy[:, 1], xy[:, 0], 49, False
        note = "tutorial workflow (detect_spatial_domains_ez_mode), histology=False (no image for this section)"
    pred = spg.detect_spatial_domains_ez_mode(
        a,
        img,
        a.obs["array_row"].to_numpy(),
        a.obs["array_col"].to_numpy(),
        x_pixel,
        y_pixel,
        n_clusters=n_regions,
        histology=histology,
        s=1,
        b=beta,
        p=0.5,
        r_seed=seed,
        t_seed=seed,
        n_seed=seed,
    )
    adj_2d = spg.calculate_adj_matrix(x=a.obs["array_row"].to_numpy(), y=a.obs["array_col"].to_numpy(), histology=False)
    refined = spg.refine(
        sample_id=a.obs_names.tolist(), pred=list(np.asarray(pred).astype(str)), dis=adj_2d, shape="square"
    )
    return np.asarray(refined), {"note": note + "; refine(shape='square') for the legacy-ST grid"}


def m_banksy(adata, n_regions, seed):
    import random

    import scanpy as sc
    from banksy.embed_banksy import generate_banksy_matrix
    from banksy.initialize_banksy import initialize_banksy
    from banksy_utils.umap_pca import pca_umap

    random.seed(seed)
    np.random.seed(seed)
    a = _log_normalise_hvg(adata, n_top_genes=2000)
    a.obs["xcoord"], a.obs["ycoord"] = a.obsm["spatial"][:, 0], a.obsm["spatial"][:, 1]
    a.obsm["coord_xy"] = a.obsm["spatial"]
    banksy_dict = initialize_banksy(
        a,
        ("xcoord", "ycoord", "coord_xy"),
        num_neighbours=15,
        nbr_weight_decay="scaled_gaussian",
        max_m=1,
        plt_edge_hist=False,
        plt_nbr_weights=False,
        plt_agf_angles=False,
        plt_theta=False,
    )
    banksy_dict, _ = generate_banksy_matrix(a, banksy_dict, [0.8], max_m=1, verbose=False)
    pca_umap(banksy_dict, pca_dims=[20], add_umap=False, plt_remaining_var=False)
    b = banksy_dict["scaled_gaussian"][0.8]["adata"]
    sc.pp.neighbors(b, use_rep="reduced_pc_20", n_neighbors=50, random_state=seed)
    lab, res = leiden_search(b, n_regions, seed)
    return lab, {"note": f"k_geom 15, λ 0.8, 2,000 HVGs, PCA 20, 50-NN graph, Leiden resolution {res:.3f}"}


METHODS = {
    "senca_he": m_senca_he,
    "smoothed_pca_tl": m_smoothed_pca_tl,
    "senca": m_senca,
    "smoothed_pca": m_smoothed_pca,
    "scanpy": m_scanpy,
    "graphst": m_graphst,
    "stagate": m_stagate,
    "spagcn": m_spagcn,
    "banksy": m_banksy,
}


def run_one(method: str, section: str, seed: int) -> dict:
    """Load ``section``, run ``method`` with ``seed``, score it. Called in a child process by :func:`run_isolated`."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
        torch.set_num_threads(1)
    except ImportError:
        pass
    adata = load_her2st(section, image=method in IMAGE_METHODS or method == "spagcn")
    if method == "spagcn" and section != "A1" and "spatial" in adata.uns:
        del adata.uns["spatial"]
    if method in IMAGE_METHODS and "spatial" not in adata.uns:
        return {"skipped": f"no H&E image for {section}"}
    n_regions = n_regions_of(adata.obs["pathologist"])
    t0, c0 = time.perf_counter(), time.process_time()
    labels, info = METHODS[method](adata, n_regions, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    labels = np.asarray(labels).astype(str)
    out = scores(adata.obs["pathologist"].astype(str).to_numpy(), labels)
    out.update(
        method=method,
        section=section,
        seed=seed,
        n_regions=n_regions,
        n_found=int(len(set(labels))),
        wall_s=round(wall, 2),
        cpu_s=round(cpu, 2),
        spots=adata.obs_names.tolist(),
        labels=labels.tolist(),
        **info,
    )
    return out


# ----------------------------------------------------------------------------------------------------- driver
def cache_path(method: str, section: str, seed: int):
    return RUNS / f"{method}__{section}__seed{seed}.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="A1, seed 0, smoothed_pca + scanpy + senca (CI smoke test)")
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    p.add_argument("--seed-list", type=int, nargs="*", help="explicit seeds (overrides --seeds)")
    p.add_argument("--methods", nargs="*", default=None, choices=ALL_METHODS)
    p.add_argument("--sections", nargs="*", default=None)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--force", action="store_true", help="ignore the cache")
    p.add_argument("--retry-errors", action="store_true", help="rerun cached runs that failed")
    p.add_argument("--out", default=None, help="cache folder (default benchmarks/results/regions_runs)")
    p.add_argument("--no-report", action="store_true", help="do not write results/regions.{md,json} and figures")
    args = p.parse_args(argv)

    runs = RUNS if args.out is None else __import__("pathlib").Path(args.out)
    methods = args.methods or (QUICK_METHODS if args.quick else ALL_METHODS)
    sections = args.sections or (["A1"] if args.quick else labelled_sections())
    seeds = args.seed_list if args.seed_list else list(range(1 if args.quick else args.seeds))
    py = bench_python()
    print(f"[regions] sections {sections}, methods {methods}, seeds {seeds}, python {py}", flush=True)
    # seed-major order: an interrupted run still leaves complete seeds across sections and methods
    for seed in seeds:
        for method in methods:
            for section in sections:
                f = runs / f"{method}__{section}__seed{seed}.json"
                if f.exists() and not args.force and not args.retry_errors:
                    continue
                if f.exists() and not args.force and "error" not in json.loads(f.read_text()):
                    continue
                t0 = time.perf_counter()
                res = run_isolated(
                    "benchmarks.regions:run_one",
                    {"method": method, "section": section, "seed": seed},
                    python=py if method in PEERS else sys.executable,
                    timeout=args.timeout,
                )
                res.setdefault("method", method)
                res.setdefault("section", section)
                res.setdefault("seed", seed)
                dump_json(res, f)
                msg = res.get("error") or res.get("skipped") or f"ARI {res['ari']:.3f} NMI {res['nmi']:.3f}"
                print(
                    f"[regions] {method:13s} {section} seed {seed}: {msg} ({time.perf_counter() - t0:.0f} s, "
                    f"{res.get('peak_rss_mb', '?')} MB)",
                    flush=True,
                )
    if not args.no_report:
        from benchmarks.report import write_regions

        write_regions(runs, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
