"""Load her2st A1-D1 (counts, coordinates, pathologist labels, A1 H&E stats) with a /tmp cache.

Scratch helper for the SENCA recipe search (not part of the package).
"""

import os

import numpy as np
import pandas as pd

DATA = os.environ.get("SENCA_DATA_DIR", "/work/shared/data")
ROOT = f"{DATA}/her2st"
CACHE = "/tmp/senca_explore_cache"
SECTIONS = ["A1", "B1", "C1", "D1"]
A1_SCALE = 0.28760


def load(section):
    """Return dict(counts (n,G) int, genes, xy (n,2) pixel coords, labels (n,) str or None)."""
    os.makedirs(CACHE, exist_ok=True)
    f = f"{CACHE}/{section}.npz"
    if os.path.exists(f):
        z = np.load(f, allow_pickle=True)
        return {k: z[k] for k in z.files}
    cnt = pd.read_csv(f"{ROOT}/ST-cnts/{section}.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(f"{ROOT}/ST-spotfiles/{section}_selection.tsv", sep="\t")
    spots.index = spots["x"].astype(str) + "x" + spots["y"].astype(str)
    spots = spots.loc[cnt.index]
    lbl = pd.read_csv(f"{ROOT}/ST-pat/lbl/{section}_labeled_coordinates.tsv", sep="\t")
    lbl = lbl.dropna(subset=["x", "y"])
    lbl.index = lbl["x"].round().astype(int).astype(str) + "x" + lbl["y"].round().astype(int).astype(str)
    lbl = lbl[~lbl.index.duplicated()]
    labels = lbl["label"].reindex(cnt.index).fillna("NA").astype(str).values
    out = {
        "counts": cnt.values.astype(np.int32),
        "genes": np.asarray(cnt.columns, dtype=str),
        "xy": spots[["pixel_x", "pixel_y"]].values.astype(np.float64),
        "labels": labels,
    }
    np.savez(f, **out)
    return out


def he_features(section, diam_px=29.0, scales=(1.0, 2.0)):
    """Per-spot colour statistics on the A1 app PNG: mean/std of RGB and HED at 2 crop sizes."""
    if section != "A1":
        return None
    f = f"{CACHE}/{section}_he.npy"
    if os.path.exists(f):
        return np.load(f)
    from PIL import Image
    from skimage.color import rgb2hed

    img = np.asarray(Image.open(f"{ROOT}/app/www/imgs/A1_HE_image_dark.png").convert("RGB")).astype(np.float64) / 255
    hed = rgb2hed(img)
    xy = load(section)["xy"] * A1_SCALE
    feats = []
    for cx, cy in xy:
        row = []
        for s in scales:
            r = int(round(diam_px * s / 2))
            x0, x1 = int(cx) - r, int(cx) + r + 1
            y0, y1 = int(cy) - r, int(cy) + r + 1
            for arr in (img, hed):
                crop = arr[max(y0, 0) : y1, max(x0, 0) : x1].reshape(-1, 3)
                row += list(crop.mean(0)) + list(crop.std(0))
        feats.append(row)
    feats = np.asarray(feats)
    np.save(f, feats)
    return feats
