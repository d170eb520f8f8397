"""``python -m processor.fake_stripe``."""

from processor.fake_stripe.cli import main

raise SystemExit(main())
