"""Whether this kernel can encrypt overlay traffic with IPsec ESP (`--opt encrypted`).

Swarm encrypts an overlay's VXLAN packets between VTEPs with ESP transport-mode
states, AES-GCM (`rfc4106(gcm(aes))`), made with `ip xfrm`. The probe asks the kernel
for exactly such a state, in a network namespace of its own (`unshare --net`: it
lives only as long as the `ip` command, so nothing is left behind even if this
process dies), and returns the kernel's own words when it refuses.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

IP = shutil.which("ip") or "/usr/sbin/ip"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

#: An ESP state as Swarm's encrypted overlays use, between two documentation addresses.
PROBE_STATE = [
    "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2",
    "proto", "esp", "spi", "0x100", "reqid", "1", "mode", "transport",
    "aead", "rfc4106(gcm(aes))", "0x" + "11" * 20, "128",
]  # fmt: skip


@functools.cache
def esp_refusal() -> str | None:
    """None if the kernel accepts an AES-GCM ESP state; else its reason, one line."""
    try:
        done = subprocess.run(
            [UNSHARE, "--net", IP, *PROBE_STATE], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot probe IPsec ESP: {exc}"
    if done.returncode == 0:
        return None
    words = " ".join(done.stderr.split()) or f"ip xfrm exited with {done.returncode}"
    return words.removeprefix("Error: ").rstrip(".")
