"""A local SMTP sink for the demo and tests: every message is written to a folder as an .eml file.

    python -m devtools.mail_sink --dir demo-output/outbox --port 0
prints one JSON line {"host": ..., "port": ...} and serves until stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class EmlWriter:
    """aiosmtpd handler that stores each accepted message as ``<n>-<digest>.eml``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        data = envelope.original_content or envelope.content
        digest = hashlib.sha1(data).hexdigest()[:10]  # noqa: S324 - a file name, not security
        with self._lock:
            n = len(list(self.folder.glob("*.eml"))) + 1
            (self.folder / f"{n:05d}-{digest}.eml").write_bytes(data)
        return "250 Message accepted for delivery"


def start(folder: Path, host: str = "127.0.0.1", port: int = 0) -> Controller:
    """Start the sink in a background thread; ``controller.port`` is the bound port."""
    controller = Controller(EmlWriter(folder), hostname=host, port=port or _free_port(host))
    controller.start()
    return controller


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    controller = start(args.dir, args.host, args.port)
    print(json.dumps({"host": args.host, "port": controller.port, "dir": str(args.dir)}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
