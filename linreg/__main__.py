"""``python -m linreg`` runs the ``linreg`` command."""

from linreg.cli import main

if __name__ == "__main__":
    main()
