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
   ``senca.tl.regions(adata, n_regions=6)``.
3. ``spacrd``: SpaCRD trained on four 100k-spot sections and predicting a 500k-spot section (``--spacrd``), every
   stage in full: ``train()`` runs its default schedule (epochs bounded to 4,096 spots each, see ``SpaCRD.train``).
   Its five sections share their programmes (``programme_seed=0``), so the target's AUC measures a transfer.
   ``--only-spacrd`` runs this part alone and merges it into the existing ``scaling.json`` / ``scaling.md``, keeping
   the SENCA rows measured before.
4. ``ddp``: SpaCRD's training minibatches on 1 and on 2 processes (Lightning DDP on the CPU, gloo; ``--ddp``), on the
   largest section (SENCA's fine-tuning is not divided between processes; see the docs' scaling page).
5. ``features``: ``senca.im.extract_features(method="stats")`` throughput on a synthetic H&E-like image.

Peak RSS of a stage is the highest resident memory of the process while the stage ran (sampled every 10 ms, and
the kernel's own high-water mark where the stage set it). Threads: one (the machine has 2 shared cores).

Usage::

    python -m benchmarks.scaling                      # SENCA at every size (about 20 min)
    python -m benchmarks.scaling --spacrd --ddp       # and SpaCRD, DDP (about 30 min more)
    python -m benchmarks.scaling --only-spacrd        # SpaCRD alone, merged into the existing results (15 min)
    python -m benchmarks.scaling --quick              # 300 and 1,000 spots (CI smoke test)
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import tempfile
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


def _spacrd_batch_size() -> int:
    """SpaCRD.train's default spots per minibatch (the schedule's unit), read from its signature."""
    import inspect

    from senca.model import SpaCRD

    return int(inspect.signature(SpaCRD.train).parameters["batch_size"].default)


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


def _synthetic_section(
    n_spots: int, n_genes: int, seed: int, library_id: str = "synthetic", programme_seed: int | None = None
):
    import senca

    adata = senca.datasets.synthetic(
        n_spots=n_spots,
        n_genes=n_genes,
        n_regions=N_REGIONS,
        n_histology=N_HIST,
        mean_library_size=DEPTH,
        seed=seed,
        library_id=library_id,
        programme_seed=programme_seed,
    )
    del adata.layers["counts"]  # as a reader gives it: the counts in X only
    return adata


# ----------------------------------------------------------------------------------------------------- children
def generate(
    n_spots: int,
    path: str,
    n_genes: int = N_GENES,
    seed: int = 0,
    library_id: str = "synthetic",
    programme_seed: int | None = None,
) -> dict:
    """Simulate one section and write it (time and memory of the simulator alone)."""
    t0 = time.perf_counter()
    adata = _synthetic_section(n_spots, n_genes, seed, library_id, programme_seed)
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


def senca_path(path: str, seed: int = 0) -> dict:
    """The default SENCA path, stage by stage."""
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
    with stages("train"):
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
        "passes": (getattr(model, "selection_", None) or {}).get("passes"),
        "stages": stages.close(),
        "ari": round(float(adjusted_rand_score(adata.obs["region"], adata.obs["senca_region"])), 4),
    }


def _batch_timer(path: str | None = None):
    """A Lightning callback timing every training minibatch (by the module's ``stage``, SpaCRD's) and every epoch.

    With ``path``, the first process also writes its times there at the end of every epoch (DDP: the callback runs in
    worker processes, one Lightning fit per SpaCRD stage).
    """
    from lightning.pytorch.callbacks import Callback

    class Timer(Callback):
        def __init__(self):
            self.times: dict[str, list[float]] = {}
            self._t = self._e = 0.0

        def on_train_batch_start(self, trainer, pl_module, *args):
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, *args):
            stage = str(getattr(pl_module.module, "stage", "train"))
            self.times.setdefault(stage, []).append(time.perf_counter() - self._t)

        def on_train_epoch_start(self, trainer, pl_module):
            self._e = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.times.setdefault("epoch", []).append(time.perf_counter() - self._e)
            if path is not None and trainer.global_rank == 0:
                merged = json.loads(Path(path).read_text()) if Path(path).exists() else {}
                merged.update(self.times)  # one Lightning fit (and process) per SpaCRD stage: keep the earlier ones
                Path(path).write_text(json.dumps(merged))

    return Timer()


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
        timer = _batch_timer()
        model.train(seed=seed, enable_progress_bar=False, callbacks=[timer])
        per_epoch = int(model.trainer.num_training_batches)
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
        "train": _spacrd_schedule(timer.times, source.n_obs, per_epoch),
        "auc": round(float(roc_auc_score(_cancer(tgt), tgt.obs["spacrd_score"])), 4),
    }


