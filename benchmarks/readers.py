"""Every public-file reader on every file of ``$SENCA_DATA_DIR`` it applies to: which load, which fail, how.

``python -m benchmarks.readers`` (needs ``SENCA_DATA_DIR``; no downloads)

- ``senca.datasets.her2st(section, image=None)`` on all 36 sections of the pinned registry (counts, spot file and
  the pathologist labels where the registry has them; a registered label file absent here must load without
  labels, with a warning), ``her2st(section, image="hires")`` on every section with an H&E image, and
  ``her2st_labels`` / ``spacrd_labels`` wherever their files are present;
- ``senca.io.read_visium`` on every Visium folder of the data dir as it is (their counts are absent: the error must
  say so), and on the same folders made complete with synthetic counts for their real barcodes (real headerless
  positions files, real scale factors, a low-res image only), as AnnData and as SpatialData;
- the SpatialData route: ``senca.io.to_spatialdata`` -> ``.zarr`` -> ``spatialdata.read_zarr`` ->
  ``senca.io.from_spatialdata`` for her2st A1 (with its image) and a completed Visium folder.

Writes ``benchmarks/results/readers.{json,md}``: one row per reader x file, ``ok`` or the error.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from benchmarks._common import RESULTS, data_dir, dump_json, machine, now, versions


def _attempt(rows: list, reader: str, target: str, fn, expect_error: type | None = None) -> object:
    """Run ``fn()``; record ok/error, seconds and warnings. ``expect_error``: that error is the right outcome."""
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out, detail = fn()
            status = "ok" if expect_error is None else f"FAIL: no {expect_error.__name__}"
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            out, detail = None, f"{type(e).__name__}: {' '.join(str(e).split())[:240]}"
            status = "ok (clear error)" if expect_error is not None and isinstance(e, expect_error) else "FAIL"
            if status == "FAIL":
                traceback.print_exc()
    senca_warnings = sorted(
        {
            " ".join(str(w.message).split())[:160]
            for w in caught
            if w.category is UserWarning and "/site-packages/" not in w.filename
        }
    )
    rows.append(
        {
            "reader": reader,
            "file": target,
            "status": status,
            "detail": detail,
            "warnings": senca_warnings,
            "seconds": round(time.perf_counter() - t, 2),
        }
    )
    print(f"{status:18s} {reader:32s} {target:40s} {detail}", flush=True)
    return out


def _her2st(rows: list, root: Path) -> None:
    import senca
    from senca.datasets._fetch import registry

    ds = senca.datasets
    reg = registry()
    images = ds.her2st_sections("image", data_dir=root, local_only=True)
    for s in ds.her2st_sections("all", data_dir=root):
        lbl = f"her2st/ST-pat/lbl/{s}_labeled_coordinates.tsv"
        has_lbl = (root / lbl).is_file()

        def load(s=s, has_lbl=has_lbl, lbl=lbl):
            a = ds.her2st(s, image=None, data_dir=root, download=False)
            if "pathologist" in a.obs:
                labels = f"{int(a.obs['pathologist'].notna().sum())} labelled"
            else:
                labels = "no labels" + (" (registered, absent here)" if lbl in reg else "")
            if has_lbl != ("pathologist" in a.obs):
                raise AssertionError(f"label file present={has_lbl} but obs['pathologist'] present={not has_lbl}")
            return a, f"{a.n_obs} spots x {a.n_vars} genes, {labels}"

        _attempt(rows, "her2st(image=None)", s, load)
        if has_lbl:
            _attempt(
                rows,
                "her2st_labels",
                s,
                lambda s=s: (None, f"{len(ds.her2st_labels(s, data_dir=root, download=False))} rows"),
            )
        if s in images:

            def with_image(s=s):
                a = ds.her2st(s, image="hires", data_dir=root, download=False)
                lib = a.uns["spatial"][s]
                img = lib["images"]["hires"]
                xy = a.obsm["spatial"] * lib["scalefactors"]["tissue_hires_scalef"]
                inside = np.mean(
                    (xy[:, 0] >= 0) & (xy[:, 0] < img.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < img.shape[0])
                )
                if inside < 0.99:
                    raise AssertionError(f"only {inside:.1%} of the spots fall inside the image")
                return a, f"image {img.shape[1]} x {img.shape[0]} px, {inside:.0%} of spots inside"

            _attempt(rows, 'her2st(image="hires")', s, with_image)
    for s in ("A1", "B1", "C1", "D1"):
        _attempt(
            rows,
            "spacrd_labels",
            s,
            lambda s=s: (None, f"{len(ds.spacrd_labels(s, data_dir=root, download=False))} spots"),
        )


def _visium_folders(root: Path) -> list[tuple[str, Path, Path]]:
    """``(name, folder, positions file)`` of every Visium-like folder (a scalefactors_json.json) in the data dir."""
    out = []
    for sf in sorted(root.glob("**/scalefactors_json.json")):
        folder = sf.parent.parent if sf.parent.name == "spatial" else sf.parent
        pos = next((p for p in sf.parent.glob("tissue_positions*") if p.is_file()), None)
        if pos is not None:
            out.append((str(folder.relative_to(root)), folder, pos))
    return out


def _complete(folder: Path, positions: Path, dst: Path) -> tuple[Path, int]:
    """A Space Ranger ``outs/`` copy of ``folder`` with synthetic counts for its real in-tissue barcodes."""
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    spatial = positions.parent
    (dst / "spatial").mkdir(parents=True)
    for f in spatial.iterdir():
        if f.is_file() and f.name != positions.name:
            shutil.copy(f, dst / "spatial" / f.name)
    shutil.copy(positions, dst / "spatial" / "tissue_positions_list.csv")  # Space Ranger's name for the headerless file
    pos = pd.read_csv(positions, header=None)
    barcodes = pos.loc[pos[1] == 1, 0].astype(str).to_numpy()
    n_genes = 50
    rng = np.random.default_rng(0)
    m = sp.csc_matrix(rng.poisson(2, (len(barcodes), n_genes)).astype(np.int32).T)
    with h5py.File(dst / "filtered_feature_bc_matrix.h5", "w") as f:
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=barcodes.astype("S"))
        for k in ("data", "indices", "indptr"):
            g.create_dataset(k, data=getattr(m, k))
        g.create_dataset("shape", data=np.array(m.shape, dtype=np.int32))
        feat = g.create_group("features")
        feat.create_dataset("id", data=np.array([f"ENSG{i:011d}" for i in range(n_genes)], dtype="S"))
        feat.create_dataset("name", data=np.array([f"GENE{i}" for i in range(n_genes)], dtype="S"))
        feat.create_dataset("feature_type", data=np.array(["Gene Expression"] * n_genes, dtype="S"))
        feat.create_dataset("genome", data=np.array(["GRCh38"] * n_genes, dtype="S"))
        feat.create_dataset("_all_tag_keys", data=np.array(["genome"], dtype="S"))
    return dst, len(barcodes)


def _inside_lowres(a, lib: str) -> float:
    info = a.uns["spatial"][lib]
    img = info["images"]["lowres"]
    xy = a.obsm["spatial"] * info["scalefactors"]["tissue_lowres_scalef"]
    return float(np.mean((xy[:, 0] >= 0) & (xy[:, 0] < img.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < img.shape[0])))


def _visium_and_zarr(rows: list, root: Path, tmp: Path) -> None:
    import spatialdata as sd

    import senca

    a1 = _attempt(
        rows,
        'her2st(image="hires")',
        "A1 (for zarr)",
        lambda: (senca.datasets.her2st("A1", data_dir=root, download=False), ""),
    )
    if a1 is not None:

        def round_trip():
            senca.io.to_spatialdata(a1).write(tmp / "a1.zarr")
            back = senca.io.from_spatialdata(sd.read_zarr(tmp / "a1.zarr"))
            same = back.n_obs == a1.n_obs and np.allclose(back.obsm["spatial"], a1.obsm["spatial"][:, :2])
            if not same:
                raise AssertionError("spots or coordinates differ after the round trip")
            return back, f"{back.n_obs} spots, coordinates equal"

        _attempt(rows, "to_spatialdata -> zarr -> from", "her2st A1", round_trip)
    first_complete = None
    for name, folder, positions in _visium_folders(root):
        _attempt(
            rows, "read_visium (as shipped)", name, lambda f=folder: (senca.io.read_visium(f), ""), FileNotFoundError
        )
        outs, n = _complete(folder, positions, tmp / name.replace("/", "_"))

        def read(outs=outs, n=n):
            a = senca.io.read_visium(outs, library_id="s")
            if a.n_obs != n:
                raise AssertionError(f"{a.n_obs} spots read, {n} in tissue")
            inside = _inside_lowres(a, "s")
            if inside < 0.99:
                raise AssertionError(f"only {inside:.1%} of the spots fall inside the low-res image")
            return a, f"{a.n_obs} spots, {inside:.0%} inside the low-res image"

        a = _attempt(rows, "read_visium (+ synthetic counts)", name, read)
        first_complete = first_complete or (a is not None and outs)

        def read_sd(outs=outs, n=n):
            back = senca.io.from_spatialdata(senca.io.read_visium(outs, library_id="s", spatialdata=True))
            if back.n_obs != n:
                raise AssertionError(f"{back.n_obs} spots read, {n} in tissue")
            return back, f"{back.n_obs} spots"

        _attempt(rows, "read_visium(spatialdata=True)", name, read_sd)
    if first_complete:

        def visium_zarr():
            sdata = senca.io.read_visium(first_complete, library_id="s", spatialdata=True)
            sdata.write(tmp / "visium.zarr")
            back = senca.io.from_spatialdata(sd.read_zarr(tmp / "visium.zarr"))
            return back, f"{back.n_obs} spots"

        _attempt(rows, "SpatialData zarr (read_zarr)", f"{first_complete.name} (completed)", visium_zarr)


def markdown(r: dict) -> str:
    rows = r["rows"]
    n_fail = sum(x["status"].startswith("FAIL") for x in rows)
    her = [x for x in rows if x["reader"] == "her2st(image=None)"]
    lines = [
        "## Every reader on every data file",
        "",
        f"Command: `python -m benchmarks.readers`; {r['when']}; `SENCA_DATA_DIR` with the shared data, downloads "
        "off. Each reader runs on every file of the data folder it applies to (the her2st ones: all sections of "
        "the pinned registry); a Visium folder without counts must fail with a clear error, and is then read "
        "again made complete with synthetic counts for its real barcodes.",
        "",
        f"**{len(rows) - n_fail} of {len(rows)} reads as expected, {n_fail} failed**; her2st: "
        f"{sum(x['status'] == 'ok' for x in her)} of {len(her)} sections load.",
        "",
        "| reader | file | outcome | detail | warnings | s |",
        "|---|---|---|---|---|---|",
    ]
    for x in rows:
        warn = "; ".join(x["warnings"]).replace("|", "/") or ""
        lines.append(
            f"| {x['reader']} | {x['file']} | {x['status']} | {x['detail'].replace('|', '/')} | {warn} | "
            f"{x['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    root = data_dir()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        _her2st(rows, root)
        _visium_and_zarr(rows, root, Path(tmp))
    r = {"when": now(), "machine": machine(), "versions": versions(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    dump_json(r, RESULTS / "readers.json")
    (RESULTS / "readers.md").write_text(markdown(r))
    print(json.dumps({"rows": len(rows), "failed": sum(x["status"].startswith("FAIL") for x in rows)}))


if __name__ == "__main__":
    main()
