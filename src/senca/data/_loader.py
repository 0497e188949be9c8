"""Neighbourhood mini-batches: each spot of a batch comes with the rows of its k spatial neighbours."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scvi import settings
from scvi.data import AnnDataManager
from scvi.dataloaders import AnnDataLoader, DataSplitter

from senca._scvi_private import default_dtype

from ._constants import REGISTRY_KEYS, neighbor_key

DEFAULT_GATHER_KEYS: tuple[str, ...] = (
    REGISTRY_KEYS.X_KEY,
    REGISTRY_KEYS.LIBRARY_KEY,
    REGISTRY_KEYS.IMAGE_KEY,
)
"""Registry keys whose neighbour rows :class:`NeighborhoodDataLoader` gathers by default: counts, their library
size (see :func:`registered_library`) and histology features (each where registered)."""


class _RowBank:
    """Row-gatherable view of one registered array; sparse data stays sparse (memory O(nnz))."""

    def __init__(self, data, key: str, columns: np.ndarray | None = None):
        if hasattr(data, "to_numpy") and not sp.issparse(data):  # pandas DataFrame in obsm
            data = data.to_numpy()
        if sp.issparse(data):
            data = data.tocsr() if data.format != "csr" else data
            self.sparse = True
        elif isinstance(data, np.ndarray):
            self.sparse = False
        else:  # backed / lazy arrays: index with sorted unique rows below
            self.sparse = False
        self.data = data
        self.key = key
        self.n_obs = data.shape[0]
        self.columns = None if columns is None else np.asarray(columns, dtype=np.int64)
        self.row_shape = tuple(data.shape[1:]) if self.columns is None else (len(self.columns),)

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Dense float32 array ``(len(rows), *row_shape)``; only these rows (and columns) are densified."""
        uniq, inverse = np.unique(rows, return_inverse=True)
        block = self.data[uniq]
        if self.columns is not None:
            block = block[:, self.columns]
        if sp.issparse(block):
            block = block.toarray()
        elif not isinstance(block, np.ndarray):
            block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
        return np.asarray(block, dtype=np.float32)[inverse]


def model_gene_positions(adata_manager: AnnDataManager) -> np.ndarray | None:
    """Columns of the registered counts that the model uses (``genes`` of its setup), or ``None`` for all of them."""
    genes = (adata_manager.registry.get("setup_args") or {}).get("genes")
    if genes is None:
        return None
    pos = adata_manager.adata.var_names.get_indexer([str(g) for g in genes])
    if (pos < 0).any():
        missing = [g for g, p in zip(genes, pos) if p < 0][:5]
        raise KeyError(f"{int((pos < 0).sum())} of the model's genes are not in this AnnData (e.g. {missing}).")
    return pos


def registered_library(adata_manager: AnnDataManager) -> np.ndarray | None:
    """Each spot's total counts over all genes, the library its counts are normalised by (training and inference).

    The registered library (``library_key`` of the setup), else the row sums of every registered gene when the model
    uses a gene selection, else ``None``: the model's genes are all the genes, and their row sums are the library.
    """
    if REGISTRY_KEYS.LIBRARY_KEY in adata_manager.data_registry:
        lib = adata_manager.get_from_registry(REGISTRY_KEYS.LIBRARY_KEY)
        return np.asarray(lib, dtype=np.float64).ravel()
    if model_gene_positions(adata_manager) is None:
        return None
    return np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY).sum(1), dtype=np.float64).ravel()


def _checked_index(adata_manager: AnnDataManager, neighbor_key: str = REGISTRY_KEYS.NEIGHBOR_KEY) -> np.ndarray:
    """The registered ``(n_obs, k)`` neighbour index, after checking that it belongs to this AnnData."""
    nbr = np.asarray(adata_manager.get_from_registry(neighbor_key))
    n_obs = adata_manager.adata.n_obs
    if nbr.ndim != 2 or nbr.shape[0] != n_obs:
        raise ValueError(f"The neighbour index must have shape (n_obs, k) = ({n_obs}, k); got {nbr.shape}.")
    if nbr.min() < 0 or nbr.max() >= n_obs or not np.array_equal(nbr[:, 0], np.arange(n_obs)):
        raise ValueError(
            "The neighbour index does not match this AnnData (out-of-range rows, or column 0 is not the "
            "spot itself): it is stale, e.g. the data were subset after setup. Call the model's "
            "setup_anndata on this AnnData again."
        )
    return nbr


