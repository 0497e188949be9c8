"""Saving that refuses to replace an existing folder unless asked, with a message that says how."""

from __future__ import annotations

import os


class SaveMixin:
    """``save`` for senca models: an existing ``dir_path`` is only replaced with ``overwrite=True``."""

    def save(self, dir_path: str, overwrite: bool = False, **kwargs) -> None:
        """Save the model (weights, setup and, by default, no AnnData) to ``dir_path``.

        Parameters
        ----------
        dir_path
            Folder to create.
        overwrite
            Replace ``dir_path`` if it exists; without it an existing folder raises.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save` (``prefix``, ``save_anndata``...).

        Returns
        -------
        ``None``.

        Examples
        --------
        >>> model.save("my_model", overwrite=True)  # doctest: +SKIP
        """
        if os.path.exists(dir_path) and not overwrite:
            raise ValueError(
                f"{os.fspath(dir_path)!r} already exists; pass overwrite=True to replace it, or save to another folder."
            )
        super().save(dir_path, overwrite=overwrite, **kwargs)
