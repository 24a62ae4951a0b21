"""``python -m ovr`` (and ``torchrun -m ovr``) runs the ``ovr`` command line."""

from ovr.cli import main

main()
