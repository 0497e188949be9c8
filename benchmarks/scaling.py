"""Scaling of SENCA with the number of spots: time per epoch, fit time, peak memory, and histology throughput.

Synthetic Visium-like tissue from ``senca.datasets.synthetic`` (200 genes, 32 histology features, 6 regions) at
1k, 10k, 100k and 500k spots. Every measurement runs in its own process (honest peak RSS):

1. ``generate``: the simulator alone (time, peak RSS), writing the AnnData to ``benchmarks/_work/`` (git-ignored);
2. ``fit``: read that file, ``setup_anndata`` (expression + histology features + 6-NN index), ``SENCA(adata)``,
   ``train(seed=0)``: the whole default schedule (``max_epochs=None``, early stopping on) up to
   ``--default-fit-max`` spots, ``--max-epochs-large`` whole epochs above it (every minibatch of the epoch and the
   validation pass; ``--limit-batches N`` trains only the first N minibatches and extrapolates instead), epoch and
   minibatch times from a Lightning callback, then ``get_latent_representation`` (the default attention
   embedding); peak RSS of the whole process, and how many cores *other* processes used meanwhile (the machine is
   shared);
3. ``features``: ``senca.im.extract_features(method="stats")`` on a synthetic H&E-like image (spots per second).

The fitted exponent ``b`` of ``time per epoch ~ n_spots^b`` (least squares on log-log) should be close to 1 (linear).

Usage::

    python -m benchmarks.scaling            # 1k, 10k, 100k, 500k; one whole epoch above 10k (about 10 min)
    python -m benchmarks.scaling --default-fit-max 500000 --timeout 3600   # whole default schedule at every
                                            # size, as in the committed table (about 40 min on one core)
    python -m benchmarks.scaling --quick    # 300 and 1,000 spots, 1 epoch (CI smoke test)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._common import FIGURES, RESULTS, ROOT, dump_json, machine, now, run_isolated, versions

WORK = ROOT / "_work"
N_GENES, N_HIST, N_REGIONS = 200, 32, 6


# ----------------------------------------------------------------------------------------------------- children
def generate(n_spots: int, path: str, seed: int = 0) -> dict:
    import senca

    t0 = time.perf_counter()
    adata = senca.datasets.synthetic(
        n_spots=n_spots, n_genes=N_GENES, n_regions=N_REGIONS, n_histology=N_HIST, seed=seed
    )
    wall = time.perf_counter() - t0
    adata.write_h5ad(path)
    return {"wall_s": round(wall, 2), "n_obs": adata.n_obs, "nnz": int(adata.X.nnz)}


def fit(
    path: str, max_epochs: int | None = None, limit_batches: int | None = None, latent: bool = True, seed: int = 0
) -> dict:
    import anndata as ad
    from lightning.pytorch.callbacks import Callback

    import senca
    from senca.model._plan import default_max_epochs

    class Timer(Callback):
        def __init__(self):
            self.epochs, self.batches, self._te, self._tb = [], [], None, None

        def on_train_epoch_start(self, trainer, pl_module):
            self._te = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.epochs.append(time.perf_counter() - self._te)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._tb = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.batches.append(time.perf_counter() - self._tb)

    cpu0 = _cpu_seconds()
    t_read = time.perf_counter()
    adata = ad.read_h5ad(path)
    t0 = time.perf_counter()
    senca.model.SENCA.setup_anndata(adata, layer="counts", image_key="X_histology", spatial_key="spatial")
    model = senca.model.SENCA(adata)
    t_setup = time.perf_counter() - t0
    timer = Timer()
    kw = {}
    if limit_batches:
        kw = {"limit_train_batches": int(limit_batches), "limit_val_batches": max(1, int(limit_batches) // 10)}
    batch_size, train_size = 128, 0.9
    t1 = time.perf_counter()
    model.train(
        max_epochs=max_epochs,
        seed=seed,
        batch_size=batch_size,
        train_size=train_size,
        enable_progress_bar=False,
        callbacks=[timer],
        **kw,
    )
    t_train = time.perf_counter() - t1
    t_latent = None
    if latent:
        t2 = time.perf_counter()
        model.get_latent_representation()
        t_latent = time.perf_counter() - t2
    others = _others_cores(cpu0, time.perf_counter() - t_read)
    n_batches = int(np.ceil(train_size * adata.n_obs / batch_size))
    # time per epoch of training steps, from the per-batch times (the whole epoch when it ran in full)
    skip = 2 if len(timer.batches) > 10 else 0  # first batches include lazy initialisation
    per_batch = float(np.mean(timer.batches[skip:])) if timer.batches else float("nan")
    return {
        "n_obs": adata.n_obs,
        "read_s": round(t0 - t_read, 2),
        "setup_s": round(t_setup, 2),
        "train_s": round(t_train, 2),
        "latent_s": round(t_latent, 2) if t_latent is not None else None,
        "fit_s": round(t_setup + t_train + (t_latent or 0), 2),
        "epochs": len(timer.epochs),
        "default_epochs": default_max_epochs(adata.n_obs),
        "limit_batches": limit_batches,
        "batches_per_epoch": n_batches,
        "batches_timed": len(timer.batches),
        "batch_s_mean": round(per_batch, 4),
        "epoch_s": [round(t, 3) for t in timer.epochs],
        "epoch_s_measured": round(float(np.median(timer.epochs)), 3) if timer.epochs and not limit_batches else None,
        "epoch_s_median": round(per_batch * n_batches, 3),
        "default_schedule": max_epochs is None,
        "other_cores": others,
    }


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process), or ``None`` without psutil."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    t = psutil.cpu_times()
    busy = t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    own = psutil.Process().cpu_times()
    return busy, own.user + own.system


def _others_cores(start: tuple[float, float] | None, wall: float) -> float | None:
    """Mean number of cores that other processes kept busy since ``start`` (the machine is shared)."""
    end = _cpu_seconds()
    if start is None or end is None or wall <= 0:
        return None
    return round(max(0.0, (end[0] - start[0]) - (end[1] - start[1])) / wall, 2)


def features(n_spots: int, seed: int = 0) -> dict:
    import senca

    t0 = time.perf_counter()
    adata = senca.datasets.synthetic(n_spots=n_spots, n_genes=20, n_regions=N_REGIONS, image=True, seed=seed)
    t_gen = time.perf_counter() - t0
    img = next(iter(adata.uns["spatial"].values()))["images"]["hires"]
    cpu0 = _cpu_seconds()
    t1 = time.perf_counter()
    senca.im.extract_features(adata, method="stats", key_added="X_he", progress=False)
    wall = time.perf_counter() - t1
    others = _others_cores(cpu0, wall)
    return {
        "n_obs": adata.n_obs,
        "image_shape": list(img.shape),
        "image_mpx": round(img.shape[0] * img.shape[1] / 1e6, 1),
        "generate_s": round(t_gen, 2),
        "wall_s": round(wall, 2),
        "spots_per_s": round(adata.n_obs / wall, 1),
        "n_features": int(adata.obsm["X_he"].shape[1]),
        "other_cores": others,
    }


# ----------------------------------------------------------------------------------------------------- driver
def epoch_time(fit: dict) -> float:
    """Seconds per epoch: the median measured whole epoch (minibatches + validation), else the extrapolation."""
    measured = fit.get("epoch_s_measured")
    return float(measured) if measured is not None else float(fit["epoch_s_median"])


def exponent(n, t) -> float | None:
    n, t = np.asarray(n, float), np.asarray(t, float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(n[ok]), np.log(t[ok]), 1)[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="300 and 1,000 spots, 1 epoch (CI smoke test)")
    p.add_argument("--sizes", type=int, nargs="*", default=None)
    p.add_argument(
        "--default-fit-max",
        type=int,
        default=10_000,
        help="largest size trained with the whole default schedule (max_epochs=None, early stopping on)",
    )
    p.add_argument("--max-epochs-large", type=int, default=1, help="whole epochs trained above --default-fit-max")
    p.add_argument(
        "--limit-batches",
        type=int,
        default=0,
        help="if > 0, sizes above --default-fit-max train only the first N minibatches of one epoch "
        "and the epoch time is extrapolated (default 0: whole epochs)",
    )
    p.add_argument("--results", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--feature-spots", type=int, default=10_000, help="spots of the synthetic image for throughput")
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args(argv)

    sizes = args.sizes or ([300, 1000] if args.quick else [1_000, 10_000, 100_000, 500_000])
    results = Path(args.results) if args.results else RESULTS
    WORK.mkdir(parents=True, exist_ok=True)
    name = "scaling_quick" if args.quick else "scaling"
    rows = []
    for n in sizes:
        path = str(WORK / f"synthetic_{n}.h5ad")
        gen = run_isolated("benchmarks.scaling:generate", {"n_spots": n, "path": path}, timeout=args.timeout)
        print(f"[scaling] generate {n}: {gen.get('error') or (gen['wall_s'], gen['peak_rss_mb'])}", flush=True)
        if "error" in gen:
            rows.append({"n_spots": n, "generate": gen})
            continue
        if args.quick:
            kw = {"max_epochs": 1}
        elif n <= args.default_fit_max:
            kw = {"max_epochs": None}  # default schedule, early stopping on
        elif args.limit_batches > 0:
            kw = {"max_epochs": 1, "limit_batches": args.limit_batches, "latent": False}
        else:
            kw = {"max_epochs": args.max_epochs_large}
        res = run_isolated("benchmarks.scaling:fit", {"path": path, **kw}, timeout=args.timeout)
        info = res.get("error") or (res["epochs"], epoch_time(res), res["fit_s"], res["peak_rss_mb"])
        print(f"[scaling] fit {n}: {info}", flush=True)
        rows.append({"n_spots": n, "generate": gen, "fit": res})
        Path(path).unlink(missing_ok=True)
        dump_json({"rows": rows}, results / f"{name}.partial.json")
    feat = run_isolated(
        "benchmarks.scaling:features", {"n_spots": 300 if args.quick else args.feature_spots}, timeout=args.timeout
    )
    print(f"[scaling] features: {feat.get('error') or (feat['spots_per_s'], feat['peak_rss_mb'])}", flush=True)

    ok = [r for r in rows if "fit" in r and "error" not in r["fit"]]
    b_epoch = exponent([r["n_spots"] for r in ok], [epoch_time(r["fit"]) for r in ok])
    out = {
        "date": now(),
        "machine": machine(),
        "versions": versions(),
        "rows": rows,
        "features": feat,
        "exponent_epoch": b_epoch,
        "n_genes": N_GENES,
        "n_histology": N_HIST,
        "quick": args.quick,
        "command": " ".join(["python -m benchmarks.scaling", *(sys.argv[1:] if argv is None else argv)]),
    }
    dump_json(out, results / f"{name}.json")
    (results / f"{name}.partial.json").unlink(missing_ok=True)
    (results / f"{name}.md").write_text(markdown(out))
    if not args.quick and args.results is None:
        figure(out)
        from benchmarks.report import assemble

        assemble()
    return 0


def _others(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def markdown(out: dict) -> str:
    cmd = out.get("command") or f"python -m benchmarks.scaling{' --quick' if out['quick'] else ''}"
    lines = [
        "## Scaling with the number of spots",
        "",
        f"Command: `{cmd}`. Synthetic Visium-like tissue (`senca.datasets.synthetic`, {out['n_genes']} genes, "
        f"{out['n_histology']} histology features, hex grid, 6-NN neighbourhoods), SENCA with histology, CPU, one "
        "thread, batch size 128 (default), 10 % validation split, `seed=0`. Each size runs in its own process: read "
        "the data, *setup* (`setup_anndata`: 6-NN index; `SENCA(adata)`: principal axes, kernel statistics), train, "
        "then the default (attention) embedding (*latent*). *Trained*: the whole default schedule "
        "(`max_epochs=None`: about 300 optimiser steps, at least 10 epochs; early stopping on) or whole epochs "
        "(every minibatch and the validation pass); rows marked *extrapolated* trained only the first minibatches. "
        "*Time / epoch*: median over the epochs run, validation included; *step*: mean time of one training "
        "minibatch (forward, backward, optimiser). *Default fit*: the measured training time of the default "
        "schedule, or (*est.*) default epochs × time per epoch. *Peak RSS*: the whole process (Python, torch, data, "
        "model). *Other load*: mean number of cores kept busy by other processes during the fit (the machine has 2 "
        "and is shared; above 0 the times may be slower than on a quiet machine).",
        "",
        "| spots | simulate (s) | simulate peak RSS (GB) | trained | setup (s) | time / epoch (s) | step (ms) | "
        "default epochs | default fit (min) | latent (s) | fit peak RSS (GB) | other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        g, f = r["generate"], r.get("fit", {})
        if "error" in g or "error" in f:
            lines.append(f"| {r['n_spots']:,} | failed: {(g.get('error') or f.get('error'))[:200]} ||||||||||")
            continue
        if f.get("limit_batches"):
            ep = f"{f['batches_timed']} of {f['batches_per_epoch']} minibatches"
            per = f"{f['epoch_s_median']:.1f} (extrapolated)"
        else:
            ep = f"default: {f['epochs']} epochs" if f.get("default_schedule") else f"{f['epochs']} whole epoch(s)"
            per = f"{epoch_time(f):.2f}"
        if f.get("default_schedule"):
            default_fit = f"{f['train_s'] / 60:.1f}"
        else:
            default_fit = f"{f['default_epochs'] * epoch_time(f) / 60:.1f} (est.)"
        lat = f"{f['latent_s']:.1f}" if f.get("latent_s") is not None else "not run"
        lines.append(
            f"| {r['n_spots']:,} | {g['wall_s']:.1f} | {g['peak_rss_mb'] / 1024:.2f} | {ep} | {f['setup_s']:.1f} | "
            f"{per} | {1000 * f['batch_s_mean']:.0f} | {f['default_epochs']} | {default_fit} | {lat} | "
            f"{f['peak_rss_mb'] / 1024:.2f} | {_others(f.get('other_cores'))} |"
        )
    loads = [r["fit"]["other_cores"] for r in out["rows"] if r.get("fit", {}).get("other_cores") is not None]
    if loads and max(loads) >= 0.1:
        lo, hi = f"{min(loads):.1f}", f"{max(loads):.1f}"
        span = lo if lo == hi else f"{lo}–{hi}"
        lines += [
            "",
            f"Other processes shared the machine during these fits: they kept {span} of its 2 cores busy "
            "on average (*other load*); SENCA ran on one thread.",
        ]
    b = out["exponent_epoch"]
    lines += [
        "",
        (
            f"Fitted exponent of time per epoch vs spots (least squares on log-log): **{b:.2f}** (1 = linear)."
            if b is not None
            else ""
        ),
    ]
    big = [r for r in out["rows"] if "fit" in r and "error" not in r["fit"] and r["n_spots"] >= 500_000]
    if big:
        f = big[0]["fit"]
        verdict = "meets" if f["peak_rss_mb"] <= 8 * 1024 else "misses"
        how = "extrapolated" if f.get("limit_batches") else "whole epoch, measured"
        lines.append(
            f"Target (500k spots, one epoch, peak RSS <= 8 GB): {verdict} it "
            f"({f['peak_rss_mb'] / 1024:.2f} GB, {epoch_time(f):.0f} s per epoch, {how})."
        )
    feat = out["features"]
    if "error" in feat:
        lines += ["", f"Histology features: failed ({feat['error'][:300]})."]
    else:
        lines += [
            "",
            f"Histology features (`senca.im.extract_features(method='stats')`, 2 context sizes): "
            f"{feat['n_obs']:,} spots on a {feat['image_shape'][1]}×{feat['image_shape'][0]} px synthetic "
            f"H&E-like image ({feat['image_mpx']} Mpx) in {feat['wall_s']:.1f} s = **{feat['spots_per_s']:,.0f} "
            f"spots/s**, peak RSS {feat['peak_rss_mb'] / 1024:.2f} GB (simulating the image took "
            f"{feat['generate_s']:.0f} s of that process; other load {_others(feat.get('other_cores'))} "
            "cores).",
        ]
    lines += ["", "Figure: `figures/scaling.png`.", ""]
    return "\n".join(lines)


def figure(out: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in out["rows"] if "fit" in r and "error" not in r["fit"]]
    if not ok:
        return
    n = np.array([r["n_spots"] for r in ok], float)
    ep = np.array([epoch_time(r["fit"]) for r in ok], float)
    rss = np.array([r["fit"]["peak_rss_mb"] / 1024 for r in ok], float)
    grss = np.array([r["generate"]["peak_rss_mb"] / 1024 for r in ok], float)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    ax = axes[0]
    ax.loglog(n, ep, "o-", label="SENCA, time per epoch")
    ax.loglog(n, ep[0] * n / n[0], "k--", lw=0.8, label="linear")
    ax.set_xlabel("spots")
    ax.set_ylabel("seconds per epoch (1 CPU thread)")
    b = out["exponent_epoch"]
    ax.set_title(f"time per epoch, exponent {b:.2f}" if b is not None else "time per epoch")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogx(n, rss, "o-", label="SENCA fit (whole process)")
    ax.semilogx(n, grss, "s-", label="simulator")
    ax.axhline(8, color="r", ls=":", label="8 GB target")
    ax.set_xlabel("spots")
    ax.set_ylabel("peak RSS (GB)")
    ax.set_title("peak memory")
    ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / "scaling.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
