"""A small convolutional patch encoder trained self-supervised (SimCLR-style) on one section's own spots."""

from __future__ import annotations

import math

import numpy as np


def _build_encoder(width: int, n_out: int):
    import torch.nn as nn

    def block(cin, cout, stride):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )

    # 32 px input: 16 -> 16 -> 8 -> 4 px maps, ~1.2 M multiply-adds per patch (CPU-friendly)
    encoder = nn.Sequential(
        block(3, width, 2),
        block(width, 2 * width, 1),
        block(2 * width, 2 * width, 2),
        block(2 * width, 4 * width, 2),
        nn.Conv2d(4 * width, n_out, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    head = nn.Sequential(nn.Linear(n_out, n_out), nn.ReLU(inplace=True), nn.Linear(n_out, 32))
    return encoder, head


def _augment(x, gen, jitter: float):
    """Random flips/90-degree rotations, zoom-crop, small shift, colour and stain jitter; x is (n, 3, s, s)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    k = torch.randint(0, 4, (n,), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen).float() * 2 - 1
    zoom = 0.7 + 0.3 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - zoom)[:, None]
    ang = k.float() * (math.pi / 2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * zoom * flip
    theta[:, 0, 1] = -sin * zoom
    theta[:, 1, 0] = sin * zoom * flip
    theta[:, 1, 1] = cos * zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # colour: per-channel gain (stain intensity), brightness, contrast
    gain = 1 + jitter * (torch.rand(n, 3, 1, 1, generator=gen) * 2 - 1)
    bright = jitter * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1)
    contrast = 1 + jitter * (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x * gain - mean) * contrast + mean + bright
    x = x + 0.02 * torch.randn(x.shape, generator=gen)
    return x


def _nt_xent(z1, z2, temperature: float):
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


class CNNExtractor:
    """Train a small conv encoder on a set of patches (SimCLR, augmentation invariance), then embed patches.

    Parameters
    ----------
    n_features
        Output width of the encoder.
    width
        Channels of the first conv layer (doubled twice).
    epochs
        Training epochs over the patches.
    batch_size
        Patches per contrastive batch.
    lr
        Adam learning rate.
    temperature
        NT-Xent temperature.
    jitter
        Strength of the colour jitter.
    seed
        Seeds weight initialisation, shuffling and augmentation (CPU results are identical for a fixed seed).
    device
        torch device; ``None`` picks CUDA when available, else CPU.

    Examples
    --------
    Usually run through ``senca.im.extract_features(adata, method="cnn")``; directly:

    >>> import numpy as np
    >>> import senca
    >>> patches = np.random.default_rng(0).random((64, 32, 32, 3), dtype=np.float32)
    >>> model = senca.im.CNNExtractor(epochs=1, width=8, seed=0).fit(patches)
    >>> model.transform(patches).shape
    (64, 64)
    """

    def __init__(
        self,
        n_features: int = 64,
        width: int = 16,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 3e-3,
        temperature: float = 0.2,
        jitter: float = 0.1,
        seed: int = 0,
        device: str | None = None,
    ):
        self.n_features = int(n_features)
        self.width = int(width)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.temperature = float(temperature)
        self.jitter = float(jitter)
        self.seed = int(seed)
        self.device = device
        self.encoder = None
        self.history_: list[float] = []

    def _device(self):
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def fit(self, patches: np.ndarray, progress=None) -> CNNExtractor:
        """Train on ``(n, s, s, 3)`` float32 patches in [0, 1]."""
        import torch

        device = self._device()
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(patches, dtype=np.float32).transpose(0, 3, 1, 2)))
        self.mean_ = x.mean((0, 2, 3), keepdim=True)
        self.std_ = x.std((0, 2, 3), keepdim=True).clamp_min(1e-3)
        encoder, head = _build_encoder(self.width, self.n_features)
        encoder.to(device)
        head.to(device)
        opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=self.lr, weight_decay=1e-5)
        n = x.shape[0]
        bs = min(self.batch_size, n)
        steps_per_epoch = max(1, n // bs)
        total = self.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(total, 1), pct_start=0.1)
        encoder.train()
        head.train()
        self.history_ = []
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            epoch_loss = 0.0
            for s in range(steps_per_epoch):
                xb = x[perm[s * bs : (s + 1) * bs]]
                v1 = (_augment(xb, gen, self.jitter) - self.mean_) / self.std_
                v2 = (_augment(xb, gen, self.jitter) - self.mean_) / self.std_
                z1 = head(encoder(v1.to(device)))
                z2 = head(encoder(v2.to(device)))
                loss = _nt_xent(z1, z2, self.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss += float(loss.detach())
            self.history_.append(epoch_loss / steps_per_epoch)
            if progress is not None:
                progress()
        encoder.eval()
        self.encoder = encoder.cpu()
        return self

    def transform(self, patches: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Embed ``(n, s, s, 3)`` float32 patches -> ``(n, n_features)`` float32."""
        import torch

        if self.encoder is None:
            raise RuntimeError("CNNExtractor.transform called before fit().")
        out = []
        with torch.inference_mode():
            for s in range(0, len(patches), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(patches[s : s + batch_size].transpose(0, 3, 1, 2)))
                out.append(self.encoder((xb.float() - self.mean_) / self.std_).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.n_features), np.float32)
