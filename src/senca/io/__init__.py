"""Input/output: the AnnData <-> SpatialData bridge and a Space Ranger (Visium) reader."""

from ._spatialdata import from_spatialdata, to_spatialdata
from ._visium import read_visium

__all__ = ["from_spatialdata", "read_visium", "to_spatialdata"]
