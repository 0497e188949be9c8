"""Input/output: the AnnData <-> SpatialData bridge and Space Ranger (Visium, Visium HD) readers."""

from ._spatialdata import from_spatialdata, to_spatialdata
from ._visium import read_visium
from ._visium_hd import read_visium_hd

__all__ = ["from_spatialdata", "read_visium", "read_visium_hd", "to_spatialdata"]
