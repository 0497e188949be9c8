"""Hand-crafted H&E features: colour moments (RGB, haematoxylin/eosin), GLCM and LBP texture, nuclear density."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

GLCM_LEVELS = 16
GLCM_DISTANCES = (1, 2)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "ASM", "energy", "correlation", "entropy")
LBP_POINTS, LBP_RADIUS = 8, 1
# haematoxylin optical density (skimage.color.rgb2hed units) above which a pixel counts as nuclear
H_THRESHOLDS = (0.10, 0.15)

# stain separation matrix of skimage.color.rgb2hed (Ruifrok & Johnston), applied here in float32
_HED_FROM_RGB = None


def _hed_matrix() -> np.ndarray:
    global _HED_FROM_RGB
    if _HED_FROM_RGB is None:
        from skimage.color.colorconv import hed_from_rgb

        _HED_FROM_RGB = np.asarray(hed_from_rgb, dtype=np.float32)
    return _HED_FROM_RGB


def rgb2hed(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin-eosin-DAB optical densities of float RGB in [0, 1]; same as :func:`skimage.color.rgb2hed`."""
    log_adjust = np.float32(np.log(1e-6))
    od = np.log(np.maximum(rgb, np.float32(1e-6))) / log_adjust
    return np.maximum(od @ _hed_matrix(), 0.0)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation and skewness over the last axis of (n, c, p)."""
    mu = x.mean(-1)
    d = x - mu[..., None]
    d2 = d * d
    var = d2.mean(-1)
    sd = np.sqrt(var)
    skew = (d2 * d).mean(-1) / np.maximum(sd, 1e-6) ** 3
    skew[sd < 1e-6] = 0.0
    return mu, sd, skew


def glcm(q: np.ndarray, levels: int = GLCM_LEVELS, distances=GLCM_DISTANCES, angles=GLCM_ANGLES) -> np.ndarray:
    """Symmetric normalised grey-level co-occurrence matrices of a batch, vectorised.

    Same result as ``skimage.feature.graycomatrix(q[i], distances, angles, levels, symmetric=True, normed=True)``
    for every patch ``i``, computed for the whole batch with one ``bincount`` per offset.

    Parameters
    ----------
    q
        ``(n, h, w)`` integer grey levels in ``[0, levels)``.

    Returns
    -------
    ``(n, levels, levels, n_distances, n_angles)`` float64.
    """
    n, h, w = q.shape
    code_dtype = np.uint8 if levels * levels <= 256 else np.int64
    q = np.asarray(q).astype(code_dtype)
    hi = q * code_dtype(levels)  # first level of a pair, pre-multiplied
    base = (np.arange(n, dtype=np.intp) * levels * levels)[:, None, None]
    out = np.empty((n, levels, levels, len(distances), len(angles)))
    for di, d in enumerate(distances):
        for ai, a in enumerate(angles):
            dr, dc = int(round(np.sin(a) * d)), int(round(np.cos(a) * d))
            # pairs (r, c) -> (r + dr, c + dc) inside the patch
            r0, r1 = max(0, -dr), min(h, h - dr)
            c0, c1 = max(0, -dc), min(w, w - dc)
            pair = hi[:, r0:r1, c0:c1] + q[:, r0 + dr : r1 + dr, c0 + dc : c1 + dc]
            counts = np.bincount((pair + base).ravel(), minlength=n * levels * levels)
            p = counts.reshape(n, levels, levels).astype(np.float64)
            p += p.transpose(0, 2, 1)
            s = p.sum((1, 2), keepdims=True)
            s[s == 0] = 1.0
            out[:, :, :, di, ai] = p / s
    return out


def glcm_props(p: np.ndarray, props=GLCM_PROPS) -> np.ndarray:
    """:func:`skimage.feature.graycoprops` for a batch: ``(n, L, L, D, A)`` -> ``(n, len(props), D, A)``.

    Every property but ASM/energy/entropy is linear in the (symmetric) matrix, so they come from one matrix product.
    """
    n, levels = p.shape[0], p.shape[1]
    rest = p.shape[3:]
    flat = p.reshape(n, levels * levels, -1)  # (n, L*L, D*A)
    i, j = np.meshgrid(np.arange(levels, dtype=np.float64), np.arange(levels, dtype=np.float64), indexing="ij")
    i, j = i.ravel(), j.ravel()
    weights = np.stack([(i - j) ** 2, np.abs(i - j), 1.0 / (1.0 + (i - j) ** 2), i, j, i * i, j * j, i * j])
    lin = np.matmul(weights, flat)  # (n, 8, D*A)
    contrast, dissim, homog, mi, mj, mii, mjj, mij = (lin[:, k] for k in range(8))
    res = {"contrast": contrast, "dissimilarity": dissim, "homogeneity": homog}
    if {"ASM", "energy"} & set(props):
        asm = np.einsum("nkd,nkd->nd", flat, flat)
        res["ASM"], res["energy"] = asm, np.sqrt(asm)
    if "entropy" in props:
        res["entropy"] = -np.einsum("nkd,nkd->nd", flat, np.log(flat, where=flat > 0, out=np.zeros_like(flat)))
    if "correlation" in props:
        vi, vj = mii - mi * mi, mjj - mj * mj
        # a GLCM with two levels has variance >= 1 / n_pairs; below 1e-9 is a single level (rounding noise)
        flat_ = (vi < 1e-9) | (vj < 1e-9)
        sisj = np.sqrt(np.where(flat_, 1.0, vi * vj))
        res["correlation"] = np.where(flat_, 1.0, (mij - mi * mj) / sisj)
    unknown = [q for q in props if q not in res]
    if unknown:
        raise ValueError(f"Unknown GLCM properties {unknown}; choose from {GLCM_PROPS}.")
    return np.stack([res[q] for q in props], axis=1).reshape(n, len(props), *rest)


def _lbp_lut(points: int) -> np.ndarray:
    """Code -> uniform-LBP label, as skimage: number of set bits if <= 2 bit changes (not circular), else P + 1."""
    lut = np.empty(2**points, dtype=np.int64)
    for code in range(2**points):
        bits = [(code >> k) & 1 for k in range(points)]
        changes = sum(bits[k] != bits[k + 1] for k in range(points - 1))
        lut[code] = sum(bits) if changes <= 2 else points + 1
    return lut


_LBP_LUT = _lbp_lut(LBP_POINTS)


def lbp_codes(gray: np.ndarray) -> np.ndarray:
    """Uniform LBP codes (P=8, R=1) of a batch ``(n, h, w)``, interior pixels only: ``(n, h - 2, w - 2)``.

    A vectorised :func:`skimage.feature.local_binary_pattern` (``method="uniform"``): same neighbour positions,
    bilinear interpolation and code mapping; only floating-point ties can differ.
    """
    g = np.asarray(gray, dtype=np.float32)
    n, h, w = g.shape
    centre = g[:, 1 : h - 1, 1 : w - 1]
    code = np.zeros(centre.shape, dtype=np.uint8)

    def shifted(a, b):
        return g[:, 1 + a : h - 1 + a, 1 + b : w - 1 + b]

    for k in range(LBP_POINTS):
        rp = round(-LBP_RADIUS * np.sin(2 * np.pi * k / LBP_POINTS), 5)
        cp = round(LBP_RADIUS * np.cos(2 * np.pi * k / LBP_POINTS), 5)
        r0, c0, r1, c1 = int(np.floor(rp)), int(np.floor(cp)), int(np.ceil(rp)), int(np.ceil(cp))
        dr, dc = np.float32(rp - r0), np.float32(cp - c0)
        if dr == 0 and dc == 0:
            val = shifted(r0, c0)
        else:
            top = (1 - dc) * shifted(r0, c0) + dc * shifted(r0, c1)
            bottom = (1 - dc) * shifted(r1, c0) + dc * shifted(r1, c1)
            val = (1 - dr) * top + dr * bottom
        code |= (val >= centre).view(np.uint8) << k
    return _LBP_LUT[code]


def lbp_histograms(gray_u8: np.ndarray) -> np.ndarray:
    """Normalised histograms of rotation-invariant uniform LBP codes (P=8, R=1), per patch; 1-px border dropped."""
    codes = lbp_codes(gray_u8)
    n = len(codes)
    n_bins = LBP_POINTS + 2
    base = (np.arange(n, dtype=np.int64) * n_bins)[:, None]
    counts = np.bincount((base + codes.reshape(n, -1)).ravel(), minlength=n * n_bins).reshape(n, n_bins)
    return counts / max(1, codes[0].size) if n else counts.astype(np.float64)


def _blob_stats(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number of 8-connected blobs per 100 pixels and mean blob size, per patch of a (n, h, w) mask."""
    n, h, w = mask.shape
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # never connect across patches
    labels, _ = ndimage.label(mask, structure=structure)
    # labels are numbered in raster order, so each patch owns a contiguous range
    per_max = labels.reshape(n, -1).max(1)
    prev = np.maximum.accumulate(np.concatenate([[0], per_max[:-1]]))
    count = np.where(per_max > 0, per_max - prev, 0).astype(np.float64)
    area = mask.reshape(n, -1).sum(1)
    mean_size = np.where(count > 0, area / np.maximum(count, 1), 0.0)
    return count * 100.0 / (h * w), mean_size


