"""Scaling of the default user path with the number of spots: every stage timed, with its peak memory.

Synthetic Visium HD-like sections from ``senca.datasets.synthetic`` (2,000 genes, 500 UMIs per spot on average, 32
histology features, 6 regions, hex grid) at 1k, 10k, 100k and 500k spots, plus 100k spots with 5,000 genes (of which
``setup_anndata`` selects 3,000). Each size runs in its own process (honest peak RSS):

1. ``generate``: the simulator alone, writing the section to ``benchmarks/_work/`` (git-ignored) as a reader would
   give it: raw counts in ``X`` (sparse), coordinates in ``obsm["spatial"]``, histology features in
   ``obsm["X_histology"]``.
2. ``senca``: the default path a user runs, stage by stage: ``import senca.model``; ``anndata.read_h5ad``;
   ``SENCA.setup_anndata(adata, image_key="X_histology")`` (gene selection inside it when there are more than 3,000
   genes, neighbour index); ``SENCA(adata)``; ``model.train()`` with its defaults; ``get_latent_representation()``;
   ``senca.tl.regions(adata, n_regions=6)``. Above ``--train-full-max`` spots, ``train()`` runs only its first
   ``--train-batches`` minibatches (and a tenth as many validation batches), and the default schedule's time is
   extrapolated from them (marked *est.*).
3. ``spacrd``: SpaCRD trained on four 100k-spot sections and predicting a 500k-spot section (``--spacrd``).
4. ``ddp``: SENCA's training minibatches on 2 processes (Lightning DDP on the CPU, gloo) against 1 (``--ddp``).
5. ``features``: ``senca.im.extract_features(method="stats")`` throughput on a synthetic H&E-like image.

Peak RSS of a stage is the highest resident memory of the process while the stage ran (sampled every 10 ms, and
the kernel's own high-water mark where the stage set it). Threads: one (the machine has 2 shared cores).

Usage::

    python -m benchmarks.scaling                      # everything, whole default schedule at every size
    python -m benchmarks.scaling --train-full-max 10000 --spacrd --ddp   # today's train() is slow above 10k
    python -m benchmarks.scaling --quick              # 300 and 1,000 spots (CI smoke test)
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks._common import FIGURES, RESULTS, ROOT, dump_json, machine, now, run_isolated, versions

WORK = ROOT / "_work"
N_GENES, N_HIST, N_REGIONS, DEPTH = 2_000, 32, 6, 500.0
SIZES = [1_000, 10_000, 100_000, 500_000]
EXTRA = [(100_000, 5_000)]  # (spots, genes): gene selection inside setup_anndata
STAGES = ["read", "setup", "model", "train", "latent", "regions"]
SPACRD_STAGES = ["read", "setup", "model", "train", "read target", "predict"]
TARGET_S, TARGET_GB, TARGET_EXPONENT = 600.0, 8.0, 1.1


# ----------------------------------------------------------------------------------------------------- stages
class Stages:
    """Wall time and peak resident memory of consecutive stages of one process."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.rows: list[dict] = []

    def _rss(self) -> int:
        return self._proc.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._rss())

    @contextmanager
    def __call__(self, name: str):
        self._peak = self._rss()
        high0 = _maxrss()
        t0 = time.perf_counter()
        yield
        wall = time.perf_counter() - t0
        high = _maxrss()
        peak = max(self._peak, self._rss(), high if high > high0 else 0)
        self.rows.append({"stage": name, "s": round(wall, 2), "peak_gb": round(peak / 2**30, 3)})

    def close(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.rows


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _synthetic_section(n_spots: int, n_genes: int, seed: int, library_id: str = "synthetic"):
    import senca

    adata = senca.datasets.synthetic(
        n_spots=n_spots,
        n_genes=n_genes,
        n_regions=N_REGIONS,
        n_histology=N_HIST,
        mean_library_size=DEPTH,
        seed=seed,
        library_id=library_id,
    )
    del adata.layers["counts"]  # as a reader gives it: the counts in X only
    return adata


# ----------------------------------------------------------------------------------------------------- children
def generate(n_spots: int, path: str, n_genes: int = N_GENES, seed: int = 0, library_id: str = "synthetic") -> dict:
    """Simulate one section and write it (time and memory of the simulator alone)."""
    t0 = time.perf_counter()
    adata = _synthetic_section(n_spots, n_genes, seed, library_id)
    wall = time.perf_counter() - t0
    adata.write_h5ad(path)
    depth = np.asarray(adata.X.sum(1)).ravel()
    return {
        "wall_s": round(wall, 2),
        "n_obs": adata.n_obs,
        "n_vars": adata.n_vars,
        "nnz": int(adata.X.nnz),
        "median_umis": float(np.median(depth)),
    }


def senca_path(path: str, train_batches: int | None = None, seed: int = 0) -> dict:
    """The default SENCA path, stage by stage. ``train_batches``: train only that many minibatches and extrapolate."""
    stages = Stages()
    with stages("import"):
        import anndata as ad

        import senca
        import senca.model  # scvi-tools and Lightning
    with stages("read"):
        adata = ad.read_h5ad(path)
    with stages("setup"):
        senca.model.SENCA.setup_anndata(adata, image_key="X_histology")
    with stages("model"):
        model = senca.model.SENCA(adata)
    train = {}
    with stages("train"):
        if train_batches:
            train = _limited_training(model, adata.n_obs, int(train_batches), seed)
        else:
            model.train(seed=seed)
    with stages("latent"):
        adata.obsm["X_senca"] = model.get_latent_representation()
    with stages("regions"):
        senca.tl.regions(adata, n_regions=N_REGIONS, seed=seed)
    from sklearn.metrics import adjusted_rand_score

    manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
    genes = (manager.registry.get("setup_args") or {}).get("genes")
    return {
        "n_obs": adata.n_obs,
        "n_vars": adata.n_vars,
        "n_genes_used": adata.n_vars if genes is None else len(genes),
        "stages": stages.close(),
        "train": train,
        "ari": round(float(adjusted_rand_score(adata.obs["region"], adata.obs["senca_region"])), 4),
    }


def _limited_training(model, n_obs: int, n_batches: int, seed: int, **trainer_kwargs) -> dict:
    """Train the first ``n_batches`` minibatches of one epoch; extrapolate the default schedule from their times.

    For today's ``SENCA.train`` (Lightning minibatches, ``max_epochs=None`` -> ``default_max_epochs``).
    """
    from lightning.pytorch.callbacks import Callback

    from senca.model._plan import default_max_epochs

    class Timer(Callback):
        def __init__(self):
            self.train, self.val, self._t = [], [], 0.0

        def on_train_batch_start(self, *args):
            self._t = time.perf_counter()

        def on_train_batch_end(self, *args):
            self.train.append(time.perf_counter() - self._t)

        def on_validation_batch_start(self, *args):
            self._t = time.perf_counter()

        def on_validation_batch_end(self, *args):
            self.val.append(time.perf_counter() - self._t)

    timer = Timer()
    batch_size, train_size = 128, 0.9
    model.train(
        max_epochs=1,
        seed=seed,
        enable_progress_bar=False,
        callbacks=[timer],
        limit_train_batches=n_batches,
        limit_val_batches=max(1, n_batches // 10),
        **trainer_kwargs,
    )
    skip = 2 if len(timer.train) > 10 else 0  # the first minibatches include lazy initialisation
    step = float(np.mean(timer.train[skip:]))
    val_step = float(np.mean(timer.val)) if timer.val else 0.0
    n_train = int(np.ceil(train_size * n_obs / batch_size))
    n_val = int(np.ceil((1 - train_size) * n_obs / batch_size))
    epochs = default_max_epochs(n_obs, batch_size, train_size)
    epoch_s = n_train * step + n_val * val_step
    return {
        "batches_timed": len(timer.train),
        "step_s": round(step, 4),
        "val_step_s": round(val_step, 4),
        "batches_per_epoch": n_train,
        "epoch_s_est": round(epoch_s, 3),
        "default_epochs": epochs,
        "default_s_est": round(epochs * epoch_s, 1),
    }


def spacrd_path(sources: list[str], target: str, seed: int = 0) -> dict:
    """SpaCRD's default path: train on the ``sources`` sections, predict the ``target`` section, stage by stage."""
    stages = Stages()
    with stages("import"):
        import anndata as ad

        import senca
        import senca.model
    with stages("read"):
        sections = [ad.read_h5ad(p) for p in sources]
        source = senca.pp.concat_sections(sections)
        del sections
        source.obs["cancer"] = _cancer(source)
    with stages("setup"):
        senca.model.SpaCRD.setup_anndata(source, labels_key="cancer", sample_key="section", image_key="X_histology")
    with stages("model"):
        model = senca.model.SpaCRD(source)
    with stages("train"):
        model.train(seed=seed, enable_progress_bar=False)
    with stages("read target"):
        tgt = ad.read_h5ad(target)
    with stages("predict"):
        model.predict(tgt)
    from sklearn.metrics import roc_auc_score

    return {
        "n_source": source.n_obs,
        "n_target": tgt.n_obs,
        "n_genes_used": len(model.genes),
        "stages": stages.close(),
        "auc": round(float(roc_auc_score(_cancer(tgt), tgt.obs["spacrd_score"])), 4),
    }


def _cancer(adata) -> np.ndarray:
    """The synthetic "cancer": regions of expression programmes 0 and 1 (two of the six)."""
    return np.asarray(adata.obs["expression_program"].astype(int).isin([0, 1]))


def ddp(path: str, devices: int, train_batches: int, seed: int = 0) -> dict:
    """SENCA's training minibatches on ``devices`` CPU processes (Lightning DDP, forked), ``train_batches`` each."""
    import anndata as ad

    import senca
    import senca.model

    adata = ad.read_h5ad(path)
    senca.model.SENCA.setup_anndata(adata, image_key="X_histology")
    model = senca.model.SENCA(adata)
    kw = {"strategy": "ddp_notebook", "devices": devices, "accelerator": "cpu"} if devices > 1 else {}
    t0 = time.perf_counter()
    res = _limited_training(model, adata.n_obs, train_batches, seed, **kw)
    wall = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    spots = devices * res["batches_timed"] * 128
    return {
        **res,
        "devices": devices,
        "train_wall_s": round(wall, 2),
        "spots_per_s": round(spots / wall, 1),
        "step_spots_per_s": round(devices * 128 / res["step_s"], 1),
        "peak_gb_main": round(own, 2),
        "peak_gb_worker": round(kids, 2),
    }


def features(n_spots: int, seed: int = 0) -> dict:
    import senca

    t0 = time.perf_counter()
    adata = senca.datasets.synthetic(n_spots=n_spots, n_genes=20, n_regions=N_REGIONS, image=True, seed=seed)
    t_gen = time.perf_counter() - t0
    img = next(iter(adata.uns["spatial"].values()))["images"]["hires"]
    t1 = time.perf_counter()
    senca.im.extract_features(adata, method="stats", key_added="X_he", progress=False)
    wall = time.perf_counter() - t1
    return {
        "n_obs": adata.n_obs,
        "image_shape": list(img.shape),
        "image_mpx": round(img.shape[0] * img.shape[1] / 1e6, 1),
        "generate_s": round(t_gen, 2),
        "wall_s": round(wall, 2),
        "spots_per_s": round(adata.n_obs / wall, 1),
        "n_features": int(adata.obsm["X_he"].shape[1]),
    }


# ----------------------------------------------------------------------------------------------------- summaries
def stage(row: dict, name: str) -> dict | None:
    """The record of stage ``name`` of a ``senca``/``spacrd`` result."""
    return next((s for s in row.get("stages", []) if s["stage"] == name), None)


def train_seconds(fit: dict) -> tuple[float, bool]:
    """Seconds of ``train()``: measured, or the default schedule extrapolated from timed minibatches."""
    if fit.get("train"):
        return float(fit["train"]["default_s_est"]), True
    return float(stage(fit, "train")["s"]), False


def total_seconds(fit: dict) -> tuple[float, bool]:
    """Read to regions (import and simulation excluded), with ``train()`` as :func:`train_seconds`."""
    t, est = train_seconds(fit)
    return t + sum(stage(fit, s)["s"] for s in STAGES if s != "train"), est


def peak_gb(fit: dict, names=STAGES) -> float:
    return max(stage(fit, s)["peak_gb"] for s in names if stage(fit, s) is not None)


def exponent(n, t) -> float | None:
    n, t = np.asarray(n, float), np.asarray(t, float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(n[ok]), np.log(t[ok]), 1)[0])


# ----------------------------------------------------------------------------------------------------- driver
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="300 and 1,000 spots, 200 genes (CI smoke test)")
    p.add_argument("--sizes", type=int, nargs="*", default=None, help="spots (2,000 genes each)")
    p.add_argument("--no-extra", action="store_true", help="skip 100k spots x 5,000 genes")
    p.add_argument(
        "--train-full-max",
        type=int,
        default=None,
        help="largest size whose train() runs its whole default schedule (default: every size); above "
        "it, --train-batches minibatches are timed and the schedule extrapolated",
    )
    p.add_argument("--train-batches", type=int, default=60)
    p.add_argument("--spacrd", action="store_true", help="also SpaCRD: train on 4 x 100k spots, predict 500k")
    p.add_argument("--ddp", action="store_true", help="also SENCA training on 2 DDP processes at the largest size")
    p.add_argument("--feature-spots", type=int, default=10_000, help="spots of the synthetic image for throughput")
    p.add_argument("--results", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)

    if args.quick:
        runs = [(300, 200), (1_000, 200)]
    else:
        runs = [(n, N_GENES) for n in (args.sizes or SIZES)] + ([] if args.no_extra else EXTRA)
    results = Path(args.results) if args.results else RESULTS
    WORK.mkdir(parents=True, exist_ok=True)
    name = "scaling_quick" if args.quick else "scaling"
    partial = results / f"{name}.partial.json"
    out = {
        "date": now(),
        "machine": machine(),
        "versions": versions(),
        "quick": args.quick,
        "depth": DEPTH,
        "n_histology": N_HIST,
        "rows": [],
        "command": " ".join(["python -m benchmarks.scaling", *(sys.argv[1:] if argv is None else argv)]),
    }
    keep = set()  # files the optional parts read again
    if args.spacrd or args.ddp:
        keep.add(_work_file(max(n for n, _ in runs), N_GENES))
    for n, genes in runs:
        path = _work_file(n, genes)
        gen = run_isolated(
            "benchmarks.scaling:generate", {"n_spots": n, "n_genes": genes, "path": path}, timeout=args.timeout
        )
        print(
            f"[scaling] generate {n} x {genes}: {gen.get('error') or (gen['wall_s'], gen['peak_rss_mb'])}", flush=True
        )
        row = {"n_spots": n, "n_genes": genes, "generate": gen}
        if "error" not in gen:
            limited = args.train_full_max is not None and n > args.train_full_max
            kw = {"path": path, "train_batches": args.train_batches if limited else None}
            row["senca"] = run_isolated("benchmarks.scaling:senca_path", kw, timeout=args.timeout)
            f = row["senca"]
            print(
                f"[scaling] senca {n} x {genes}: "
                f"{f.get('error') or [(s['stage'], s['s'], s['peak_gb']) for s in f['stages']]}",
                flush=True,
            )
        out["rows"].append(row)
        if path not in keep:
            Path(path).unlink(missing_ok=True)
        dump_json(out, partial)
    if args.spacrd and not args.quick:
        out["spacrd"] = _run_spacrd(args, max(n for n, _ in runs))
        dump_json(out, partial)
    if args.ddp and not args.quick:
        big = _work_file(max(n for n, _ in runs), N_GENES)
        out["ddp"] = [
            run_isolated(
                "benchmarks.scaling:ddp",
                {"path": big, "devices": d, "train_batches": args.train_batches},
                timeout=args.timeout,
            )
            for d in (1, 2)
        ]
        print(f"[scaling] ddp: {[r.get('error') or (r['devices'], r['spots_per_s']) for r in out['ddp']]}", flush=True)
    for path in keep:
        Path(path).unlink(missing_ok=True)
    feat = run_isolated(
        "benchmarks.scaling:features", {"n_spots": 300 if args.quick else args.feature_spots}, timeout=args.timeout
    )
    print(f"[scaling] features: {feat.get('error') or (feat['spots_per_s'], feat['peak_rss_mb'])}", flush=True)
    out["features"] = feat
    out["exponent_total"] = _exponent_of(out["rows"])
    dump_json(out, results / f"{name}.json")
    partial.unlink(missing_ok=True)
    (results / f"{name}.md").write_text(markdown(out))
    if not args.quick and args.results is None:
        figure(out)
        from benchmarks.report import assemble

        assemble()
    return 0


