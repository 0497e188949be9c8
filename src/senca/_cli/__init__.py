"""Helpers of the ``senca`` command line (see :mod:`senca.cli`): reading inputs, checking keys, atomic writes."""
