"""`python -m balerc.cli` runs the command line."""

from .main import main

main()