def _spacrd_schedule(times: dict[str, list[float]], n_obs: int, per_epoch: int) -> dict:
    """The default schedule as it ran: minibatches per epoch (bounded) and per stage, and their mean time."""
    out: dict = {
        "full_epoch_batches": int(np.ceil(n_obs / _spacrd_batch_size())),
        "steps_per_epoch": per_epoch,
        "batch_size": _spacrd_batch_size(),
        "epochs": len(times.get("epoch", [])),
    }
    for name in ("align", "detect"):
        t = times.get(name, [])
        out[f"{name}_batches"] = len(t)
        out[f"{name}_step_s"] = round(float(np.mean(t)), 4) if t else 0.0
    return out


def _cancer(adata) -> np.ndarray:
    """The synthetic "cancer": regions of expression programmes 0 and 1 (two of the six)."""
    return np.asarray(adata.obs["expression_program"].astype(int).isin([0, 1]))


def ddp(path: str, devices: int, train_batches: int = 60, seed: int = 0) -> dict:
    """SpaCRD's training minibatches on ``devices`` CPU processes (Lightning DDP, forked when more than one).

    The section at ``path`` is the labelled source (its simulated cancer regions); each stage trains
    ``train_batches`` minibatches per process. SpaCRD is the model whose training DDP divides: each process takes its
    own share of the spots.
    """
    import anndata as ad

    import senca
    import senca.model

    adata = ad.read_h5ad(path)
    adata.obs["cancer"] = _cancer(adata)
    senca.model.SpaCRD.setup_anndata(adata, labels_key="cancer", image_key="X_histology")
    model = senca.model.SpaCRD(adata)
    kw = {"strategy": "ddp_notebook", "devices": devices} if devices > 1 else {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "times.json"
        t0 = time.perf_counter()
        model.train(
            max_epochs=1,
            align_epochs=1,
            seed=seed,
            accelerator="cpu",
            enable_progress_bar=False,
            limit_train_batches=int(train_batches),
            callbacks=[_batch_timer(str(log))],
            **kw,
        )
        wall = time.perf_counter() - t0
        times = json.loads(log.read_text()) if log.exists() else {}
    steps = {k: float(np.mean(v[2:] if len(v) > 4 else v)) for k, v in times.items() if k != "epoch" and v}
    spots = {k: devices * _spacrd_batch_size() / v for k, v in steps.items()}
    return {
        "devices": devices,
        "n_obs": adata.n_obs,
        "train_s": round(wall, 2),
        "step_s": {k: round(v, 4) for k, v in steps.items()},
        "spots_per_s": {k: round(v, 1) for k, v in spots.items()},
        "peak_gb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_gb_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
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


def total_seconds(fit: dict, names=STAGES) -> float:
    """Read to regions (import and simulation excluded)."""
    return float(sum(stage(fit, s)["s"] for s in names))


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
    p.add_argument("--spacrd", action="store_true", help="also SpaCRD: train on 4 x 100k spots, predict the largest")
    p.add_argument("--only-spacrd", action="store_true", help="SpaCRD alone, merged into the existing scaling.json")
    p.add_argument("--note", default="", help="a remark on the SpaCRD run, printed with it (e.g. machine load)")
    p.add_argument("--train-batches", type=int, default=60, help="minibatches per process timed by --ddp")
    p.add_argument("--ddp", action="store_true", help="also SpaCRD's training on 1 and 2 DDP processes")
    p.add_argument("--feature-spots", type=int, default=10_000, help="spots of the synthetic image for throughput")
    p.add_argument("--results", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)
    if args.only_spacrd:
        return _only_spacrd(args)

    runs = [(300, 200), (1_000, 200)] if args.quick else [(n, N_GENES) for n in (args.sizes or SIZES)]
    if not (args.quick or args.no_extra):
        runs += EXTRA
    results = Path(args.results) if args.results else RESULTS
    WORK.mkdir(parents=True, exist_ok=True)
    name = "scaling_quick" if args.quick else "scaling"
    partial = results / f"{name}.partial.json"
    command = " ".join(["python -m benchmarks.scaling", *(sys.argv[1:] if argv is None else argv)])
    out = {
        "date": now(),
        "machine": machine(),
        "versions": versions(),
        "quick": args.quick,
        "depth": DEPTH,
        "n_histology": N_HIST,
        "rows": [],
        "command": command,
    }
    largest = _work_file(max(n for n, _ in runs), N_GENES)
    keep = {largest} if args.ddp and not args.quick else set()  # read again below
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
            f = row["senca"] = run_isolated("benchmarks.scaling:senca_path", {"path": path}, timeout=args.timeout)
            info = f.get("error") or [(s["stage"], s["s"], s["peak_gb"]) for s in f["stages"]]
            print(f"[scaling] senca {n} x {genes}: {info}", flush=True)
        out["rows"].append(row)
        if path not in keep:
            Path(path).unlink(missing_ok=True)
        dump_json(out, partial)
    if args.spacrd:
        out["spacrd"] = _run_spacrd(args)
        dump_json(out, partial)
    if keep and args.ddp:
        kw = {"path": largest, "train_batches": args.train_batches}
        out["ddp"] = [
            run_isolated("benchmarks.scaling:ddp", {**kw, "devices": d}, timeout=args.timeout) for d in (1, 2)
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


def _work_file(n: int, genes: int) -> str:
    return str(WORK / f"synthetic_{n}x{genes}_s0.h5ad")


def _run_spacrd(args) -> dict:
    """Four 100,000-spot sources and a target of the largest size, sharing their programmes (one tissue type)."""
    WORK.mkdir(parents=True, exist_ok=True)
    n_target = 1_000 if args.quick else max(args.sizes or SIZES)
    n_source = 300 if args.quick else 100_000
    paths, gens = [], []
    for i in range(5):  # 0: the target, 1-4: the sources
        n = n_target if i == 0 else n_source
        path = str(WORK / f"spacrd_{n}x{N_GENES}_s{i}.h5ad")
        kw = {"n_spots": n, "path": path, "seed": i, "library_id": "target" if i == 0 else f"source{i}"}
        gens.append(run_isolated("benchmarks.scaling:generate", {**kw, "programme_seed": 0}, timeout=args.timeout))
        paths.append(path)
    res: dict = {"generate": gens}
    if all("error" not in g for g in gens):
        kw = {"sources": paths[1:], "target": paths[0]}
        res.update(run_isolated("benchmarks.scaling:spacrd_path", kw, timeout=args.timeout))
    for path in paths:
        Path(path).unlink(missing_ok=True)
    info = res.get("error") or [(s["stage"], s["s"], s["peak_gb"]) for s in res.get("stages", [])]
    print(f"[scaling] spacrd: {info}", flush=True)
    return res


def _only_spacrd(args) -> int:
    """The SpaCRD part alone, merged into the existing ``scaling.json`` (its SENCA rows kept)."""
    results = Path(args.results) if args.results else RESULTS
    out = json.loads((results / "scaling.json").read_text())
    out["spacrd"] = _run_spacrd(args)
    argv = [a for a in sys.argv[1:] if not a.startswith("--note")]
    argv = [a for a in argv if a != args.note or not args.note]  # the note is printed on its own
    out["spacrd"].update(command=shlex.join(["python", "-m", "benchmarks.scaling", *argv]), date=now())
    out["spacrd"].update(machine=machine(), note=args.note)
    dump_json(out, results / "scaling.json")
    (results / "scaling.md").write_text(markdown(out))
    if args.results is None:
        from benchmarks.report import assemble

        assemble()
    return 0


def _ok(row: dict) -> bool:
    return "senca" in row and "error" not in row["senca"]


def _exponent_of(rows: list[dict]) -> float | None:
    """Fitted exponent of the whole path's time against spots, from 10,000 spots on, at the default gene panel."""
    pts = [
        (r["n_spots"], total_seconds(r["senca"]))
        for r in rows
        if _ok(r) and r["n_genes"] == N_GENES and r["n_spots"] >= 10_000
    ]
    return exponent(*zip(*pts, strict=True)) if len(pts) >= 2 else None


def markdown(out: dict) -> str:
    cmd = out.get("command") or "python -m benchmarks.scaling"
    lines = [
        "## Scaling with the number of spots",
        "",
        f"Command: `{cmd}`. Synthetic Visium HD-like sections (`senca.datasets.synthetic`: hex grid, 6 regions, "
        f"{out['depth']:.0f} UMIs per spot on average, {out['n_histology']} histology features), one CPU thread. "
        "Each size runs in its own process, through the whole default path a user runs: read the `.h5ad` (counts in "
        '`X`), `SENCA.setup_anndata(adata, image_key="X_histology")` (neighbour index; above 3,000 genes the '
        "selection of 3,000 inside it), `SENCA(adata)` (principal axes, kernel statistics), `model.train()` with its "
        "defaults (the number of attention passes, by count splitting), `get_latent_representation()` and "
        "`senca.tl.regions(adata, n_regions=6)`. *Total*: read to regions (the import of `senca.model`, about 10 s "
        "once per process, and the simulation are not counted). *ARI*: regions against the simulated ones (a check "
        "that the path works, not a measure of quality).",
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
        total = total_seconds(f)
        cells = " | ".join(f"{stage(f, s)['s']:.1f}" for s in ("import", *STAGES))
        lines.append(
            f"| {r['n_spots']:,} | {r['n_genes']:,} ({f['n_genes_used']:,}) | {g['median_umis']:.0f} | "
            f"{g['wall_s']:.1f} | {cells} | **{total:.0f}** | {1e6 * total / r['n_spots']:.0f} | {f['ari']:.3f} |"
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
        cells = " | ".join(f"{stage(f, s)['peak_gb']:.2f}" for s in STAGES)
        lines.append(
            f"| {r['n_spots']:,} | {r['n_genes']:,} | {r['generate']['peak_rss_mb'] / 1024:.2f} | {cells} | "
            f"**{peak_gb(f):.2f}** |"
        )
    big = [r for r in out["rows"] if _ok(r) and r["n_spots"] >= 500_000 and r["n_genes"] == N_GENES]
    lines.append("")
    if big:
        f = big[0]["senca"]
        total, pk = total_seconds(f), peak_gb(f)
        lines.append(
            f"Targets at {big[0]['n_spots']:,} spots × {N_GENES:,} genes: whole default path ≤ {TARGET_S / 60:.0f} "
            f"min — {'met' if total <= TARGET_S else 'missed'} ({total / 60:.1f} min); peak RSS ≤ {TARGET_GB:.0f} GB "
            f"— {'met' if pk <= TARGET_GB else 'missed'} ({pk:.2f} GB)."
        )
    b = out.get("exponent_total")
    if b is not None:
        verdict = "met" if b <= TARGET_EXPONENT else "missed"
        lines.append(
            f"Fitted exponent of the whole path's time against spots from 10,000 on (least squares on "
            f"log-log; 1 = linear): **{b:.2f}** (target ≤ {TARGET_EXPONENT}: {verdict})."
        )
    lines += _spacrd_markdown(out.get("spacrd"))
    lines += _ddp_markdown(out.get("ddp"))
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


def _spacrd_markdown(sp: dict | None) -> list[str]:
    if not sp:
        return []
    lines = [
        "",
        "SpaCRD trained on four 100,000-spot sections and predicting a "
        f"{sp.get('n_target', 0):,}-spot section, with its defaults (`SpaCRD.setup_anndata(source, "
        'labels_key=..., sample_key="section", image_key="X_histology")`, `SpaCRD(source)`, `train()`, '
        "`predict(target)`):",
        "",
    ]
    if "error" in sp:
        return [*lines, f"failed: {sp['error'][:400]}"]
    tr = sp["train"]
    cells = [f"{stage(sp, s)['s']:.1f}" for s in SPACRD_STAGES]
    total = total_seconds(sp, SPACRD_STAGES)
    pk = peak_gb(sp, SPACRD_STAGES)
    lines += [
        "| | " + " | ".join(SPACRD_STAGES) + " | **total** |",
        "|---|" + "---|" * (len(SPACRD_STAGES) + 1),
        "| time (s) | " + " | ".join(cells) + f" | **{total / 60:.1f} min** |",
        "| peak RSS (GB) | "
        + " | ".join(f"{stage(sp, s)['peak_gb']:.2f}" for s in SPACRD_STAGES)
        + f" | **{pk:.2f}** |",
        "",
        f"*Train*: the default schedule in full, its epochs bounded to {tr['steps_per_epoch']} minibatches of "
        f"{tr['batch_size']} spots (a full epoch of this source: {tr['full_epoch_batches']:,}): "
        f"{tr['align_batches']:,} alignment and {tr['detect_batches']:,} detection minibatches "
        f"({1000 * tr['align_step_s']:.0f} and {1000 * tr['detect_step_s']:.0f} ms each). Every stage ran in full. "
        f"Targets (≤ {TARGET_S / 60:.0f} min, ≤ {TARGET_GB:.0f} GB): time "
        f"{'met' if total <= TARGET_S else 'missed'}, memory {'met' if pk <= TARGET_GB else 'missed'}. Target AUC "
        f"against the simulated cancer regions (expression programmes 0 and 1): {sp['auc']:.3f} (the five "
        "sections share their programmes, `programme_seed=0`, and differ in layout, depth and noise).",
    ]
    if sp.get("command"):
        note = f"; {sp['note']}" if sp.get("note") else ""
        lines += ["", f"SpaCRD part: `{sp['command']}`, {sp.get('date', '')}{note}."]
    return lines


def _ddp_markdown(dd: list[dict] | None) -> list[str]:
    if not dd:
        return []
    ok = [d for d in dd if "error" not in d]
    if len(ok) != 2:
        return ["", f"DDP: failed ({'; '.join(d.get('error', '')[:200] for d in dd)})."]
    one, two = ok
    rates = ", ".join(
        f"{name} {one['spots_per_s'][name]:,.0f} → {two['spots_per_s'][name]:,.0f} spots/s"
        for name in ("align", "detect")
        if name in one["spots_per_s"] and name in two["spots_per_s"]
    )
    return [
        "",
        f'DDP (Lightning, CPU, gloo, `strategy="ddp_notebook"`): SpaCRD trained on the {one["n_obs"]:,}-spot '
        f"section, its first minibatches of each stage on 1 and on 2 processes (one thread each, the 2 shared "
        f"cores): {rates} (training steps of 64 spots per process). Peak RSS {one['peak_gb_main']:.2f} GB on 1 "
        f"process; {two['peak_gb_main']:.2f} GB (main) and {two['peak_gb_worker']:.2f} GB (largest worker) on 2.",
    ]


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
        ax.loglog(n, np.maximum([stage(r["senca"], s)["s"] for r in ok], 1e-2), "o-", ms=3, lw=1, label=s)
    tot = np.array([total_seconds(r["senca"]) for r in ok])
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
