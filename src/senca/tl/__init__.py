"""Tools: region calling from an embedding (GMM/mclust-EEE, Leiden, k-means, spatial refinement) and discordance."""

from ._assign import assign_regions
from ._discordance import discordance
from ._regions import regions

__all__ = ["assign_regions", "discordance", "regions"]
