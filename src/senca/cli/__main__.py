"""``python -m senca.cli`` runs the ``senca`` command line."""

from senca.cli import main

main()
