"""``python -m senca`` runs the ``senca`` command line (see :mod:`senca.cli`)."""

from senca.cli import main

if __name__ == "__main__":
    main()
