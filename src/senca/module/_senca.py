"""SENCA network: gene and image heads, neighbourhood kernel attention layers, contrast; started at the estimator."""

from __future__ import annotations

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from senca.data._constants import MODULE_KEYS
from senca.nn import NeighborhoodKernelAttention, log_bandwidth, mix
from senca.nn._kernel_attention import mix_neighbours

from ._integration import harmony_map
from ._kernel_attention import spatial_signal_weights

#: Expression components read by the attention's (initially closed) expression-similarity term.
N_GENE_KEYS = 15


def log_normalise(counts: torch.Tensor, library: torch.Tensor | None = None) -> torch.Tensor:
    """``log1p(1e4 * counts / library)``, the library by default the row sums of ``counts`` (last axis).

    The one normalisation of SENCA: its gene head and its principal axes read counts so.
    """
    lib = counts.sum(-1) if library is None else library
    return torch.log1p(counts * (1e4 / lib.clamp_min(1.0).unsqueeze(-1)))


def _frozen_linear(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    """A linear map fitted by the constructor (principal axes), not by gradient."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    layer.requires_grad_(False)
    return layer


class SENCAModule(BaseModuleClass):
    """Shared Encoder with Neighbourhood Cross-Attention, started at the parameter-free estimator (tensors only).

    1. **Heads.** The gene head maps log-normalised counts (:func:`log_normalise`) to ``n_latent`` expression tokens
       ``e`` with the principal axes of the training data (weight = axes, bias = minus the centred mean); the image
       head maps histology features to ``n_keys`` tokens ``h`` (standardisation and principal axes folded into one
       linear map). Both are fitted by the model's constructor, not by gradient. In cohort mode ``e`` is mapped onto
       the model's Harmony reference (:meth:`integrate`).
    2. **Neighbourhood cross-attention, one layer per pass.** Layer ``l`` attends from each spot over its neighbours
       with H&E tokens as queries and keys (:class:`~senca.nn.NeighborhoodKernelAttention`: a Gaussian kernel
       written as dot-product attention, with a per-key bias ``-|k_j|^2 / 2 tau`` and the bandwidth as temperature)
       and mixes the tokens ``[e, h]`` as values, the spot keeping ``1/k``
       (:func:`~senca.nn.mix`). ``passes`` of the ``max_passes`` layers are used.
    3. **Output.** ``z = [z_e, w * s(h) * z_h]``: the mixed expression tokens next to the mixed histology tokens,
       each histology component weighted by its spatial autocorrelation ``s`` and the block by ``w``
       (``image_block_weight * image_block_scale``). The functional contrast is
       ``delta_i = (e_i - sum_j a^1_ij e_j) * s(e)`` with the first layer's weights.

    At its initial state (``initial=True``, or before any training) this is exactly the estimator: a Gaussian-kernel
    attention over the count PCA, ``initial_passes`` times. The learnable paths (query/key maps of the H&E tokens, an
    expression-similarity term, the temperatures) start at values that leave it unchanged.

    Fine-tuning (:meth:`loss`) is label-free: each spot's counts are split binomially into two halves; the network
    mixes half A and is asked to predict half B mixed by the estimator (a region-scale target, never a spot's own
    counts).

    Parameters
    ----------
    n_genes
        Number of genes read by the gene head.
    n_image
        Width of the histology features; 0 for expression only.
    n_latent
        Number of expression components (the gene head's width).
    n_keys
        Number of histology tokens (the image head's width).
    passes
        Attention layers used at the initial state.
    max_passes
        Attention layers built (training may choose up to this many).
    kernel_bandwidth
        Median squared distance between neighbouring histology tokens of the training data.
    kernel_scale
        Kernel width in units of the bandwidth: the initial temperature is ``kernel_scale^2 * kernel_bandwidth``.
    image_block_weight, image_block_scale
        Weight of the histology block relative to the expression block, and the ratio of their spreads on the
        training data (the block gets ``weight`` times the expression block's spread).
    pca_mean, pca_components, pca_variance
        Gene means ``(n_genes,)``, principal axes ``(n_genes, n_latent)`` of the gene head and the variance of each
        component on the training data (it scales the attention's expression-similarity term).
    image_mean, image_std, image_axes
        Per-feature mean and std of the histology features and their principal axes ``(n_image, n_keys)``.
    n_integration_clusters, integration_centroids, integration_weight, integration_total
        Harmony reference of the training cohort (0 clusters: no integration).

    Examples
    --------
    >>> import torch
    >>> from senca.module import SENCAModule
    >>> m = SENCAModule(n_genes=50, n_image=8, n_latent=4, n_keys=3)
    >>> counts, h = torch.poisson(torch.ones(20, 50) * 5), torch.randn(20, 8)
    >>> index = torch.stack([torch.arange(20), (torch.arange(20) + 1) % 20, (torch.arange(20) - 1) % 20], 1)
    >>> out = m.embed(m.expression(counts), m.image_tokens(h), index)
    >>> out["z"].shape, out["attention"].shape
    (torch.Size([20, 7]), torch.Size([20, 2]))
    """

    def __init__(
        self,
        n_genes: int,
        n_image: int = 0,
        n_latent: int = 50,
        n_keys: int = 10,
        passes: int = 2,
        max_passes: int = 8,
        kernel_bandwidth: float = 1.0,
        kernel_scale: float = 1.0,
        image_block_weight: float = 1.0,
        image_block_scale: float = 1.0,
        pca_mean: np.ndarray | None = None,
        pca_components: np.ndarray | None = None,
        pca_variance: np.ndarray | None = None,
        image_mean: np.ndarray | None = None,
        image_std: np.ndarray | None = None,
        image_axes: np.ndarray | None = None,
        n_integration_clusters: int = 0,
        integration_centroids: np.ndarray | None = None,
        integration_weight: np.ndarray | None = None,
        integration_total: np.ndarray | None = None,
    ):
        super().__init__()
        self.n_genes, self.n_image, self.n_latent = int(n_genes), int(n_image), int(n_latent)
        self.n_keys = min(int(n_keys), self.n_image) if self.n_image > 0 else 0
        self.max_passes = int(max_passes)
        if not 1 <= int(passes) <= self.max_passes:
            raise ValueError(f"passes must be between 1 and max_passes={self.max_passes}, got {passes}.")
        self.initial_passes = int(passes)
        self.register_buffer("passes", torch.tensor(int(passes)))
        self.kernel_scale, self.image_block_weight = float(kernel_scale), float(image_block_weight)

        mean = np.zeros(self.n_genes) if pca_mean is None else np.asarray(pca_mean, dtype=np.float64)
        axes = np.zeros((self.n_genes, self.n_latent)) if pca_components is None else np.asarray(pca_components)
        if axes.shape != (self.n_genes, self.n_latent):
            raise ValueError(f"pca_components must have shape ({self.n_genes}, {self.n_latent}), got {axes.shape}.")
        self.gene_head = _frozen_linear(axes.T, -(mean @ axes))
        if self.n_image > 0:
            m = np.zeros(self.n_image) if image_mean is None else np.asarray(image_mean, dtype=np.float64)
            s = np.ones(self.n_image) if image_std is None else np.asarray(image_std, dtype=np.float64)
            s = np.maximum(s, 1e-6)
            a = np.eye(self.n_image, self.n_keys) if image_axes is None else np.asarray(image_axes)
            if a.shape != (self.n_image, self.n_keys):
                raise ValueError(f"image_axes must have shape ({self.n_image}, {self.n_keys}), got {a.shape}.")
            self.image_head = _frozen_linear((a / s[:, None]).T, -((m / s) @ a))
        self.register_buffer("kernel_bandwidth", torch.tensor(float(kernel_bandwidth)))
        self.register_buffer("image_block_scale", torch.tensor(float(image_block_scale)))
        log_t = log_bandwidth(kernel_bandwidth, kernel_scale)
        n_gene_keys = min(N_GENE_KEYS, self.n_latent)
        # the principal axes are orthonormal: a component's spread over the training spots is its singular value
        spread = torch.as_tensor(np.sqrt(np.maximum(pca_variance, 0.0)) if pca_variance is not None else np.ones(0))
        gene_scale = spread[:n_gene_keys] if spread.numel() >= n_gene_keys else None
        self.layers = nn.ModuleList(
            NeighborhoodKernelAttention(self.n_keys, n_gene_keys, log_t, gene_scale) for _ in range(self.max_passes)
        )

        self.n_integration_clusters = int(n_integration_clusters)
        if self.n_integration_clusters > 0:  # Harmony reference of the training cohort (zeros: no correction)
            k, d = self.n_integration_clusters, self.n_latent
            for name, value, shape in (
                ("integration_centroids", integration_centroids, (k, d)),
                ("integration_weight", integration_weight, (k,)),
                ("integration_total", integration_total, (k, d)),
            ):
                value = np.zeros(shape) if value is None else np.asarray(value)
                if value.shape != shape:
                    raise ValueError(f"{name} must have shape {shape}, got {value.shape}.")
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))

    # ------------------------------------------------------------------ heads
    def expression(self, counts: torch.Tensor, library: torch.Tensor | None = None) -> torch.Tensor:
        """Gene head: expression tokens ``(n, n_latent)`` of raw counts (library: all genes; default their sum)."""
        return self.gene_head(log_normalise(counts, library))

    def image_tokens(self, h: torch.Tensor) -> torch.Tensor:
        """Image head: histology tokens ``(n, n_keys)`` of raw histology features (the attention's queries/keys)."""
        return self.image_head(h)

    def set_bandwidth(self, bandwidth: float) -> None:
        """Store the kernel bandwidth and start every layer's temperature at ``kernel_scale^2 * bandwidth``."""
        self.kernel_bandwidth.fill_(float(bandwidth))
        for layer in self.layers:
            layer.reset_temperature(log_bandwidth(bandwidth, self.kernel_scale))

    @torch.inference_mode()
    def integrate(self, expression: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        """Map each sample's expression tokens onto the training cohort's Harmony reference.

        Parameters
        ----------
        expression
            ``(n, n_latent)`` expression tokens.
        samples
            ``(n,)`` integer sample code of each row (``None``: one sample).

        Returns
        -------
        The corrected ``(n, n_latent)`` tokens (unchanged when the module has no reference).
        """
        if self.n_integration_clusters == 0:
            return expression
        ref = (self.integration_centroids, self.integration_weight, self.integration_total)
        if samples is None:
            return harmony_map(expression, *ref)
        out = expression.clone()
        for code in torch.unique(samples):
            rows = samples == code
            out[rows] = harmony_map(expression[rows], *ref)
        return out

    # ------------------------------------------------------------------ attention layers
    @torch.no_grad()
    def reset(self) -> None:
        """Return to the initial state, the estimator: initial passes and temperatures, learnable paths at zero."""
        self.passes.fill_(self.initial_passes)
        for layer in self.layers:
            layer.log_temperature.copy_(layer.initial_log_temperature)
            for p in (getattr(layer, "query", None), getattr(layer, "key", None)):
                if p is not None:
                    p.weight.zero_()
            layer.gene_bilinear.zero_()

    def train_used_layers(self) -> None:
        """Let gradients reach only the layers in use (DDP requires every trained parameter to reach the loss)."""
        for i, layer in enumerate(self.layers):
            layer.requires_grad_(i < int(self.passes))
            layer.log_temperature.requires_grad_(i < int(self.passes) and self.n_keys > 0)

    def n_passes(self, initial: bool = False) -> int:
        """Layers used: ``initial_passes`` at the initial state, else the (possibly trained) ``passes``."""
        return self.initial_passes if initial else int(self.passes)

    def attentions(
        self, keys: torch.Tensor | None, genes: torch.Tensor, index: torch.Tensor, passes: int, initial: bool = False
    ) -> list[torch.Tensor]:
        """Attention weights ``(n, k - 1)`` of the first ``passes`` layers."""
        return [layer(keys, genes, index, initial) for layer in self.layers[:passes]]

    def smooth(self, values: torch.Tensor, index: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        """Mix ``values`` ``(n, d)`` through the layers whose attention weights are ``weights``."""
        for a in weights:
            values = mix(values, index, a)
        return values

    def embed(
        self,
        expression: torch.Tensor,
        keys: torch.Tensor | None,
        index: torch.Tensor,
        initial: bool = False,
        passes: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The SENCA embedding of whole sections.

        Parameters
        ----------
        expression
            ``(n, n_latent)`` expression tokens of *every* spot of the sections (gene head, integrated in cohorts).
        keys
            ``(n, n_keys)`` histology tokens (image head), or ``None`` without an image.
        index
            ``(n, k)`` neighbour rows into those spots, the spot itself in column 0.
        initial
            Evaluate the network at its initial state: the parameter-free estimator.
        passes
            Layers to use (default: :meth:`n_passes`).

        Returns
        -------
        ``z`` ``(n, n_latent [+ n_keys])``, ``attention`` ``(n, k - 1)`` (first layer) and ``delta`` ``(n, n_latent)``.
        """
        passes = self.n_passes(initial) if passes is None else int(passes)
        weights = self.attentions(keys, expression, index, passes, initial)
        z = self.smooth(expression, index, weights)
        if keys is not None and self.n_image > 0 and self.image_block_weight > 0:
            # histology components count by their spatial structure: colour and texture variation that is not tissue
            # (staining, noise) would otherwise split regions
            zh = self.smooth(keys, index, weights) * spatial_signal_weights(keys, index)
            z = torch.cat([z, (self.image_block_weight * self.image_block_scale) * zh], dim=-1)
        first = weights[0] if weights else self.layers[0](keys, expression, index, initial)
        # the contrast counts each component by how spatially structured it is: noise components would drown it
        delta = (expression - mix_neighbours(expression, index, first)) * spatial_signal_weights(expression, index)
        return {MODULE_KEYS.Z_KEY: z, MODULE_KEYS.ATTENTION_KEY: first, MODULE_KEYS.DELTA_KEY: delta}

    # ------------------------------------------------------------------ fine-tuning (scvi-tools plumbing)
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            MODULE_KEYS.EXPRESSION_KEY: tensors[MODULE_KEYS.EXPRESSION_KEY],
            MODULE_KEYS.H_KEY: tensors.get(MODULE_KEYS.H_KEY),
            MODULE_KEYS.NBR_KEY: tensors[MODULE_KEYS.NBR_KEY],
        }

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    @auto_move_data
    def inference(self, expression: torch.Tensor, h: torch.Tensor | None, nbr: torch.Tensor) -> dict:
        """Expression tokens of one count half mixed by the trainable network (``h``: histology tokens)."""
        weights = self.attentions(h, expression, nbr.long(), self.n_passes())
        return {MODULE_KEYS.Z_KEY: self.smooth(expression, nbr.long(), weights)}

    def generative(self) -> dict:
        """SENCA has no generative part: its training target is the other count half, mixed by the estimator."""
        return {}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict) -> LossOutput:
        """Squared distance between the network's mix of half A and the estimator's mix of half B, per spot."""
        index = tensors[MODULE_KEYS.NBR_KEY].long()
        target_values = tensors[MODULE_KEYS.TARGET_KEY]
        with torch.no_grad():
            weights = self.attentions(tensors.get(MODULE_KEYS.H_KEY), target_values, index, self.initial_passes, True)
            target = self.smooth(target_values, index, weights)
        per_spot = ((inference_outputs[MODULE_KEYS.Z_KEY] - target) ** 2).sum(-1)
        return LossOutput(loss=per_spot.mean(), reconstruction_loss=per_spot, n_obs_minibatch=per_spot.shape[0])

    def sample(self, *args, **kwargs):
        """Not available: SENCA embeds spots and does not model the counts' distribution."""
        raise NotImplementedError("SENCA is not a generative model: there is nothing to sample.")
