"""``python -m captum_cf`` is the ``captum-cf`` command (what ``torchrun -m captum_cf`` runs)."""

import sys

from captum_cf.cli import main

if __name__ == "__main__":
    sys.exit(main())
