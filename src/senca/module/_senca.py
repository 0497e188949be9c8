"""SENCA network: modality heads, shared encoder, neighbourhood cross-attention, decoders and loss."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from senca.data._constants import MODULE_KEYS, REGISTRY_KEYS, neighbor_key
from senca.nn import MLP, NeighborhoodCrossAttention, SharedEncoder, info_nce

from ._integration import harmony_map
from ._kernel_attention import attend, contrast, kernel_attention, spatial_signal_weights

GENE, IMAGE = 0, 1


def log_normalise(counts: torch.Tensor, library: torch.Tensor | None = None) -> torch.Tensor:
    """``log1p(1e4 * counts / library)``, the library by default the row sums of ``counts`` (last axis).

    The one normalisation of SENCA: its network, its region embedding and its principal axes all read counts so.
    """
    lib = counts.sum(-1) if library is None else library
    return torch.log1p(counts * (1e4 / lib.clamp_min(1.0).unsqueeze(-1)))


class SENCAModule(BaseModuleClass):
    """Shared Encoder with Neighbourhood Cross-Attention (tensors only; formulation: the docs' concepts page).

    For each spot i of a minibatch the module receives its neighbourhood N(i) (k spots, itself first):
    raw counts ``x`` ``(B, k, G)``, optional histology features ``h`` ``(B, k, D)`` and optional
    precomputed expression features ``expression`` ``(B, k, E)`` (the names of :data:`senca.data.MODULE_KEYS`).

    1. gene head ``g = MLP(log1p(1e4 x / l))`` (or ``MLP(e)`` when a precomputed representation is given),
       image head ``v = MLP((h - mean) / std)``;
    2. shared encoder with modality embeddings: ``t^g = S(g + e_gene)``, ``t^h = S(v + e_image)``;
    3. bidirectional multi-head neighbourhood cross-attention ``c^{g<-h}_i``, ``c^{h<-g}_i`` and the
       functional contrast ``delta_i = t^g_i - sum_{j != i} a^h_ij t^g_j`` with ``a^h`` the attention of
       ``t^h_i`` over the neighbours' ``t^h_j`` (who looks alike in H&E);
    4. ``z_i = LayerNorm(W [t^g_i, t^h_i, c^{g<-h}_i, c^{h<-g}_i, delta_i] + U [mean_j gene_j, mean_j h_j])``
       (the second, residual term with ``residual=True``);
    5. loss: negative-binomial likelihood of the counts (observed library size; by default the
       neighbourhood's summed counts, see ``reconstruct``) and Gaussian
       reconstruction of the standardised features, each averaged per feature, plus a symmetric
       InfoNCE between ``t^g_i`` and ``t^h_i``.

    Without histology (``n_image=0``) the attention runs gene-to-gene and
    ``z_i = LayerNorm(W [t^g_i, c^{g<-g}_i, delta_i])``.

    Parameters
    ----------
    n_genes
        Number of genes (decoded by the negative-binomial head).
    n_image
        Width of the histology features; 0 for expression-only.
    n_expression
        Width of a precomputed expression representation used as the gene head input; 0 to use
        log-normalised counts.
    n_latent
        Width of the embedding ``z``.
    n_hidden
        Token width ``d`` and hidden width of heads and decoders.
    n_heads
        Attention heads (``n_hidden`` must be divisible by it).
    n_layers
        Hidden layers of the modality heads and decoders.
    dropout
        Dropout rate.
    gene_weight, image_weight, infonce_weight
        Weights of the count likelihood, the histology reconstruction and the InfoNCE term.
    temperature
        InfoNCE temperature.
    image_mean, image_std
        Per-feature statistics used to standardise the histology features (stored as buffers).
    n_pcs
        When > 0 (and no ``n_expression``), the gene head reads the projection of the log-normalised counts
        on fixed principal axes (``pca_mean``, ``pca_components`` ``(n_genes, n_pcs)``, stored as buffers and
        computed on the training data by the model) instead of all genes: cheaper and less noisy.
    pca_mean, pca_components
        Gene means and principal axes of that projection.
    residual
        Add a linear path from the neighbourhood-averaged gene input and standardised histology
        features to ``z`` (before the LayerNorm): the embedding starts as a spatially smoothed linear
        representation and the attention adds to it.
    reconstruct
        ``"neighborhood"`` (default): decode the neighbourhood's summed counts and mean histology
        features, which makes ``z`` describe the local tissue rather than per-spot noise; ``"spot"``:
        decode the spot's own counts and features.

    Examples
    --------
    >>> import torch
    >>> from senca.module import SENCAModule
    >>> m = SENCAModule(n_genes=50, n_image=8, n_latent=4, n_hidden=16)
    >>> out = m.inference(torch.poisson(torch.ones(3, 6, 50) * 5), torch.randn(3, 6, 8))
    >>> out["z"].shape, out["attention"].shape
    (torch.Size([3, 4]), torch.Size([3, 6]))
    """

    def __init__(
        self,
        n_genes: int,
        n_image: int = 0,
        n_expression: int = 0,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.1,
        gene_weight: float = 1.0,
        image_weight: float = 1.0,
        infonce_weight: float = 0.1,
        temperature: float = 0.1,
        image_mean: np.ndarray | None = None,
        image_std: np.ndarray | None = None,
        reconstruct: Literal["neighborhood", "spot"] = "neighborhood",
        n_pcs: int = 0,
        pca_mean: np.ndarray | None = None,
        pca_components: np.ndarray | None = None,
        residual: bool = True,
        image_axes: np.ndarray | None = None,
        kernel_bandwidth: float = 1.0,
        kernel_scale: float = 1.0,
        image_block_scale: float = 1.0,
        image_block_weight: float = 1.0,
        passes: int = 2,
        n_integration_clusters: int = 0,
        integration_centroids: np.ndarray | None = None,
        integration_weight: np.ndarray | None = None,
        integration_total: np.ndarray | None = None,
    ):
        super().__init__()
        if reconstruct not in ("neighborhood", "spot"):
            raise ValueError(f"reconstruct must be 'neighborhood' or 'spot', got {reconstruct!r}.")
        self.reconstruct = reconstruct
        self.n_genes, self.n_image, self.n_expression = int(n_genes), int(n_image), int(n_expression)
        self.n_latent = int(n_latent)
        self.gene_weight, self.image_weight = float(gene_weight), float(image_weight)
        self.infonce_weight, self.temperature = float(infonce_weight), float(temperature)
        d = int(n_hidden)
        self.n_pcs = 0 if self.n_expression > 0 else int(n_pcs)
        self.residual = bool(residual)
        if self.n_pcs > 0:
            mean = np.zeros(self.n_genes) if pca_mean is None else np.asarray(pca_mean)
            comps = np.zeros((self.n_genes, self.n_pcs)) if pca_components is None else np.asarray(pca_components)
            if comps.shape != (self.n_genes, self.n_pcs):
                raise ValueError(f"pca_components must have shape ({self.n_genes}, {self.n_pcs}), got {comps.shape}.")
            self.register_buffer("pca_mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("pca_components", torch.as_tensor(comps, dtype=torch.float32))
        gene_in = self.n_expression or self.n_pcs or self.n_genes
        self.gene_head = MLP(gene_in, d, n_hidden=d, n_layers=n_layers, dropout=dropout)
        self.shared_encoder = SharedEncoder(d, n_modalities=2, dropout=dropout)
        self.attn_gene = NeighborhoodCrossAttention(d, n_heads, dropout=dropout)  # gene query
        self.attn_contrast = NeighborhoodCrossAttention(d, n_heads, project_values=False)
        n_fused = 3 * d
        if self.n_image > 0:
            self.image_head = MLP(self.n_image, d, n_hidden=d, n_layers=n_layers, dropout=dropout)
            self.attn_image = NeighborhoodCrossAttention(d, n_heads, dropout=dropout)  # image query
            self.image_decoder = MLP(self.n_latent, self.n_image, n_hidden=d, n_layers=n_layers, dropout=0.0)
            n_fused = 5 * d
            mean = np.zeros(self.n_image) if image_mean is None else np.asarray(image_mean)
            std = np.ones(self.n_image) if image_std is None else np.asarray(image_std)
            self.register_buffer("image_mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("image_std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))
            axes = np.eye(self.n_image, min(self.n_image, 10)) if image_axes is None else np.asarray(image_axes)
            self.register_buffer("image_axes", torch.as_tensor(axes, dtype=torch.float32))
            self.register_buffer("kernel_bandwidth", torch.tensor(float(kernel_bandwidth)))
            self.register_buffer("image_block_scale", torch.tensor(float(image_block_scale)))
        self.kernel_scale, self.image_block_weight, self.passes = (
            float(kernel_scale),
            float(image_block_weight),
            int(passes),
        )
        self.n_integration_clusters = int(n_integration_clusters) if self.n_pcs > 0 else 0
        if self.n_integration_clusters > 0:  # Harmony reference of the training cohort (zeros: no correction)
            k, d = self.n_integration_clusters, self.n_pcs
            for name, value, shape in (
                ("integration_centroids", integration_centroids, (k, d)),
                ("integration_weight", integration_weight, (k,)),
                ("integration_total", integration_total, (k, d)),
            ):
                value = np.zeros(shape) if value is None else np.asarray(value)
                if value.shape != shape:
                    raise ValueError(f"{name} must have shape {shape}, got {value.shape}.")
                self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))
        self.fuse = nn.Linear(n_fused, self.n_latent)
        if self.residual:  # linear path from the neighbourhood-averaged inputs (a smoothed-PCA-like start)
            self.skip = nn.Linear(gene_in + self.n_image, self.n_latent)
        self.norm = nn.LayerNorm(self.n_latent)
        self.gene_decoder = MLP(self.n_latent, self.n_genes, n_hidden=d, n_layers=n_layers, dropout=0.0)
        self.px_r = nn.Parameter(torch.zeros(self.n_genes))

    # ------------------------------------------------------------------ scvi-tools plumbing
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            MODULE_KEYS.X_KEY: tensors[neighbor_key(REGISTRY_KEYS.X_KEY)],
            MODULE_KEYS.H_KEY: tensors.get(neighbor_key(REGISTRY_KEYS.IMAGE_KEY)) if self.n_image > 0 else None,
            MODULE_KEYS.EXPRESSION_KEY: (
                tensors.get(neighbor_key(REGISTRY_KEYS.EXPRESSION_KEY)) if self.n_expression > 0 else None
            ),
            MODULE_KEYS.LIBRARY_KEY: tensors.get(neighbor_key(REGISTRY_KEYS.LIBRARY_KEY)),
        }

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {
            MODULE_KEYS.Z_KEY: inference_outputs[MODULE_KEYS.Z_KEY],
            MODULE_KEYS.LIBRARY_KEY: inference_outputs[MODULE_KEYS.LIBRARY_KEY],
        }

    def standardise_image(self, h: torch.Tensor) -> torch.Tensor:
        """Standardise histology features with the stored per-feature mean and std."""
        return (h - self.image_mean) / self.image_std

    @auto_move_data
    def inference(
        self,
        x: torch.Tensor,
        h: torch.Tensor | None = None,
        expression: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Embed each spot from its neighbourhood; returns ``z``, attention weights and ``delta``.

        Parameters
        ----------
        x
            ``(B, k, G)`` counts of each centre spot's neighbourhood (centre first).
        h
            ``(B, k, D)`` histology features, or ``None``.
        expression
            ``(B, k, E)`` precomputed expression representation (modules built with ``n_expression > 0``).
        library
            ``(B, k)`` library size the counts are normalised by (all genes; default: their row sums).
        """
        gene_in = expression if self.n_expression > 0 else self.expression_components(x, library)
        if gene_in is None:
            raise ValueError("This SENCA module expects a precomputed expression representation (expression).")
        library = x.sum(-1).clamp_min(1.0)  # (B, k): the observed total of the modelled counts (likelihood)
        tg = self.shared_encoder(self.gene_head(gene_in), GENE)  # (B, k, d)
        tg_i = tg[:, 0]
        k = tg.shape[1]
        self_mask = torch.zeros(k, dtype=torch.bool, device=tg.device)
        self_mask[0] = k > 1  # the contrast looks at the *other* spots; a lone spot keeps itself
        nbhd = self.reconstruct == "neighborhood"
        out: dict[str, torch.Tensor] = {
            MODULE_KEYS.GENE_TOKEN_KEY: tg_i,
            MODULE_KEYS.LIBRARY_KEY: library.sum(1) if nbhd else library[:, 0],
        }
        if self.n_image > 0:
            if h is None:
                raise ValueError("This SENCA module was built with histology features but got none (h).")
            h_std = self.standardise_image(h)
            th = self.shared_encoder(self.image_head(h_std), IMAGE)
            th_i = th[:, 0]
            c_gh, a_gh = self.attn_gene(tg_i, th)  # gene query, image keys/values
            c_hg, a_hg = self.attn_image(th_i, tg)  # image query, gene keys/values
            ctx, a_c = self.attn_contrast(th_i, th, values=tg, mask=self_mask)
            delta = tg_i - ctx
            fused = torch.cat([tg_i, th_i, c_gh, c_hg, delta], dim=-1)
            out[MODULE_KEYS.IMAGE_TOKEN_KEY] = th_i
            out[MODULE_KEYS.H_KEY] = h_std.mean(1) if nbhd else h_std[:, 0]
            out[MODULE_KEYS.ATTENTION_IMAGE_KEY] = a_hg
        else:
            c_gh, a_gh = self.attn_gene(tg_i, tg)  # gene-to-gene
            ctx, a_c = self.attn_contrast(tg_i, tg, values=tg, mask=self_mask)
            delta = tg_i - ctx
            fused = torch.cat([tg_i, c_gh, delta], dim=-1)
        pre = self.fuse(fused)
        if self.residual:
            pooled = [gene_in.mean(1)] + ([h_std.mean(1)] if self.n_image > 0 else [])
            pre = pre + self.skip(torch.cat(pooled, dim=-1))
        z = self.norm(pre)
        out[MODULE_KEYS.Z_KEY] = z
        out[MODULE_KEYS.ATTENTION_KEY] = a_gh
        out[MODULE_KEYS.CONTRAST_ATTENTION_KEY] = a_c
        out[MODULE_KEYS.DELTA_KEY] = delta
        return out

    def expression_components(self, counts: torch.Tensor, library: torch.Tensor | None = None) -> torch.Tensor:
        """Log-normalised counts (:func:`log_normalise`), on the stored principal axes when the module has them."""
        x = log_normalise(counts, library)
        if self.n_pcs == 0:
            return x
        return x @ self.pca_components - self.pca_mean @ self.pca_components

    def image_tokens(self, h: torch.Tensor) -> torch.Tensor:
        """Standardised histology features projected on their stored principal axes: the attention keys."""
        return self.standardise_image(h) @ self.image_axes

    @torch.inference_mode()
    def integrate(self, expression: torch.Tensor, samples: torch.Tensor | None = None) -> torch.Tensor:
        """Map each sample's expression principal components onto the training cohort's Harmony reference.

        Parameters
        ----------
        expression
            ``(n, n_pcs)`` principal components of the log-normalised counts.
        samples
            ``(n,)`` integer sample code of each row (``None``: one sample).

        Returns
        -------
        The corrected ``(n, n_pcs)`` components (unchanged when the module has no reference).
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

    @torch.inference_mode()
    def attention_embedding(
        self, expression: torch.Tensor, index: torch.Tensor, h: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The region embedding: H&E-keyed neighbourhood attention over the expression, on whole sections.

        Parameters
        ----------
        expression
            ``(n, E)`` expression values of *every* spot of the sections (principal components of the
            log-normalised counts).
        index
            ``(n, k)`` neighbour index into those rows, the spot itself in column 0.
        h
            ``(n, n_image)`` raw histology features, or ``None`` without an image.

        Returns
        -------
        ``z`` ``(n, E [+ n_image_pcs])``: the expression (and, down-weighted, the histology tokens) mixed over
        each neighbourhood with weights ``a_ij = softmax_j(-|k_i - k_j|^2 / (2 s^2 m))`` on the histology
        tokens ``k`` (uniform without an image), ``passes`` times; ``attention`` ``(n, k - 1)``; ``delta``, the
        functional contrast ``v_i - sum_j a_ij v_j`` of the expression values, each component weighted by its
        spatial autocorrelation (:func:`~senca.module._kernel_attention.spatial_signal_weights`).
        """
        keys = self.image_tokens(h) if (self.n_image > 0 and h is not None) else None
        a = kernel_attention(keys, index, float(self.kernel_bandwidth) if keys is not None else 1.0, self.kernel_scale)
        z = attend(expression, index, a, self.passes)
        if keys is not None and self.image_block_weight > 0:
            # histology components count by their spatial structure, as the contrast below does: colour and
            # texture variation that is not tissue (staining, noise) would otherwise split regions
            zh = attend(keys, index, a, self.passes) * spatial_signal_weights(keys, index)
            z = torch.cat([z, (self.image_block_weight * self.image_block_scale) * zh], dim=-1)
        # the contrast counts each component by how spatially structured it is: noise components would drown it
        delta = contrast(expression, index, a) * spatial_signal_weights(expression, index)
        return {MODULE_KEYS.Z_KEY: z, MODULE_KEYS.ATTENTION_KEY: a, MODULE_KEYS.DELTA_KEY: delta}

    @auto_move_data
    def generative(self, z: torch.Tensor, library: torch.Tensor) -> dict:
        """Decode counts (negative binomial, observed library size) and histology features."""
        rho = torch.softmax(self.gene_decoder(z), dim=-1)
        px = NegativeBinomial(mu=rho * library.unsqueeze(-1), theta=torch.exp(self.px_r))
        out = {MODULE_KEYS.PX_KEY: px}
        if self.n_image > 0:
            out[MODULE_KEYS.H_HAT_KEY] = self.image_decoder(z)
        return out

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict) -> LossOutput:
        """Weighted per-feature-averaged reconstruction losses plus the InfoNCE term."""
        x_nbr = tensors[neighbor_key(REGISTRY_KEYS.X_KEY)]
        x = x_nbr.sum(1) if self.reconstruct == "neighborhood" else x_nbr[:, 0]
        nb = -generative_outputs[MODULE_KEYS.PX_KEY].log_prob(x).mean(-1)
        recon = self.gene_weight * nb
        metrics = {"nb_loss": nb.mean()}
        infonce = torch.zeros((), device=x.device)
        if self.n_image > 0:
            h_hat = generative_outputs[MODULE_KEYS.H_HAT_KEY]
            img = 0.5 * ((h_hat - inference_outputs[MODULE_KEYS.H_KEY]) ** 2).mean(-1)
            recon = recon + self.image_weight * img
            metrics["histology_loss"] = img.mean()
            if self.infonce_weight > 0 and x.shape[0] > 1:
                infonce = info_nce(
                    inference_outputs[MODULE_KEYS.GENE_TOKEN_KEY], inference_outputs[MODULE_KEYS.IMAGE_TOKEN_KEY],
                    self.temperature,
                )  # fmt: skip
            metrics["infonce_loss"] = infonce
        loss = recon.mean() + self.infonce_weight * infonce
        return LossOutput(
            loss=loss,
            reconstruction_loss=recon,
            kl_local=torch.zeros_like(recon),
            n_obs_minibatch=x.shape[0],
            extra_metrics=metrics,
        )

    @torch.inference_mode()
    def sample(self, tensors: dict, n_samples: int = 1) -> torch.Tensor:
        """Sample counts ``(n_samples, B, G)`` from the fitted negative binomial."""
        inf = self.inference(**self._get_inference_input(tensors))
        gen = self.generative(inf[MODULE_KEYS.Z_KEY], inf[MODULE_KEYS.LIBRARY_KEY])
        return gen[MODULE_KEYS.PX_KEY].sample((n_samples,)).cpu()
