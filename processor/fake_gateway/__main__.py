"""``python -m processor.fake_gateway``: the same as ``payproc fake-gateway``."""

from processor.fake_gateway.cli import main

raise SystemExit(main())
