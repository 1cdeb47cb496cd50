"""``python -m kubeops.sandbox``: see `kubeops.sandbox.process`."""

from __future__ import annotations

import sys

from kubeops.sandbox.process import main

sys.exit(main())
