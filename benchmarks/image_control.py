"""Does the H&E earn its place in SENCA?  her2st A1 with its H&E, without it, and with shuffled image features.

``python -m benchmarks.image_control [--seeds N]``

A1 is the only her2st section with both pathologist labels and an H&E here. SENCA with its defaults
(``senca.pp.select_genes`` 3,000 HVGs, ``library_key``, ``SENCA(adata)``, ``train()``, ``get_latent_representation()``,
``senca.tl.regions(n_regions=5)``), with ``senca.im.extract_features(method="stats")`` features, without an image,
and with the same features shuffled across spots (three permutations: the image no longer matches the tissue).
ARI against the pathologist ("undetermined" excluded), mean ± sd over region-caller seeds; ``train(seed=0)`` chooses
the attention passes (label-free, by count splitting).

Writes ``benchmarks/results/image_control.{json,md}``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from benchmarks._common import RESULTS, dump_json, machine, now, versions


def run(seeds: list[int]) -> dict:
    import torch

    import senca

    torch.set_num_threads(1)
    base = senca.datasets.her2st("A1", image="hires")
    senca.im.extract_features(base, method="stats", progress=False)
    base = senca.pp.select_genes(base, n_top_genes=3000)
    variants = {"no image": (None, None), "H&E statistics": ("X_histology", None)}
    for i in range(3):
        variants[f"shuffled H&E statistics #{i}"] = ("X_histology", np.random.default_rng(i).permutation(base.n_obs))
    out = {}
    for name, (key, perm) in variants.items():
        a = base.copy()
        if perm is not None:
            a.obsm["X_histology"] = a.obsm["X_histology"][perm]
        senca.model.SENCA.setup_anndata(a, layer="counts", image_key=key, library_key="library_size")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = senca.model.SENCA(a)
            model.train(seed=0)
            a.obsm["X_senca"] = model.get_latent_representation()
        aris = []
        for seed in seeds:
            senca.tl.regions(a, n_regions=5, seed=seed, overwrite=True)
            aris.append(float(senca.metrics.region_scores(a.obs["pathologist"], a.obs["senca_region"])["ari"]))
        out[name] = aris
        print(f"{name}: {np.mean(aris):.3f} ± {np.std(aris):.3f}", flush=True)
    return out


def report(res: dict) -> str:
    lines = [
        "## Does the H&E earn its place? her2st A1 with, without and with shuffled image features",
        "",
        f"Command: `python -m benchmarks.image_control --seeds {len(res['seeds'])}`; {res['when']}. SENCA defaults, "
        '`extract_features(method="stats")`, `tl.regions(n_regions=5)`; ARI vs the pathologist, mean ± sd over '
        "region-caller seeds.",
        "",
        "| A1 | ARI |",
        "|---|---|",
    ]
    for name, aris in res["ari"].items():
        lines.append(f"| {name} | {np.mean(aris):.3f} ± {np.std(aris):.3f} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    seeds = list(range(args.seeds))
    res = {"seeds": seeds, "ari": run(seeds), "when": now(), "machine": machine(), "versions": versions(["senca"])}
    dump_json(res, RESULTS / "image_control.json")
    (RESULTS / "image_control.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
