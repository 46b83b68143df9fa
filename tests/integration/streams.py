"""A streaming CLI command (`service logs -f`, `events`) run in the background of a
test: its stdout lines collected as they come, stopped by its pid."""

from __future__ import annotations

import subprocess
import threading

from netagent.lab.driver import VXSWARM, SwarmLab


class Streaming:
    """`vxswarm ARGS...` against the lab's manager, running until `stop()`."""

    def __init__(self, lab: SwarmLab, *args: str):
        env = {**lab.env, "VXSWARM_HOST": lab.socket(lab.via)}
        self.proc = subprocess.Popen(
            [*VXSWARM, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> str:
        """End it (SIGTERM, as Ctrl-C would); its stderr."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self._reader.join(10)
        return err

    def __enter__(self) -> Streaming:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()
