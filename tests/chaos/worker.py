"""``python -m tests.chaos.worker RATE [worker flags]``: the real ``payproc worker`` command
with ``DieAfterCharge(RATE)`` wrapped around its gateway adapter (see ``tests.chaos.faults``).
"""

from __future__ import annotations

import sys

from processor import cli
from processor.ports import Gateway
from tests.chaos.faults import DieAfterCharge


def main(argv: list[str]) -> int:
    rate = float(argv[0])

    def wrap(inner: Gateway) -> Gateway:
        return DieAfterCharge(inner, rate)

    return cli.main(["worker", *argv[1:]], wrap_gateway=wrap)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
