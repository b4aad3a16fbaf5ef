"""``python -m tinymim_cli ARGS`` is ``tinymim ARGS``."""

import sys

from tinymim_cli.main import main

sys.exit(main())
