"""``python -m kdmri``: see :mod:`kdmri.cli`."""

from .cli import main

raise SystemExit(main())
