"""SpaCRD network: aligned image/gene encoders, neighbourhood cross-attention, category-regularised VAE, classifier.

Tensor-only (no AnnData). The model class :class:`senca.model.SpaCRD` feeds it minibatches that carry, for each
centre spot, the standardised gene features, histology features and image-presence mask of its ``k`` nearest
spots (the spot itself first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from senca.data._constants import FEATURE_KEYS, MODULE_KEYS, REGISTRY_KEYS, neighbor_key
from senca.nn import CentreCrossAttention, info_nce, mlp_layers

_GENE_NBR = neighbor_key(FEATURE_KEYS.SPACRD_GENE_KEY)  # (B, k, G) standardised log-expression of the k neighbours
_IMAGE_NBR = neighbor_key(FEATURE_KEYS.SPACRD_IMAGE_KEY)  # (B, k, D) standardised histology (zeros where missing)
_MASK_NBR = neighbor_key(FEATURE_KEYS.SPACRD_MASK_KEY)  # (B, k) 1.0 where the neighbour has histology, else 0.0


def distinct_rows(nbr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Where each distinct spot of a batch's neighbourhoods ``nbr`` (``(B, k)`` row numbers) first occurs.

    Returns ``pos`` (one flat position per distinct spot) and ``inv`` (each flat position's distinct spot), so that
    encoders run once per distinct spot (neighbourhoods overlap) and their output is spread back by ``inv``;
    ``None`` without row numbers.
    """
    if nbr is None:
        return None
    uniq, inv = torch.unique(nbr.reshape(-1), return_inverse=True)
    pos = torch.empty(len(uniq), dtype=torch.long, device=nbr.device)
    pos.scatter_(0, inv, torch.arange(inv.numel(), device=nbr.device))
    return pos, inv


