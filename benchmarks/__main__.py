"""``python -m benchmarks``: run every benchmark and write ``docs/benchmarks.md``.

``python -m benchmarks NAME ...`` runs only those and prints them (the page is left alone, so it
always holds every benchmark measured in one run). ``--real N`` also runs N real-stack rollouts
per canary kind and method in ``decision_quality`` (Temporal, Envoy, Prometheus; minutes each).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from benchmarks import MODULES, SettingError, environment

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main(argv: list[str]) -> int:
    if "--real" in argv:
        at = argv.index("--real")
        if at + 1 >= len(argv) or not argv[at + 1].isdigit():
            print("--real takes the number of real rollouts per canary kind and method, e.g. --real 5")
            return 2
        os.environ["SLUICE_BENCH_REAL_ROLLOUTS"] = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    names = argv or MODULES
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(MODULES)}")
        return 2
    sections = []
    for name in names:
        print(f"running {name} ...", flush=True)
        started = time.monotonic()
        try:
            section = importlib.import_module(f"benchmarks.{name}").run().strip()
        except SettingError as error:
            print(f"{name}: {error}")
            return 2
        print(section, f"\n({name}: {time.monotonic() - started:.0f}s)\n", flush=True)
        sections.append(section)
    if argv:
        return 0
    header = (
        "# Benchmarks\n\n"
        "Written by `python -m benchmarks` (`make bench`); rerun it to refresh this page.\n"
        "Measured on loopback with the local stack's real parts.\n\n"
        f"{environment()}\n"
    )
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
