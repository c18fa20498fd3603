"""``python -m bench`` (``make bench``): every benchmark, one after another, each in its own process.

Each benchmark prints its own figures, measured side by side in one run; they are not part of
pytest because timings on a shared 2-core machine are noise, while ratios measured together are not.
Run one alone with ``python -m bench.<name> --help``.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("client_pull", "core_merge", "e2e", "webhooks_burst", "chaos", "commands", "fleet")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== bench.{name} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