def _work_file(n: int, genes: int, seed: int = 0) -> str:
    return str(WORK / f"synthetic_{n}x{genes}_s{seed}.h5ad")


def _run_spacrd(args, n_target: int) -> dict:
    sources = []
    gens = []
    for i in range(4):
        path = _work_file(100_000, N_GENES, seed=i + 1)
        gens.append(
            run_isolated(
                "benchmarks.scaling:generate",
                {"n_spots": 100_000, "path": path, "seed": i + 1, "library_id": f"source{i + 1}"},
                timeout=args.timeout,
            )
        )
        sources.append(path)
    res = {"generate": gens}
    if all("error" not in g for g in gens):
        res.update(
            run_isolated(
                "benchmarks.scaling:spacrd_path",
                {"sources": sources, "target": _work_file(n_target, N_GENES)},
                timeout=args.timeout,
            )
        )
    for path in sources:
        Path(path).unlink(missing_ok=True)
    print(
        f"[scaling] spacrd: {res.get('error') or [(s['stage'], s['s'], s['peak_gb']) for s in res['stages']]}",
        flush=True,
    )
    return res


def _ok(row: dict) -> bool:
    return "senca" in row and "error" not in row["senca"]


def _exponent_of(rows: list[dict]) -> float | None:
    """Fitted exponent of the whole path's time against spots, from 10,000 spots on, at the default gene panel."""
    pts = [
        (r["n_spots"], total_seconds(r["senca"])[0])
        for r in rows
        if _ok(r) and r["n_genes"] == N_GENES and r["n_spots"] >= 10_000
    ]
    return exponent(*zip(*pts)) if len(pts) >= 2 else None


