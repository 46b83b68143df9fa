"""`slowreply`: answers each GET after a delay with "<received>,<replied>".

The workload of the Swarm rolling-update walkthrough: a client loops over
`curl` while the service is updated, and every reply carries the RFC 3339
(nanosecond) times the request arrived and was answered. A request cut off by
a task being stopped shows up as an error in the loop; a graceful stop (see
`httpserver`) shows up as none. Owns no kernel object besides its listening socket.

Run: python -m netagent.tasks.workloads.slowreply [--host H] [--port 8080] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from netagent.tasks.workloads import SERVER_PORTS, httpserver

DEFAULT_PORT = SERVER_PORTS["slowreply"]
DEFAULT_DELAY = 1.0


def reply_body(received_ns: int, replied_ns: int) -> str:
    """'<received>,<replied>' as RFC 3339 UTC times with nanoseconds, newline-terminated."""
    return f"{httpserver.rfc3339_ns(received_ns)},{httpserver.rfc3339_ns(replied_ns)}\n"


def make_app(
    args: argparse.Namespace,
    clock: Callable[[], int] = time.time_ns,
    sleep: Callable[[float], None] = time.sleep,
) -> httpserver.App:
    """The slowreply handler: wait `args.delay` seconds, then report both times."""
    delay: float = args.delay

    def app(_req: httpserver.Request) -> httpserver.Response:
        received = clock()
        sleep(delay)
        return httpserver.Response(200, reply_body(received, clock()).encode())

    return app


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 3600.0:
        raise argparse.ArgumentTypeError(f"invalid delay {text!r}: expected 0..3600 seconds")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delay",
        type=_delay,
        default=DEFAULT_DELAY,
        help=f"seconds to wait before replying (default {DEFAULT_DELAY})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    return httpserver.main("slowreply", make_app, DEFAULT_PORT, argv, _add_arguments)


if __name__ == "__main__":
    sys.exit(main())