def stats_feature_names() -> list[str]:
    """Names of the columns of :func:`stats_features`, in order.

    Examples
    --------
    >>> import senca
    >>> names = senca.im.stats_feature_names()
    >>> len(names), names[:3]
    (60, ['R_mean', 'G_mean', 'B_mean'])
    """
    names = []
    for stat in ("mean", "std", "skew"):
        names += [f"{c}_{stat}" for c in ("R", "G", "B")]
    for stat in ("mean", "std", "skew"):
        names += [f"{c}_{stat}" for c in ("H", "E", "D")]
    for c in ("H", "E"):
        names += [f"{c}_q{q}" for q in (10, 50, 90)]
    names += ["sat_mean", "sat_std", "gray_mean", "gray_std", "grad_mean", "grad_std", "tissue_frac", "dark_frac"]
    names += [f"nuclear_frac_{t:g}" for t in H_THRESHOLDS]
    names += ["nuclei_per_100px", "nucleus_size"]
    for d in GLCM_DISTANCES:
        names += [f"glcm_{p}_d{d}" for p in GLCM_PROPS]
    names += [f"lbp_{k}" for k in range(LBP_POINTS + 2)]
    return names


def stats_features(patches: np.ndarray) -> np.ndarray:
    """Hand-crafted features of a batch of float32 RGB patches ``(n, h, w, 3)`` in ``[0, 1]``.

    Colour moments (mean, std, skewness) of RGB and of the haematoxylin/eosin/DAB optical densities
    (:func:`skimage.color.rgb2hed`), H and E percentiles, saturation, brightness and gradient statistics, the
    tissue and dark-pixel fractions, a nuclear-density proxy (fraction of haematoxylin-rich pixels, number and size of
    haematoxylin blobs), GLCM properties on 16 grey levels (distances 1 and 2, averaged over four angles) and
    uniform-LBP histograms. Columns are named by :func:`stats_feature_names`.

    Returns
    -------
    ``(n, n_features)`` float32 (not standardised).

    Examples
    --------
    >>> import numpy as np
    >>> import senca
    >>> patches = np.random.default_rng(0).random((10, 32, 32, 3), dtype=np.float32)
    >>> senca.im.stats_features(patches).shape
    (10, 60)
    """
    patches = np.asarray(patches, dtype=np.float32)
    n, h, w, _ = patches.shape
    flat = patches.reshape(n, h * w, 3)
    rgb = np.ascontiguousarray(flat.transpose(0, 2, 1))  # (n, 3, p): reductions over the last axis are fast
    feats = list(_moments(rgb))
    hed_t = np.ascontiguousarray(rgb2hed(flat).transpose(0, 2, 1))  # (n, 3, p)
    feats += list(_moments(hed_t))
    qs = np.quantile(hed_t[:, :2], (0.1, 0.5, 0.9), axis=-1)  # (3, n, 2)
    feats += [qs[:, :, 0].T, qs[:, :, 1].T]

    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    gray = 0.2125 * r + 0.7154 * g + 0.0721 * b  # skimage.color.rgb2gray weights
    g2 = gray.reshape(n, h, w)
    gy = np.zeros_like(g2)
    gx = np.zeros_like(g2)
    gy[:, 1:-1] = (g2[:, 2:] - g2[:, :-2]) * 0.5
    gx[:, :, 1:-1] = (g2[:, :, 2:] - g2[:, :, :-2]) * 0.5
    grad = np.sqrt(gx * gx + gy * gy).reshape(n, -1)
    background = ((gray > 0.85) & (sat < 0.12)) | (mx < 0.08)
    tissue = ~background
    dark = (gray < 0.35) & tissue
    feats.append(
        np.column_stack(
            [
                sat.mean(1),
                sat.std(1),
                gray.mean(1),
                gray.std(1),
                grad.mean(1),
                grad.std(1),
                tissue.mean(1),
                dark.mean(1),
            ]
        )
    )
    hchan = hed_t[:, 0]
    nuc = [((hchan > t) & tissue).mean(1) for t in H_THRESHOLDS]
    blobs, size = _blob_stats(((hchan > H_THRESHOLDS[0]) & tissue).reshape(n, h, w))
    feats.append(np.column_stack([*nuc, blobs, size]))

    q = np.minimum((g2 * GLCM_LEVELS).astype(np.int64), GLCM_LEVELS - 1)
    props = glcm_props(glcm(q)).mean(-1)  # average over angles -> (n, props, distances)
    feats.append(props.transpose(0, 2, 1).reshape(n, -1))
    feats.append(lbp_histograms(np.floor(g2 * 255.0 + 0.5)))
    out = np.column_stack([np.asarray(f, dtype=np.float64).reshape(n, -1) for f in feats]).astype(np.float32)
    return out
