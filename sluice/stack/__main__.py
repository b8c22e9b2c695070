"""``python -m sluice.stack --name reviews-v2 --port 9082``: one demo backend in this process.

What :class:`~sluice.stack.BackendProcess` runs; also handy to try a fault by hand.
"""

from __future__ import annotations

import argparse
import threading

from sluice.stack._backend import Backend, Fault


def main() -> None:
    """Serve one backend until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m sluice.stack", description="A demo backend that names its version."
    )
    parser.add_argument("--name", required=True, help="version name, e.g. reviews-v2")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    backend = Backend(args.name, args.port, Fault(args.error_rate, args.latency_ms)).start()
    print(f"{args.name} listening on {backend.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        backend.stop()


if __name__ == "__main__":
    main()
