"""``python -m kdmri``: see :mod:`kdmri.tools.cli`."""

from kdmri.tools.cli import main

raise SystemExit(main())
