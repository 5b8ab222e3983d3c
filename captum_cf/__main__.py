"""``python -m captum_cf``: the ``captum-cf`` command (also what ``torchrun -m captum_cf`` runs)."""

from captum_cf.cli import main

raise SystemExit(main())