def model_rows(
    adata_manager: AnnDataManager, rows: np.ndarray | None = None, batch_size: int = 4096, dense: bool = True
) -> Iterator[tuple[np.ndarray | sp.csr_matrix, np.ndarray | None]]:
    """The model's genes of the registered counts, block by block, with each spot's normalising library.

    Every spot's own row, read straight from the registered (sparse) counts in blocks of ``batch_size`` spots and
    densified one block at a time: for whole-data passes (principal axes, the region embedding), where a
    :class:`NeighborhoodDataLoader` would gather and densify each spot's k neighbours too. A registered neighbour
    index is checked as the loader checks it (a stale one raises).

    Parameters
    ----------
    adata_manager
        Manager of an AnnData set up by a senca model.
    rows
        Rows to read, in this order (default: all, in order).
    batch_size
        Spots per block.
    dense
        Densify each block; ``False`` leaves sparse counts sparse (CSR).

    Returns
    -------
    Iterator of ``(counts, library)``: float32 ``(B, n_model_genes)`` and float32 ``(B,)`` (``None`` when the
    library is the row sum of the counts themselves, see :func:`registered_library`).

    Examples
    --------
    >>> import senca
    >>> from senca.data._loader import model_rows
    >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
    >>> senca.model.SENCA.setup_anndata(adata, image_key="X_histology")
    >>> manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
    >>> [x.shape for x, _ in model_rows(manager, batch_size=128)]
    [(128, 200), (72, 200)]
    """
    if REGISTRY_KEYS.NEIGHBOR_KEY in adata_manager.data_registry:  # a stale index means stale data: say so here too
        _checked_index(adata_manager)
    counts = adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
    pos = model_gene_positions(adata_manager)
    library = registered_library(adata_manager)
    rows = np.arange(counts.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if sp.issparse(counts) and counts.format != "csr":
        counts = counts.tocsr()
    for start in range(0, len(rows), int(batch_size)):
        take = rows[start : start + int(batch_size)]
        if len(take) and take[-1] - take[0] == len(take) - 1 and (np.diff(take) == 1).all():
            block = counts[int(take[0]) : int(take[-1]) + 1]  # a contiguous slice: no fancy-index copy
        else:
            block = counts[take]
        if pos is not None:
            block = block[:, pos]
        if sp.issparse(block):
            block = block.toarray() if dense else sp.csr_matrix(block, dtype=np.float32)
        yield (
            block if sp.issparse(block) else np.asarray(block, dtype=np.float32),
            None if library is None else library[take].astype(np.float32),
        )


class NeighborhoodDataLoader(AnnDataLoader):
    """An :class:`~scvi.dataloaders.AnnDataLoader` whose batches also carry every spot's neighbourhood.

    The registered neighbour index (registry key ``neighbor_key``; ``(n_obs, k)`` row numbers, the
    spot itself in column 0) is returned as an int64 tensor ``(B, k)``, and for every registry key in
    ``gather_keys`` the rows of the k neighbours are gathered from the *whole* registered array into
    ``batch[senca.data.neighbor_key(key)]`` of shape ``(B, k, *feature_shape)`` (float32); the library size of
    the gathered counts comes with them (:func:`registered_library`, ``(B, k)``) where it is not their own sum.
    Sparse counts stay sparse in memory; only the gathered rows are densified, so memory is ``O(n_obs * k)`` plus one
    batch, never ``n_obs x n_obs``. When the model was set up with a gene selection (``genes`` in its setup
    arguments), only those columns of the counts are gathered. The gathered keys are not also loaded for the
    centre spots alone (column 0 of the neighbourhood is the spot itself). Because the arrays come from this
    loader's own ``adata_manager``, the same code serves training, inference and query AnnData.

    Parameters
    ----------
    adata_manager
        Manager of an AnnData set up by a senca model (or any manager that registers ``neighbor_key``).
    indices
        Rows to iterate over (neighbours may lie outside them: they are read from all rows).
    batch_size
        Spots per minibatch.
    shuffle
        Shuffle the rows every epoch (uses torch's global generator, so a seed makes it reproducible).
    neighbor_key
        Registry key of the neighbour index.
    gather_keys
        Registry keys whose neighbour rows are gathered; keys that are not registered are skipped.
        Defaults to the class attribute :attr:`gather_keys` (counts and histology features, where registered).
    data_and_attributes
        As in :class:`~scvi.dataloaders.AnnDataLoader`; by default every registered key, with the
        neighbour index loaded as int64.
    features
        Per-spot features the model derived from the registry (``{name: (n_obs, ...) array}``, e.g. SpaCRD's
        standardised genes under :data:`senca.data.FEATURE_KEYS`), gathered like registered arrays into
        ``batch[neighbor_key(name)]``. An array-like that computes its rows when indexed (``shape`` and row
        indexing) is read row by row, never materialised.
    **kwargs
        Passed to :class:`~scvi.dataloaders.AnnDataLoader`.

    Examples
    --------
    >>> import senca
    >>> from senca.data import NeighborhoodDataLoader, REGISTRY_KEYS, neighbor_key
    >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
    >>> senca.model.SENCA.setup_anndata(adata, image_key="X_histology")
    >>> manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
    >>> batch = next(iter(NeighborhoodDataLoader(manager, batch_size=32)))
    >>> tuple(batch[neighbor_key(REGISTRY_KEYS.X_KEY)].shape)
    (32, 6, 200)
    """

    gather_keys: tuple[str, ...] = DEFAULT_GATHER_KEYS

    def __init__(
        self,
        adata_manager: AnnDataManager,
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int = 128,
        shuffle: bool = False,
        neighbor_key: str = REGISTRY_KEYS.NEIGHBOR_KEY,
        gather_keys: Iterable[str] | None = None,
        data_and_attributes: list[str] | dict | None = None,
        features: dict[str, np.ndarray] | None = None,
        **kwargs,
    ):
        registered = list(adata_manager.data_registry.keys())
        if neighbor_key not in registered:
            raise KeyError(
                f"Registry key {neighbor_key!r} (the neighbour index) is not registered with this AnnData; "
                "set the data up with the model's setup_anndata first."
            )
        gather = self.gather_keys if gather_keys is None else tuple(gather_keys)
        if data_and_attributes is None:  # gathered keys come with the neighbourhood (column 0 is the spot itself)
            data_and_attributes = {k: default_dtype(k) for k in registered if k not in gather}
        elif isinstance(data_and_attributes, (list, tuple)):
            data_and_attributes = {k: default_dtype(k) for k in data_and_attributes}
        data_and_attributes = dict(data_and_attributes)
        data_and_attributes[neighbor_key] = np.int64
        super().__init__(
            adata_manager,
            indices=indices,
            batch_size=batch_size,
            shuffle=shuffle,
            data_and_attributes=data_and_attributes,
            **kwargs,
        )
        self.neighbor_key = neighbor_key
        gather_keys = gather
        columns = {REGISTRY_KEYS.X_KEY: model_gene_positions(adata_manager)}
        self.banks = {
            k: _RowBank(adata_manager.get_from_registry(k), k, columns.get(k))
            for k in gather_keys
            if k in registered and k != REGISTRY_KEYS.LIBRARY_KEY
        }
        library = registered_library(adata_manager) if REGISTRY_KEYS.LIBRARY_KEY in gather_keys else None
        if library is not None:  # (B, k): the normalisation of the gathered counts
            self.banks[REGISTRY_KEYS.LIBRARY_KEY] = _RowBank(library.astype(np.float32), REGISTRY_KEYS.LIBRARY_KEY)
        self.banks.update({name: _RowBank(_float32_rows(arr), name) for name, arr in (features or {}).items()})
        self.n_neighbors = _checked_index(adata_manager, neighbor_key).shape[1]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in super().__iter__():
            idx = batch[self.neighbor_key].long()
            batch[self.neighbor_key] = idx
            flat = idx.reshape(-1).cpu().numpy()
            for key, bank in self.banks.items():
                rows = torch.from_numpy(bank.gather(flat))
                batch[neighbor_key(key)] = rows.reshape(*idx.shape, *bank.row_shape)
            yield batch


def gather_neighborhoods(
    features: dict[str, np.ndarray], nbr: np.ndarray, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The minibatch a :class:`NeighborhoodDataLoader` with ``features`` yields, for the neighbourhoods ``nbr``.

    For data that is not registered (a target section scored by a trained model): the same keys, the same
    float32 rows, without an AnnData manager.

    Parameters
    ----------
    features
        ``{name: (n_obs, ...) array}``, as the loader's ``features``.
    nbr
        ``(B, k)`` neighbour row numbers (the spot itself in column 0).
    device
        Where the tensors go.

    Returns
    -------
    ``{REGISTRY_KEYS.NEIGHBOR_KEY: (B, k) int64, neighbor_key(name): (B, k, ...) float32 for every feature}``.

    Examples
    --------
    >>> import numpy as np
    >>> from senca.data import gather_neighborhoods
    >>> batch = gather_neighborhoods({"f": np.eye(3)}, np.array([[0, 1], [2, 0]]))
    >>> batch["f_nbr"].shape
    torch.Size([2, 2, 3])
    """
    nbr = np.asarray(nbr, dtype=np.int64)
    idx = torch.from_numpy(nbr)
    batch = {REGISTRY_KEYS.NEIGHBOR_KEY: idx.to(device)}
    for name, arr in features.items():
        arr = _float32_rows(arr)
        rows = torch.from_numpy(arr)[idx] if isinstance(arr, np.ndarray) else torch.from_numpy(np.asarray(arr[nbr]))
        batch[neighbor_key(name)] = rows.to(device)
    return batch


def _float32_rows(arr):
    """A feature array as float32 numpy, or as it is when it computes its rows on demand (row indexing, ``shape``).

    Such features (e.g. :class:`senca.pp._section_features.SectionGenes`) are never materialised whole: loaders read
    them row by row.
    """
    if isinstance(arr, np.ndarray) or not (hasattr(arr, "shape") and hasattr(arr, "__getitem__")):
        return np.asarray(arr, dtype=np.float32)
    return arr


class NeighborhoodDataSplitter(DataSplitter):
    """:class:`~scvi.dataloaders.DataSplitter` whose train/validation/test loaders are neighbourhood loaders.

    The split is drawn with ``scvi.settings.seed``, so a seeded run splits identically. Extra keyword
    arguments (``neighbor_key``, ``gather_keys``, ``batch_size``...) reach :class:`NeighborhoodDataLoader`.

    Examples
    --------
    >>> import senca
    >>> from senca.data import NeighborhoodDataSplitter
    >>> adata = senca.datasets.synthetic(n_spots=200, seed=0)
    >>> senca.model.SENCA.setup_anndata(adata)
    >>> manager = senca.model.SENCA._get_most_recent_anndata_manager(adata)
    >>> splitter = NeighborhoodDataSplitter(manager, train_size=0.9, batch_size=64)
    >>> splitter.setup()
    >>> len(splitter.train_idx)
    180
    """

    data_loader_cls = NeighborhoodDataLoader

    def __init__(self, adata_manager: AnnDataManager, *args, **kwargs):
        super().__init__(adata_manager, *args, **kwargs)
        # The seed is read when the splitter is made, not when Lightning calls setup(): worker processes started by
        # strategy="ddp_spawn" re-import scvi-tools with its default seed, and would otherwise split differently.
        self.split_seed = settings.seed

    def setup(self, stage: str | None = None):
        """Split the rows into train/validation/test sets (shuffled with the seed current at construction)."""
        if self.external_indexing is not None:
            return super().setup(stage)
        indices = np.arange(self.adata_manager.adata.n_obs)
        if self.shuffle_set_split:
            indices = np.random.RandomState(seed=self.split_seed).permutation(indices)
        self.val_idx = indices[: self.n_val]
        self.train_idx = indices[self.n_val : self.n_val + self.n_train]
        self.test_idx = indices[self.n_val + self.n_train :]