def _gb(x: float) -> str:
    return f"{x:.2f}"


def markdown(out: dict) -> str:
    cmd = out.get("command") or "python -m benchmarks.scaling"
    lines = [
        "## Scaling with the number of spots",
        "",
        f"Command: `{cmd}`. Synthetic Visium HD-like sections (`senca.datasets.synthetic`: hex grid, 6 regions, "
        f"{out['depth']:.0f} UMIs per spot on average, {out['n_histology']} histology features), one CPU thread. "
        "Each size runs in its own process, through the whole default path a user runs: read the `.h5ad` (counts in "
        '`X`), `SENCA.setup_anndata(adata, image_key="X_histology")` (neighbour index; above 3,000 genes the '
        "selection of 3,000 inside it), `SENCA(adata)`, `model.train()` with its defaults, "
        "`get_latent_representation()` and `senca.tl.regions(adata, n_regions=6)`. *Total*: read to regions (the "
        "import of `senca.model`, about 10 s once per process, and the simulation are not counted). *Est.*: "
        "`train()` ran only its first minibatches and its default schedule was extrapolated from their times. "
        "*ARI*: regions against the simulated ones (a check that the path works, not a benchmark of quality).",
        "",
        "Time per stage (seconds) and the whole path:",
        "",
        "| spots | genes (used) | median UMIs | simulate | import | read | setup | model | train | latent | regions "
        "| **total** | µs / spot | ARI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        g, f = r["generate"], r.get("senca", {})
        if "error" in g or "error" in f or not f:
            err = g.get("error") or f.get("error") or "not run"
            lines.append(f"| {r['n_spots']:,} | {r['n_genes']:,} | failed: {err[:200]} |||||||||||")
            continue
        t_train, est = train_seconds(f)
        total, _ = total_seconds(f)
        train = f"{t_train:.0f} (est.)" if est else f"{t_train:.1f}"
        cells = [f"{stage(f, s)['s']:.1f}" for s in ("import", "read", "setup", "model")]
        lines.append(
            f"| {r['n_spots']:,} | {r['n_genes']:,} ({f['n_genes_used']:,}) | {g['median_umis']:.0f} | "
            f"{g['wall_s']:.1f} | {' | '.join(cells)} | {train} | {stage(f, 'latent')['s']:.1f} | "
            f"{stage(f, 'regions')['s']:.1f} | **{total:.0f}**{' (est.)' if est else ''} | "
            f"{1e6 * total / r['n_spots']:.0f} | {f['ari']:.3f} |"
        )
    lines += [
        "",
        "Peak resident memory per stage (GB, the whole process; the simulator in its own process):",
        "",
        "| spots | genes | simulate | read | setup | model | train | latent | regions | **peak** |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        if not _ok(r) or "error" in r["generate"]:
            continue
        f = r["senca"]
        cells = " | ".join(_gb(stage(f, s)["peak_gb"]) for s in STAGES)
        lines.append(
            f"| {r['n_spots']:,} | {r['n_genes']:,} | {r['generate']['peak_rss_mb'] / 1024:.2f} | {cells} | "
            f"**{_gb(peak_gb(f))}** |"
        )
    big = [r for r in out["rows"] if _ok(r) and r["n_spots"] >= 500_000 and r["n_genes"] == N_GENES]
    b = out.get("exponent_total")
    lines.append("")
    if big:
        f = big[0]["senca"]
        total, est = total_seconds(f)
        t_ok, m_ok = total <= TARGET_S, peak_gb(f) <= TARGET_GB
        how = ", train() extrapolated" if est else ""
        lines.append(
            f"Targets at {big[0]['n_spots']:,} spots × {N_GENES:,} genes: whole default path "
            f"≤ {TARGET_S / 60:.0f} min — {'met' if t_ok else 'missed'} ({total / 60:.1f} min{how}); peak RSS "
            f"≤ {TARGET_GB:.0f} GB — {'met' if m_ok else 'missed'} ({peak_gb(f):.2f} GB)."
        )
    if b is not None:
        lines.append(
            f"Fitted exponent of the whole path's time against spots from 10,000 on (least squares on "
            f"log-log; 1 = linear, target ≤ {TARGET_EXPONENT}): **{b:.2f}**."
        )
    big_train = [r for r in out["rows"] if _ok(r) and r["senca"].get("train")]
    for r in big_train:
        tr = r["senca"]["train"]
        lines.append(
            f"At {r['n_spots']:,} spots, `train()` was timed on {tr['batches_timed']} minibatches of 128 spots: "
            f"{1000 * tr['step_s']:.0f} ms per step, {tr['batches_per_epoch']:,} steps per epoch, "
            f"{tr['default_epochs']} epochs by default: about {tr['default_s_est'] / 60:.0f} min."
        )
    sp = out.get("spacrd")
    if sp:
        lines += [
            "",
            "SpaCRD, trained on four 100,000-spot sections and predicting a "
            f"{sp.get('n_target', 0):,}-spot section (`SpaCRD.setup_anndata(source, labels_key=..., "
            'sample_key="section", image_key="X_histology")`, `SpaCRD(source)`, `train()`, '
            "`predict(target)`, defaults):",
            "",
        ]
        if "error" in sp:
            lines.append(f"failed: {sp['error'][:400]}")
        else:
            lines += [
                "| stage | " + " | ".join(SPACRD_STAGES) + " | **total** |",
                "|---|" + "---|" * (len(SPACRD_STAGES) + 1),
            ]
            tot = sum(stage(sp, s)["s"] for s in SPACRD_STAGES)
            lines.append(
                "| seconds | " + " | ".join(f"{stage(sp, s)['s']:.1f}" for s in SPACRD_STAGES) + f" | **{tot:.0f}** |"
            )
            lines.append(
                "| peak RSS (GB) | "
                + " | ".join(_gb(stage(sp, s)["peak_gb"]) for s in SPACRD_STAGES)
                + f" | **{_gb(peak_gb(sp, SPACRD_STAGES))}** |"
            )
            pk = peak_gb(sp, SPACRD_STAGES)
            lines += [
                "",
                f"Targets: ≤ {TARGET_S / 60:.0f} min — {'met' if tot <= TARGET_S else 'missed'} "
                f"({tot / 60:.1f} min); ≤ {TARGET_GB:.0f} GB — {'met' if pk <= TARGET_GB else 'missed'} "
                f"({pk:.2f} GB). Target AUC against the simulated cancer regions: {sp['auc']:.3f}.",
            ]
    dd = out.get("ddp")
    if dd:
        ok = [d for d in dd if "error" not in d]
        lines.append("")
        if len(ok) == 2:
            one, two = ok
            lines.append(
                f'DDP (Lightning, CPU, gloo, `strategy="ddp_notebook"`), {one["batches_timed"]} timed minibatches '
                f"per process at {big[0]['n_spots'] if big else 0:,} spots: 1 process {one['step_spots_per_s']:.0f} "
                f"spots/s, 2 processes {two['step_spots_per_s']:.0f} spots/s (training steps only, each process on "
                f"one thread of the 2 shared cores); peak RSS {one['peak_gb_main']:.2f} GB in one process, "
                f"{two['peak_gb_main']:.2f} GB (main) and {two['peak_gb_worker']:.2f} GB (worker) with two."
            )
        else:
            lines.append(f"DDP: failed ({'; '.join(d.get('error', '')[:200] for d in dd)}).")
    feat = out.get("features", {})
    if "error" in feat:
        lines += ["", f"Histology features: failed ({feat['error'][:300]})."]
    elif feat:
        lines += [
            "",
            f"Histology features (`senca.im.extract_features(method='stats')`): {feat['n_obs']:,} spots "
            f"on a {feat['image_shape'][1]}×{feat['image_shape'][0]} px synthetic H&E-like image "
            f"({feat['image_mpx']} Mpx) in {feat['wall_s']:.1f} s = **{feat['spots_per_s']:,.0f} spots/s**, "
            f"peak RSS {feat['peak_rss_mb'] / 1024:.2f} GB.",
        ]
    lines += ["", "Figure: `figures/scaling.png`.", ""]
    return "\n".join(lines)


def figure(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in out["rows"] if _ok(r) and r["n_genes"] == N_GENES]
    if not ok:
        return
    n = np.array([r["n_spots"] for r in ok], float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for s in STAGES:
        t = [train_seconds(r["senca"])[0] if s == "train" else stage(r["senca"], s)["s"] for r in ok]
        ax.loglog(n, np.maximum(t, 1e-2), "o-", ms=3, lw=1, label=s)
    tot = np.array([total_seconds(r["senca"])[0] for r in ok])
    ax.loglog(n, tot, "ko-", lw=2, label="total")
    ax.axhline(TARGET_S, color="r", ls=":", lw=1, label="10 min")
    ax.set_xlabel("spots")
    ax.set_ylabel("seconds (1 CPU thread)")
    ax.set_title("default path, stage by stage")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    ax.semilogx(n, 1e6 * tot / n, "ko-")
    b = out.get("exponent_total")
    ax.set_title(f"cost per spot (exponent {b:.2f} from 10k)" if b is not None else "cost per spot")
    ax.set_xlabel("spots")
    ax.set_ylabel("µs per spot, whole path")
    ax.set_ylim(bottom=0)
    ax = axes[2]
    for s in STAGES:
        ax.semilogx(n, [stage(r["senca"], s)["peak_gb"] for r in ok], "o-", ms=3, lw=1, label=s)
    ax.semilogx(n, [r["generate"]["peak_rss_mb"] / 1024 for r in ok], "s--", ms=3, lw=1, label="simulator")
    ax.axhline(TARGET_GB, color="r", ls=":", lw=1, label="8 GB")
    ax.set_xlabel("spots")
    ax.set_ylabel("peak RSS (GB)")
    ax.set_title("peak memory per stage")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "scaling.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
