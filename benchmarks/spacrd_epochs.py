"""SpaCRD with fewer minibatches per epoch on her2st: does a bounded epoch cost accuracy?

``python -m benchmarks.spacrd_epochs [--seeds N] [--fractions 1,0.5,0.25]``

``SpaCRD.train`` bounds each epoch of its default schedule to 4,096 spots (``EPOCH_SPOTS``), so a large source gets
a fresh random subset of its spots per epoch instead of all of them. her2st sources are below the bound (they train
full epochs), so the bound is tested here the other way round: each epoch of the default schedule is cut to a
fraction of its minibatches (Lightning's ``limit_train_batches``; each epoch a fresh random subset, since the loader
shuffles), on the protocol of ``benchmarks/detection.py``: train on three of A1, B1, C1, D1 (expression only,
``SpaCRD`` and ``train``/``predict`` defaults), score the fourth against the pathologist's cancer labels (AUC of the
default ``predict`` and of the network alone, ``n_smooth=0, adapt=None``), several seeds. One thread.

Writes ``benchmarks/results/spacrd_epochs.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._common import RESULTS, dump_json, machine, now, versions
from benchmarks.detection import SECTIONS, _quiet, load_sections


def run(fractions: list[float], seeds: list[int]) -> list[dict]:
    """One fit per fold, seed and fraction of the epoch; the AUC of the target's default scores and the network's."""
    from sklearn.metrics import roc_auc_score

    import senca

    sections = load_sections(with_image=False)
    rows = []
    for target in SECTIONS:
        source = senca.pp.concat_sections({s: sections[s] for s in SECTIONS if s != target})
        tgt = sections[target].copy()
        y = tgt.obs["cancer"].to_numpy()
        tgt.obs = tgt.obs[[c for c in tgt.obs.columns if c not in ("cancer", "pathologist")]]  # labels never seen
        for seed in seeds:
            for fraction in fractions:
                t0 = time.perf_counter()
                senca.model.SpaCRD.setup_anndata(source, layer="counts", labels_key="cancer", sample_key="section")
                model = senca.model.SpaCRD(source)
                cap = {} if fraction == 1 else {"limit_train_batches": fraction}
                model.train(seed=seed, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **cap)
                row = {"target": target, "seed": seed, "fraction": fraction, "steps": int(model.trainer.global_step)}
                for name, kw in (("auc", {}), ("auc_net", {"n_smooth": 0, "adapt": None})):
                    pred = tgt.copy()
                    model.predict(pred, **kw)
                    row[name] = float(roc_auc_score(y, pred.obs["spacrd_score"]))
                row["wall_s"] = round(time.perf_counter() - t0, 1)
                rows.append(row)
                print(row, flush=True)
    return rows


def markdown(out: dict) -> str:
    rows = out["rows"]
    lines = [
        "## SpaCRD: minibatches per epoch (her2st)",
        "",
        f"Command: `{out['command']}`. Leave-one-section-out over A1, B1, C1, D1 (train on three, score the fourth; "
        "expression only, the defaults of `SpaCRD`, `train` and `predict`), each epoch of the default schedule cut "
        "to a fraction of its minibatches (`train(limit_train_batches=f)`, each epoch a fresh random subset), "
        f"seeds {', '.join(map(str, out['seeds']))}. AUC against the pathologist's cancer labels: mean over the four "
        "folds, ± standard deviation of that mean over seeds; *network alone*: `predict(n_smooth=0, adapt=None)`. "
        "It checks the default bound of `SpaCRD.train` (epochs of at most 4,096 spots, which her2st sources never "
        "reach).",
        "",
        "| minibatches per epoch | detection steps per fit | AUC | AUC, network alone | "
        + " | ".join(SECTIONS)
        + " | s / fit |",
        "|---|---|---|---|" + "---|" * len(SECTIONS) + "---|",
    ]
    for f in out["fractions"]:
        mine = [r for r in rows if r["fraction"] == f]
        per_seed = {
            k: [np.mean([r[k] for r in mine if r["seed"] == s]) for s in out["seeds"]] for k in ("auc", "auc_net")
        }
        folds = [np.mean([r["auc"] for r in mine if r["target"] == t]) for t in SECTIONS]
        lines.append(
            f"| {'all' if f == 1 else f'{f:g} of them'} | {np.mean([r['steps'] for r in mine]):.0f} | "
            f"{np.mean(per_seed['auc']):.3f} ± {np.std(per_seed['auc']):.3f} | "
            f"{np.mean(per_seed['auc_net']):.3f} ± {np.std(per_seed['auc_net']):.3f} | "
            + " | ".join(f"{a:.3f}" for a in folds)
            + f" | {np.mean([r['wall_s'] for r in mine]):.0f} |"
        )
    return "\n".join([*lines, ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fractions", default="1,0.5,0.25", help="fractions of each epoch's minibatches (1: all)")
    args = p.parse_args(argv)
    _quiet()
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = list(range(args.seeds))
    command = "python -m benchmarks.spacrd_epochs" + (" " + " ".join(argv) if argv else "")
    out = {"date": now(), "machine": machine(), "versions": versions(), "command": command}
    out.update(fractions=fractions, seeds=seeds, rows=run(fractions, seeds))
    dump_json(out, RESULTS / "spacrd_epochs.json")
    (RESULTS / "spacrd_epochs.md").write_text(markdown(out))
    from benchmarks.report import assemble

    assemble()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
