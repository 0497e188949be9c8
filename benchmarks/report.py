"""Assemble ``benchmarks/RESULTS.md`` from ``benchmarks/results/*.md`` (and write the regions tables and figures).

Every benchmark script writes ``results/<name>.md`` (a self-contained section: table, protocol, the exact command)
and ``results/<name>.json`` (the numbers). This script concatenates the sections in a fixed order (regions, scaling,
features, detection, multiclass, multiclass_ceiling, then any other), and adds the machine, the date and the versions
of every package.

Usage::

    python -m benchmarks.report            # re-aggregate regions_runs/ and rewrite RESULTS.md
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks._common import FIGURES, PACKAGES, RESULTS, ROOT, dump_json, fmt_mean_std, machine, now, versions

ORDER = ["regions", "scaling", "features", "detection", "multiclass", "multiclass_ceiling"]


# ----------------------------------------------------------------------------------------------------- regions
def load_runs(runs: Path) -> list[dict]:
    out = []
    for f in sorted(runs.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except json.JSONDecodeError:
            continue
    return out


def aggregate_regions(runs: list[dict]) -> dict:
    """Per method: per-section ARI/NMI over seeds, the section mean per seed, time and memory."""
    from benchmarks._common import REGION_LABELS as LABELS
    from benchmarks._common import REGION_METHODS as ALL_METHODS

    by = defaultdict(lambda: defaultdict(dict))  # method -> section -> seed -> run
    errors = defaultdict(list)
    for r in runs:
        if "ari" in r:
            by[r["method"]][r["section"]][r["seed"]] = r
        elif "error" in r:
            errors[r["method"]].append(f"{r['section']} seed {r['seed']}: {r['error']}")
    sections = sorted({s for m in by.values() for s in m})
    agg = {"sections": sections, "methods": {}}
    for method in [m for m in ALL_METHODS if m in by or m in errors] + [m for m in by if m not in ALL_METHODS]:
        secs = by.get(method, {})
        entry = {"label": LABELS.get(method, method), "sections": {}, "errors": errors.get(method, [])[:3]}
        for s in sections:
            rr = list(secs.get(s, {}).values())
            if rr:
                entry["sections"][s] = {
                    "ari": [r["ari"] for r in rr],
                    "nmi": [r["nmi"] for r in rr],
                    "seeds": [r["seed"] for r in rr],
                    "wall_s": [r["wall_s"] for r in rr],
                    "cpu_s": [r.get("cpu_s") for r in rr],
                    "peak_rss_mb": [r.get("peak_rss_mb") for r in rr],
                    "n_found": [r.get("n_found") for r in rr],
                    "n_regions": rr[0].get("n_regions"),
                    "note": rr[0].get("note", ""),
                    "senca_git": sorted({str(r.get("senca_git", "not recorded")) for r in rr}),
                }
        # mean over sections, per seed that covers every section the method ran on
        covered = [s for s in sections if s in secs]
        common = set.intersection(*[set(secs[s]) for s in covered]) if covered else set()
        entry["covered"] = covered
        entry["complete_seeds"] = sorted(common)
        entry["mean_ari_per_seed"] = [float(np.mean([secs[s][k]["ari"] for s in covered])) for k in sorted(common)]
        entry["mean_nmi_per_seed"] = [float(np.mean([secs[s][k]["nmi"] for s in covered])) for k in sorted(common)]
        walls = [w for s in covered for w in entry["sections"][s]["wall_s"]]
        rss = [m for s in covered for m in entry["sections"][s]["peak_rss_mb"] if m is not None]
        entry["wall_s_mean"] = float(np.mean(walls)) if walls else None
        cpus = [c for s in covered for c in entry["sections"][s]["cpu_s"] if c is not None]
        entry["cpu_s_mean"] = float(np.mean(cpus)) if cpus else None
        entry["peak_rss_mb_max"] = float(np.max(rss)) if rss else None
        agg["methods"][method] = entry
    return agg


def regions_markdown(agg: dict, quick: bool = False) -> str:
    sections = agg["sections"]
    lines = ["## Region identification on her2st", ""]
    cmd = "python -m benchmarks.regions --quick" if quick else "python -m benchmarks.regions --seeds 5"
    lines += [
        f"Command: `{cmd}` then `python -m benchmarks.report` (cached runs: `benchmarks/results/regions_runs/`).",
        "",
        "Protocol: every her2st section with pathologist labels available locally; `n_regions` = pathologist classes "
        "present except *undetermined*; ARI / NMI on labelled, non-undetermined spots. Cells: mean ± sd over seeds "
        "(n = seeds). *mean* = mean over sections, then mean ± sd over the seeds that cover every section the method "
        "ran on (SENCA + H&E runs on A1 only: the only labelled section with an image). Time: wall-clock seconds per "
        "section for the method itself (data loading excluded), one thread, and in brackets the CPU seconds of "
        "the process over the same call where recorded: the machine was shared with other jobs (load 5-12 on 2 "
        "cores), so wall times are several times those of a quiet run and CPU seconds are the fairer comparison; "
        "peak RSS: "
        "the whole process (Python + libraries + data), measured per run in its own process.",
        "",
    ]
    hdr = (
        "| method | "
        + " | ".join(f"{s} ARI" for s in sections)
        + " | mean ARI | mean NMI | wall s (CPU s) / section | peak RSS (MB) | seeds |"
    )
    lines += [hdr, "|" + "---|" * (len(sections) + 6)]
    rows = []
    for m, e in agg["methods"].items():
        if not e["sections"]:
            continue
        cells = [fmt_mean_std(e["sections"][s]["ari"]) if s in e["sections"] else "–" for s in sections]
        n_seeds = len(e["complete_seeds"])
        partial = "" if len(e["covered"]) == len(sections) else f" ({', '.join(e['covered'])} only)"
        mean_ari = np.mean(e["mean_ari_per_seed"]) if e["mean_ari_per_seed"] else -1
        cols = [
            e["label"],
            *cells,
            "**" + fmt_mean_std(e["mean_ari_per_seed"]) + "**" + partial,
            fmt_mean_std(e["mean_nmi_per_seed"]),
            (f"{e['wall_s_mean']:.0f}" if e["wall_s_mean"] is not None else "–")
            + (f" ({e['cpu_s_mean']:.0f})" if e.get("cpu_s_mean") is not None else ""),
            f"{e['peak_rss_mb_max']:.0f}" if e["peak_rss_mb_max"] is not None else "–",
            str(n_seeds),
        ]
        rows.append(((not partial, mean_ari), m, "| " + " | ".join(cols) + " |"))
    rows.sort(key=lambda t: t[0], reverse=True)
    lines += [r[2] for r in rows]
    for e in agg["methods"].values():
        if e["errors"] and not e["sections"]:
            why = e["errors"][0].split(": ", 1)[-1][:160].replace("|", "/")
            lines.append(f"| {e['label']} | did not run: {why} |" + " – |" * (len(sections) + 4) + " 0 |")
    lines += [
        "",
        "¹ The peer's documented clustering is R's mclust (EEE); we use the R-free equivalent, a Gaussian "
        "mixture with one shared full covariance (`sklearn.mixture.GaussianMixture(covariance_type='tied')`).",
        "",
    ]
    lines += [
        "What the SENCA rows measure. SENCA's regions are called on its default embedding after `model.train()` "
        "(`get_latent_representation()`): the 50 principal components of the log-normalised counts (normalised by "
        "each spot's whole library), mixed with those of the 6 nearest spots by the network's attention layers, "
        "with weights set by how alike the spots look in H&E, next to the histology features mixed the same way "
        "(`docs/concepts.md`). `train()` chooses the number of attention passes by count splitting; on A1-D1 at full "
        "depth it chooses the estimator's two, so these rows are also the untrained network's (*What SENCA's "
        "train() changes*, below). **Without an image the weights are uniform, so *SENCA (expression + space)* is a "
        "spatially smoothed PCA**; it differs from the smoothed-PCA baseline rows only in those details (50 PCs "
        "rather than 15, whole-library normalisation, the spot's own weight 1/6 per pass). With the H&E colour and "
        "texture statistics A1 rises from 0.396 to 0.525, and features shuffled across spots give 0.34–0.41 (*Does "
        "the H&E earn its place?*, below): on her2st the histology adds a little over the expression, on A1, the one "
        "labelled section with a public image.",
        "",
    ]

    def _note(v):
        return re.sub(r"resolution [0-9.]+", "resolution searched per section", v.get("note", ""))

    notes = []
    for m, e in agg["methods"].items():
        if not e["sections"]:
            continue
        txt = f"- **{e['label']}**: " + "; ".join(sorted({_note(v) for v in e["sections"].values() if _note(v)}))
        if m.startswith("senca"):
            txt = f"- **{e['label']}**: defaults (`train()` chooses the attention passes; regions on its embedding)"
            commits = sorted({c for v in e["sections"].values() for c in v.get("senca_git", [])})
            txt += f" (senca source: {', '.join(commits)})"
        notes.append(txt)
    under = [
        f"- {e['label']}: {len(e['complete_seeds'])} seed(s) only (time)."
        for e in agg["methods"].values()
        if e["sections"]
        and 0 < len(e["complete_seeds"]) < max(len(x["complete_seeds"]) for x in agg["methods"].values())
    ]
    errs = [
        f"- {e['label']}: " + " / ".join(x[:300] for x in e["errors"]) for e in agg["methods"].values() if e["errors"]
    ]
    merged = []
    for e in agg["methods"].values():
        for s, v in e["sections"].items():
            short = [k for k in v["n_found"] if k is not None and k < v["n_regions"]]
            if short:
                merged.append(
                    f"{e['label']} on {s}: {len(short)}/{len(v['n_found'])} runs found fewer regions than "
                    f"asked ({v['n_regions']})"
                )
    lines += ["Settings per method:", "", *notes, ""]
    if under:
        lines += ["Fewer seeds:", "", *under, ""]
    if merged:
        lines += [
            "Fewer regions than asked (refinement or Leiden merging clusters):",
            "",
            *[f"- {x}" for x in merged],
            "",
        ]
    if errs:
        lines += ["Failures:", "", *errs, ""]
    lines += [
        "![ARI per method and section, one dot per seed](figures/regions_ari.png)",
        "",
        "*ARI per method and section, one dot per seed (`figures/regions_ari.png`).*",
        "",
        "![Seed-0 region maps on A1 next to the pathologist's](figures/regions_A1_maps.png)",
        "",
        "*Seed-0 region maps of every method on A1, next to the pathologist's (`figures/regions_A1_maps.png`).*",
        "",
    ]
    return "\n".join(lines)


def _matched_colours(truth: np.ndarray, pred: np.ndarray, classes: list[str]) -> np.ndarray:
    """Map predicted cluster ids to pathologist classes (Hungarian on the overlap) so colours are comparable."""
    from scipy.optimize import linear_sum_assignment

    clusters = sorted(set(pred))
    ov = np.array([[np.sum((pred == c) & (truth == t)) for t in classes] for c in clusters])
    r, c = linear_sum_assignment(-ov)
    mapping = {clusters[i]: j for i, j in zip(r, c)}
    extra = len(classes)
    out = np.empty(len(pred), dtype=int)
    for _k, cl in enumerate(clusters):
        if cl not in mapping:
            mapping[cl] = extra
            extra += 1
        out[pred == cl] = mapping[cl]
    return out


def regions_figures(agg: dict, runs: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    written = []
    methods = [m for m, e in agg["methods"].items() if e["sections"]]
    sections = agg["sections"]
    if not methods:
        return written
    # a page-width figure with the legend below the bars, so that it stays readable where the docs show it
    fig, ax = plt.subplots(figsize=(8, 5.5))
    width = 0.8 / len(methods)
    cmap = plt.get_cmap("tab10")
    for i, m in enumerate(methods):
        e = agg["methods"][m]
        for j, s in enumerate(sections):
            if s not in e["sections"]:
                continue
            v = np.asarray(e["sections"][s]["ari"])
            x = j + (i - (len(methods) - 1) / 2) * width
            ax.bar(
                x,
                v.mean(),
                width * 0.9,
                color=cmap(i % 10),
                label=e["label"] if j == sections.index(e["covered"][0]) else None,
            )
            ax.scatter(np.full(len(v), x), v, s=8, color="k", zorder=3)
    ax.set_xticks(range(len(sections)), sections)
    ax.set_ylabel("ARI vs pathologist")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.set_title("her2st: region identification (bars: mean over seeds; dots: seeds)")
    fig.tight_layout()
    f = FIGURES / "regions_ari.png"
    fig.savefig(f, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(f)

    # region maps on A1, seed 0 (or the lowest seed available)
    a1 = {}
    for r in runs:
        if r.get("section") == "A1" and "labels" in r:
            if r["method"] not in a1 or r["seed"] < a1[r["method"]]["seed"]:
                a1[r["method"]] = r
    if a1:
        from benchmarks._common import load_her2st

        adata = load_her2st("A1")
        truth = adata.obs["pathologist"].astype(str).to_numpy()
        xy = adata.obsm["spatial"]
        classes = sorted(set(truth) - {"nan", "undetermined"}) + ["undetermined"]
        panels = [("pathologist", None)] + [(m, a1[m]) for m in methods if m in a1]
        ncol = min(5, len(panels))
        nrow = int(np.ceil(len(panels) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 3.2 * nrow), squeeze=False)
        pal = plt.get_cmap("tab20")
        for ax, (m, r) in zip(axes.ravel(), panels):
            if r is None:
                codes = np.array([classes.index(t) if t in classes else len(classes) for t in truth])
                title = "pathologist"
            else:
                pos = {s: i for i, s in enumerate(r["spots"])}
                pred = np.array([r["labels"][pos[s]] if s in pos else "?" for s in adata.obs_names])
                codes = _matched_colours(truth, pred, classes[:-1])
                title = f"{agg['methods'][m]['label'].split(' (')[0]}\nARI {r['ari']:.2f} (seed {r['seed']})"
            ax.scatter(xy[:, 0], -xy[:, 1], c=[pal(c % 20) for c in codes], s=14)
            ax.set_title(title, fontsize=8)
            ax.set_aspect("equal")
            ax.axis("off")
        for ax in axes.ravel()[len(panels) :]:
            ax.axis("off")
        handles = [plt.Line2D([], [], ls="", marker="o", color=pal(i % 20), label=c) for i, c in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=len(classes), fontsize=7, frameon=False)
        fig.suptitle("her2st A1: regions per method (colours matched to the pathologist's classes)", fontsize=9)
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        f = FIGURES / "regions_A1_maps.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        written.append(f)
    return written


def write_regions(runs_dir: Path | None = None, quick: bool = False) -> Path:
    """Aggregate the cached regions runs into ``results/regions.{json,md}`` and the figures; rebuild RESULTS.md."""
    runs_dir = runs_dir or RESULTS / "regions_runs"
    runs = load_runs(runs_dir)
    agg = aggregate_regions(runs)
    name = "regions_quick" if quick else "regions"
    dump_json({**agg, "date": now(), "machine": machine(), "versions": versions()}, RESULTS / f"{name}.json")
    (RESULTS / f"{name}.md").write_text(regions_markdown(agg, quick=quick))
    if not quick:
        regions_figures(agg, runs)
        assemble()
    return RESULTS / f"{name}.md"


# ----------------------------------------------------------------------------------------------------- assemble
def _versions_of_runs() -> dict[str, set]:
    seen = defaultdict(set)
    for f in RESULTS.glob("*_runs/*.json"):
        try:
            v = json.loads(f.read_text()).get("versions", {})
        except json.JSONDecodeError:
            continue
        for k, x in v.items():
            if x != "not installed":
                seen[k].add(x)
    return seen


# parts whose own title would repeat another's: the 5,000-gene run used SpaCRD's earlier defaults
_TITLES = {"detection_hvg5000": "SpaCRD with 5,000 genes and the earlier defaults (GMM threshold; not rerun)"}


def _as_section(path: Path) -> str:
    """One part of RESULTS.md: its title at level 2, its sub-headings below it, figures embedded."""
    text = path.read_text().rstrip()
    if text.startswith("# "):  # a part written with a level-1 title: demote all its headings by one level
        text = "\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines())
    if path.stem in _TITLES:
        first, _, rest = text.partition("\n")
        text = f"## {_TITLES[path.stem]}\n{rest}" if first.startswith("## ") else text
    # a figure named in the text is shown, not only named
    return re.sub(r"^Figure: `(figures/[\w.-]+\.png)`\.$", r"![\1](\1)", text, flags=re.M)


def assemble() -> Path:
    """Concatenate ``results/*.md`` into ``benchmarks/RESULTS.md`` with machine, date and versions."""
    parts = sorted(RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    parts = [p for p in parts if not p.stem.endswith("_quick")]
    mach = machine()
    here = versions()
    ran = _versions_of_runs()
    lines = [
        "# senca benchmarks",
        "",
        f"Assembled {now()} by `python -m benchmarks.report` from `benchmarks/results/*.md`; every number, table "
        "and figure here is written by the scripts in `benchmarks/` (see each section's command).",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM, GPU: {mach['gpu']}, "
        f"{mach['os']}. The machine is shared by other jobs (1-minute load {mach['load_1min']} when assembled), so "
        "times are upper bounds of a quiet run; every run used one thread.",
        "",
    ]
    for p in parts:
        lines += [_as_section(p), ""]
    lines += ["## Versions", "", "| package | version(s) used in the runs | installed here |", "|---|---|---|"]
    for k in ["python", *PACKAGES]:
        used = ", ".join(sorted(ran.get(k, []))) or "–"
        lines.append(f"| {k} | {used} | {here.get(k, '–')} |")
    lines += [
        "",
        "Peers run in a separate environment (`.venv-bench`: the same stack plus the peer packages); "
        "SENCA and the baselines in the project's environment.",
        "",
    ]
    out = ROOT / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out


def main(argv=None) -> int:
    runs = RESULTS / "regions_runs"
    if runs.exists():
        write_regions(runs)
    print(assemble())
    return 0


if __name__ == "__main__":
    sys.exit(main())
