"""``python -m smart_retrievers.cli``: the ``smart-retrievers`` command."""

import sys

from . import main

sys.exit(main())
