"""Tools: region calling from an embedding (GMM/mclust-EEE, Leiden, k-means, spatial refinement) and discordance."""

from ._discordance import discordance
from ._regions import regions

__all__ = ["discordance", "regions"]
