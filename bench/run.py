"""Run every benchmark in bench/ and print their tables (each measures ratios side by side in one run).

Arguments (e.g. `--rounds 21`, `--venv DIR`) go to bench_core.py, the one benchmark that takes them.
bench_revisions.py compares two commits you name, so it is run by hand, not from here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    failures = 0
    for script in sorted(here.glob("bench_*.py")):
        if script.name == "bench_revisions.py":  # needs two revisions: run by hand
            continue
        print(f"== {script.name}", flush=True)
        args = sys.argv[1:] if script.name == "bench_core.py" else []
        failures += (
            subprocess.run([sys.executable, str(script), *args], check=False).returncode != 0
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
