"""Optional timm backbones as patch feature extractors (lazy import, clear error when timm is unavailable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TIMM_HINT = (
    "method='timm' needs the optional package timm, which needs a torchvision that imports with your torch: "
    "pip install 'senca[timm]' (with the CPU-only torch 2.13 wheel torchvision fails to import, so timm does too; "
    "see the senca installation notes). Without timm use method='stats', method='cnn' or any callable "
    "patches -> features."
)


def import_timm():
    """Import timm or raise an ImportError that says why and what to do."""
    try:
        import timm
    except Exception as err:  # timm fails with RuntimeError when torchvision is broken
        raise ImportError(f"{TIMM_HINT} (import failed with {type(err).__name__}: {err})") from err
    return timm


def best_device(device: str | None = None):
    """``device`` if given, else CUDA, then Apple MPS, then CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class TimmExtractor:
    """A timm backbone (classifier removed) applied to batches of patches.

    Parameters
    ----------
    model_name
        timm model name (``"resnet50"``, ``"vit_small_patch16_224"``) or hub id (``"hf-hub:MahmoodLab/UNI"``).
    weights
        Local weights file (``.pth``/``.bin``/``.safetensors``) to load into the model; ``None`` downloads the
        hub's pretrained weights when ``pretrained=True``.
    pretrained
        Load pretrained weights (``False``: random weights, for testing).
    device
        torch device; ``None`` picks CUDA, then MPS, then CPU.
    batch_size
        Patches per forward pass.
    model_kwargs
        Passed to :func:`timm.create_model`.

    Raises
    ------
    ImportError
        When timm (or the torchvision it imports) cannot be imported, with what to install.

    Examples
    --------
    >>> import numpy as np
    >>> import senca
    >>> extractor = senca.im.TimmExtractor("resnet18", pretrained=False)  # doctest: +SKIP
    >>> extractor(np.zeros((2, 224, 224, 3), np.float32)).shape  # doctest: +SKIP
    (2, 512)
    >>> adata = senca.datasets.synthetic(n_spots=50, image=True, seed=0)
    >>> senca.im.extract_features(adata, method="timm", model_name="hf-hub:MahmoodLab/UNI", weights="uni.bin",
    ...                           key_added="X_uni")  # doctest: +SKIP
    """

    def __init__(
        self,
        model_name: str,
        weights: str | Path | None = None,
        pretrained: bool = True,
        device: str | None = None,
        batch_size: int = 64,
        model_kwargs: dict | None = None,
    ):
        timm = import_timm()
        import torch

        kwargs = dict(model_kwargs or {})
        kwargs.setdefault("num_classes", 0)
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"weights={str(weights)!r} is not a file; give a local weights file or None.")
            model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        else:
            model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        cfg = timm.data.resolve_model_data_config(model)
        self.input_size = int(cfg["input_size"][-1])
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.device = best_device(device)
        self.model = model.eval().to(self.device)
        self.batch_size = int(batch_size)
        self.model_name = model_name

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        """``(n, s, s, 3)`` float32 in [0, 1] -> ``(n, d)`` float32 features."""
        import torch
        import torch.nn.functional as F

        out = []
        with torch.inference_mode():
            for s in range(0, len(patches), self.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(patches[s : s + self.batch_size].transpose(0, 3, 1, 2)))
                xb = xb.float()
                if xb.shape[-1] != self.input_size:
                    xb = F.interpolate(xb, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
                xb = ((xb - self.mean) / self.std).to(self.device)
                feats = self.model(xb)
                if feats.ndim > 2:
                    feats = feats.flatten(1)
                out.append(feats.float().cpu().numpy())
        return np.concatenate(out)