class _SpaCRDNet(nn.Module):
    """One SpaCRD network: encoders, bidirectional centre cross-attention, category-regularised VAE, classifier."""

    def __init__(
        self,
        n_genes: int,
        n_image: int,
        n_hidden: int,
        n_embed: int,
        n_heads: int,
        n_latent: int,
        dropout: float,
        attention_dropout: float,
        input_dropout: float,
        n_classes: int = 2,
    ):
        super().__init__()
        self.input_dropout = nn.Dropout(float(input_dropout))
        self.gene_encoder = mlp_layers(n_genes, n_embed, n_hidden, 1, dropout, nn.ReLU)
        self.image_encoder = mlp_layers(n_image, n_embed, n_hidden, 1, dropout, nn.ReLU) if n_image > 0 else None
        self.token_norm = nn.LayerNorm(n_embed, elementwise_affine=False)
        self.attn_gene_from_image = CentreCrossAttention(n_embed, n_heads, attention_dropout)
        self.attn_image_from_gene = CentreCrossAttention(n_embed, n_heads, attention_dropout)
        self.fuse = nn.Sequential(nn.Linear(2 * n_embed, n_embed), nn.LayerNorm(n_embed))
        h_vae = max(n_latent, n_embed // 2)
        self.vae_encoder = nn.Sequential(nn.Linear(n_embed, h_vae), nn.ReLU(), nn.Linear(h_vae, 2 * n_latent))
        self.vae_decoder = nn.Sequential(nn.Linear(n_latent, h_vae), nn.ReLU(), nn.Linear(h_vae, n_embed))
        self.prior_means = nn.Parameter(0.01 * torch.randn(n_classes, n_latent))
        # two classes: one logit (cancer vs not); more: one logit per class
        n_out = 1 if n_classes == 2 else n_classes
        self.classifier = nn.Sequential(nn.Linear(2 * n_latent, n_latent), nn.ReLU(), nn.Linear(n_latent, n_out))

    @staticmethod
    def _encode(encoder, x: torch.Tensor, distinct: tuple | None, drop: nn.Module | None = None):
        """Apply ``encoder`` to ``(B, k, F)`` rows, once per distinct spot when ``distinct`` is known."""
        if distinct is None:
            return encoder(drop(x) if drop is not None else x)
        pos, inv = distinct
        rows = x.reshape(-1, x.shape[-1])[pos]
        enc = encoder(drop(rows) if drop is not None else rows)
        return enc[inv].reshape(*x.shape[:-1], enc.shape[-1])

    def tokens(self, x: torch.Tensor, h: torch.Tensor | None, hmask: torch.Tensor | None, distinct=None):
        """Gene and image tokens ``(B, k, d)``; the image token falls back to the gene token where absent."""
        tg = self.token_norm(self._encode(self.gene_encoder, x, distinct, self.input_dropout))
        if self.image_encoder is None or h is None:
            return tg, tg, None
        th = self.token_norm(self._encode(self.image_encoder, h, distinct))
        present = hmask if hmask is not None else torch.ones(th.shape[:-1], device=th.device)
        th = torch.where(present[..., None] > 0.5, th, tg)
        return tg, th, present

    def forward(self, x, h, hmask, distinct, stage: str) -> dict:
        tg, th, present = self.tokens(x, h, hmask, distinct)
        tg0, th0 = tg[:, 0], th[:, 0]
        present0 = present[:, 0] if present is not None else None
        out = {"tg0": tg0, "th0": th0, "present0": present0}
        if stage == "align":
            return out
        c_g, a_g = self.attn_gene_from_image(tg0, th)  # gene query over the neighbourhood's image tokens
        c_h, a_h = self.attn_image_from_gene(th0, tg)  # image query over the neighbourhood's gene tokens
        fused = self.fuse(torch.cat([c_g, c_h], dim=-1))
        qm, qlv = self.vae_encoder(fused).chunk(2, dim=-1)
        qlv = qlv.clamp(-10.0, 10.0)
        z = qm + torch.randn_like(qm) * torch.exp(0.5 * qlv) if self.training else qm
        logit = self.classifier(torch.cat([qm, qlv], dim=-1))
        logit = logit.squeeze(-1) if logit.shape[-1] == 1 else logit
        out.update(fused=fused, qm=qm, qlv=qlv, z=z, logit=logit, attention_gene=a_g, attention_image=a_h)
        return out


def _members_prefix_hook(module, state_dict, prefix, *args, **kwargs):
    """Load a single-network state dict (saved before ``n_members`` existed) into member 0."""
    if any(k.startswith(prefix + "members.") for k in state_dict):
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[prefix + "members.0." + key[len(prefix) :]] = state_dict.pop(key)


class SpaCRDModule(BaseModuleClass):
    """The SpaCRD network (tensor-only), optionally an ensemble of ``n_members`` independently initialised copies.

    Stage ``"align"``: gene and image encoders aligned by symmetric InfoNCE over spots that have histology
    features. Stage ``"detect"``: bidirectional cross-attention between the centre spot's tokens and its
    neighbourhood's tokens of the other modality, fused; a VAE on the fused vector whose prior mean is a learnable
    mean of the spot's class (held apart by a bounded hinge ``relu(margin - ||mu0 - mu1||)``); a classifier on
    ``(mu, log var)``. For ``epoch < n_warmup_epochs`` only the VAE loss trains, then
    ``BCE + vae_weight * VAE (+ contrastive_weight * InfoNCE)`` (cross-entropy with more than two classes).

    With ``n_members > 1`` the module holds that many networks, each drawn from its own initialisation and trained
    on the same minibatches with its own loss (the losses are summed); the logit is the mean of the members'
    logits. An ensemble over initialisations averages out the large seed-to-seed spread of a single network
    trained on a few sections.

    Missing histology (expression-only sections, or NaN rows) is handled per spot: the image token of a spot
    without features is replaced by its gene token, which stage 1 aligned to the image space. With no image at all
    (``n_image == 0``) both attention directions run gene-to-gene.

    Labels are float class codes (0/1 for two classes); NaN marks a spot without a label: it takes no part in the
    classification loss, and its KL term is the expected KL under the classifier's (detached) class probabilities,
    since its class prior is unknown. Its features still reach its neighbours through the attention.

    Parameters
    ----------
    n_genes
        Number of gene features.
    n_image
        Number of histology features (0: expression-only).
    n_hidden
        Hidden width of the encoders (the paper: 1024).
    n_embed
        Token width and attention width (the paper: 512).
    n_heads
        Attention heads (the paper: 8).
    n_latent
        VAE latent size (the paper: 64).
    dropout
        Encoder dropout (the paper: 0.2).
    attention_dropout
        Attention dropout (the paper: 0.1).
    temperature
        InfoNCE temperature (the paper: 0.07).
    margin
        Target distance between the two class prior means (bounded separation term).
    margin_weight
        Weight of the separation hinge.
    kl_weight
        Weight of the KL term in the VAE loss (the paper: 0.5).
    vae_weight
        Weight of the VAE loss after warm-up (the paper: 0.1).
    contrastive_weight
        Weight of the InfoNCE term kept during stage 2 (the public code drops it; the paper implies alignment is
        kept).
    n_warmup_epochs
        Stage-2 epochs that train the VAE loss only.
    input_dropout
        Dropout on the gene features (masks genes at random during training; helps transfer to new sections).
    n_members
        Number of networks in the ensemble (the paper: 1).
    n_classes
        Number of classes. 2 (the paper): one logit (cancer vs not) and a binary cross-entropy. More: one logit per
        class, a cross-entropy, one prior mean per class, the hinge summed over all pairs of prior means and divided by
        ``n_classes - 1``.

    Examples
    --------
    >>> import torch
    >>> from senca.module import SpaCRDModule
    >>> m = SpaCRDModule(n_genes=50, n_image=8, n_members=2)
    >>> batch = {"spacrd_x_nbr": torch.randn(4, 7, 50), "spacrd_h_nbr": torch.randn(4, 7, 8),
    ...          "spacrd_hmask_nbr": torch.ones(4, 7), "labels": torch.tensor([[0.0], [1.0], [0.0], [1.0]])}
    >>> _, _, out = m(batch)
    >>> out.loss.shape
    torch.Size([])
    """

    def __init__(
        self,
        n_genes: int,
        n_image: int = 0,
        n_hidden: int = 256,
        n_embed: int = 128,
        n_heads: int = 4,
        n_latent: int = 32,
        dropout: float = 0.2,
        attention_dropout: float = 0.1,
        temperature: float = 0.07,
        margin: float = 4.0,
        margin_weight: float = 0.1,
        kl_weight: float = 0.5,
        vae_weight: float = 0.1,
        contrastive_weight: float = 0.1,
        n_warmup_epochs: int = 10,
        input_dropout: float = 0.0,
        n_members: int = 1,
        n_classes: int = 2,
    ):
        super().__init__()
        if n_embed % n_heads:
            raise ValueError(f"n_embed={n_embed} must be divisible by n_heads={n_heads}.")
        if n_genes < 1:
            raise ValueError(f"n_genes must be >= 1, got {n_genes}.")
        if int(n_members) < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}.")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}.")
        self.n_genes = int(n_genes)
        self.n_image = int(n_image)
        self.n_members = int(n_members)
        self.n_classes = int(n_classes)
        self.temperature = float(temperature)
        self.margin = float(margin)
        self.margin_weight = float(margin_weight)
        self.kl_weight = float(kl_weight)
        self.vae_weight = float(vae_weight)
        self.contrastive_weight = float(contrastive_weight)
        self.n_warmup_epochs = int(n_warmup_epochs)
        self.stage = "detect"
        self.members = nn.ModuleList(
            _SpaCRDNet(
                self.n_genes,
                self.n_image,
                n_hidden,
                n_embed,
                n_heads,
                n_latent,
                dropout,
                attention_dropout,
                input_dropout,
                self.n_classes,
            )
            for _ in range(self.n_members)
        )
        self._register_load_state_dict_pre_hook(_members_prefix_hook, with_module=True)

    def _get_inference_input(self, tensors):
        return {
            MODULE_KEYS.X_KEY: tensors[_GENE_NBR],
            MODULE_KEYS.H_KEY: tensors.get(_IMAGE_NBR),
            MODULE_KEYS.HMASK_KEY: tensors.get(_MASK_NBR),
            MODULE_KEYS.NBR_KEY: tensors.get(REGISTRY_KEYS.NEIGHBOR_KEY),
        }

    def _get_generative_input(self, tensors, inference_outputs):
        return {MODULE_KEYS.Z_KEY: inference_outputs.get(MODULE_KEYS.Z_KEY)}

    @auto_move_data
    def inference(self, x, h=None, hmask=None, nbr=None) -> dict:
        """Encode a neighbourhood minibatch with every member.

        Parameters
        ----------
        x
            ``(B, k, G)`` gene features of each centre spot's neighbourhood (centre first).
        h
            ``(B, k, D)`` histology features, or ``None``.
        hmask
            ``(B, k)`` histology presence mask, or ``None`` (all present).
        nbr
            ``(B, k)`` row numbers of the neighbours, or ``None``. Only used to encode each distinct spot once
            (a speed-up; the result is the same).

        Returns
        -------
        Dict with ``members`` (one dict per member: centre tokens ``tg0``/``th0``, centre image mask
        ``present0``, fused vector ``fused``, VAE posterior ``qm``/``qlv``, sample ``z``, classifier ``logit``
        ``(B,)`` and the two attention maps), ``z`` (the members' samples) and, in the detection stage, ``logit``:
        the mean of the members' logits.
        """
        distinct = distinct_rows(nbr)  # shared by every member's two encoders
        members = [net(x, h, hmask, distinct, self.stage) for net in self.members]
        z = [m.get(MODULE_KEYS.Z_KEY) for m in members] if self.stage != "align" else None
        out = {MODULE_KEYS.MEMBERS_KEY: members, MODULE_KEYS.Z_KEY: z}
        if self.stage != "align":
            out[MODULE_KEYS.LOGIT_KEY] = torch.stack([m[MODULE_KEYS.LOGIT_KEY] for m in members]).mean(0)
        return out

    @auto_move_data
    def generative(self, z=None) -> dict:
        """Decode each member's latent back to its fused vector (``None`` in the alignment stage)."""
        if z is None:
            return {MODULE_KEYS.RECON_KEY: None}
        return {MODULE_KEYS.RECON_KEY: [net.vae_decoder(zi) for net, zi in zip(self.members, z, strict=True)]}

    def _contrastive(self, out) -> torch.Tensor:
        present = out["present0"]
        tg0 = out["tg0"]
        if present is None:
            return tg0.sum() * 0.0
        keep = present > 0.5
        if int(keep.sum()) < 2:
            return tg0.sum() * 0.0
        return info_nce(out["th0"][keep], tg0[keep], self.temperature)

    def _class_probs(self, logit: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` class probabilities from the classifier's logits (one logit for two classes)."""
        if self.n_classes == 2:
            p = torch.sigmoid(logit)
            return torch.stack([1.0 - p, p], dim=-1)
        return torch.softmax(logit, dim=-1)

    def _separation(self, prior_means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance between the class prior means and its bounded hinge (no reward beyond the margin)."""
        if self.n_classes == 2:
            sep = torch.linalg.vector_norm(prior_means[0] - prior_means[1])
            return sep, F.relu(self.margin - sep)
        # every pair of classes; divided by K - 1 (the pairs each mean belongs to), so that each mean is pushed as
        # hard as one of the two binary means
        dist = torch.pdist(prior_means)
        return dist.min(), F.relu(self.margin - dist).sum() / (self.n_classes - 1)

    def _classification(self, logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the labelled spots (binary with one logit), 0 for a minibatch without any."""
        if self.n_classes == 2:
            return F.binary_cross_entropy_with_logits(logit, y)
        return F.cross_entropy(logit, y.long())

    def _member_loss(self, net: _SpaCRDNet, out: dict, recon_out, y, warm: bool) -> tuple:
        nce = self._contrastive(out)
        fused = out["fused"]
        qm, qlv = out["qm"], out["qlv"]
        logit = out[MODULE_KEYS.LOGIT_KEY]
        # reconstruction of the fused vector; the target is detached so the encoder cannot shrink it to a
        # constant to make reconstruction trivial
        recon = ((recon_out - fused.detach()) ** 2).mean(-1)
        # (the order of the operations below is that of senca 0.x's binary loss: the autograd graph, and so the
        # floating-point sums of the gradients, stay the same for fully labelled binary minibatches)
        labelled = torch.isfinite(y)
        every = bool(labelled.all())
        if every:
            mu_y = net.prior_means[y.long()]
            kl = 0.5 * (torch.exp(qlv) + (qm - mu_y) ** 2 - 1.0 - qlv).sum(-1)
        else:
            # a spot without a label: the expected KL under the classifier's belief about its class
            kl_all = 0.5 * (torch.exp(qlv)[:, None] + (qm[:, None] - net.prior_means[None]) ** 2 - 1.0 - qlv[:, None])
            kl_all = kl_all.sum(-1)  # (B, K)
            code = torch.where(labelled, y, torch.zeros_like(y)).long()
            kl_y = kl_all.gather(1, code[:, None]).squeeze(1)
            expected = (self._class_probs(logit).detach() * kl_all).sum(-1)
            kl = torch.where(labelled, kl_y, expected)
        sep, hinge = self._separation(net.prior_means)
        vae = recon.mean() + self.kl_weight * kl.mean() + self.margin_weight * hinge
        if every:
            cls = self._classification(logit, y)
        elif bool(labelled.any()):
            cls = self._classification(logit[labelled], y[labelled])
        else:
            cls = logit.sum() * 0.0
        if warm:
            total = vae + self.contrastive_weight * nce
        else:
            total = cls + self.vae_weight * vae + self.contrastive_weight * nce
        return total, recon, kl, cls, nce, sep

    def loss(self, tensors, inference_outputs, generative_outputs, epoch: int | None = None) -> LossOutput:
        """Stage-dependent loss (see the class docstring), summed over the members."""
        members = inference_outputs[MODULE_KEYS.MEMBERS_KEY]
        n = members[0]["tg0"].shape[0]
        if self.stage == "align":
            nce = torch.stack([self._contrastive(m) for m in members])
            return LossOutput(loss=nce.sum(), n_obs_minibatch=n, extra_metrics={"infonce": nce.mean().detach()})
        y = tensors[REGISTRY_KEYS.LABELS_KEY].reshape(-1).float().to(members[0]["qm"].device)
        warm = epoch is not None and epoch < self.n_warmup_epochs
        parts = [
            self._member_loss(net, m, r, y, warm)
            for net, m, r in zip(self.members, members, generative_outputs[MODULE_KEYS.RECON_KEY], strict=True)
        ]
        total, recon, kl, cls, nce, sep = (torch.stack(list(p)) for p in zip(*parts, strict=True))
        return LossOutput(
            loss=total.sum(),
            reconstruction_loss=recon.sum(0),
            kl_local=kl.sum(0),
            n_obs_minibatch=n,
            extra_metrics={
                "bce" if self.n_classes == 2 else "cross_entropy": cls.mean().detach(),
                "infonce": nce.mean().detach(),
                "prior_separation": sep.mean().detach(),
            },
        )

    @torch.inference_mode()
    def sample(self, *args, **kwargs):
        """Not a generative model of counts: sampling is not defined."""
        raise NotImplementedError("SpaCRDModule is a detector; it does not sample data.")

    @torch.inference_mode()
    @auto_move_data
    def predict_logit(self, x, h=None, hmask=None, nbr=None) -> torch.Tensor:
        """Classifier logit of the centre spot of each neighbourhood (eval mode, posterior mean, members' mean).

        Parameters
        ----------
        x, h, hmask, nbr
            As in :meth:`inference`.

        Returns
        -------
        ``(B,)`` logits (two classes) or ``(B, K)`` logits, one per class.
        """
        stage = self.stage
        self.stage = "detect"
        try:
            return self.inference(x, h, hmask, nbr)[MODULE_KEYS.LOGIT_KEY]
        finally:
            self.stage = stage
