"""A capture as a stream of JSON lines: the node side that sends it, the client side that reads it.

One line per event, so a capture crosses the API (and a manager's proxy) like
`exec`'s output does:
  {"ready": {"taps": [...]}}                     sockets open: traffic may start now
  {"frame": {"tap", "if", "out", "ts", "data"}}  data = the frame, base64
  {"tick": ts}                                   every 0.5 s without a frame
  {"end": {"reason", "captured", "dropped"}}     count / timeout / stopped
  {"error": {"kind", "message"}}                 the capture failed after it began
Ticks keep an idle stream moving, so a client that went away is noticed (the write
fails) and the sockets are closed within half a second. Frames wait for a slow client
in a queue of QUEUE_FRAMES at most: beyond it they are dropped and counted (`dropped`,
as tcpdump's "packets dropped"), so a capture of a busy link cannot grow the daemon.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from netagent.capture.points import CaptureRequest, NodeContext
from netagent.capture.sniffer import Capture, Frame
from netagent.contract.errors import ERRORS_BY_NAME, NotFound, VxswarmError

log = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[Any]]
_END = object()
#: Frames waiting for the client at most (about 64 MB of 64 kB frames at the worst).
QUEUE_FRAMES = 1024


def open_capture(req: CaptureRequest, ctx: NodeContext) -> tuple[Capture, list[str]]:
    """Resolve the points, compile the filter, open the sockets (blocking: run in a thread);
    the capture and, with `skip_missing`, why the points left out are missing.

    Raises before anything is streamed, so a bad request gets a plain error answer."""
    taps, ids, missing = [], [], []
    for i, point in enumerate(req.points):
        try:
            taps.append(ctx.tap(point))
        except NotFound as exc:
            if not req.skip_missing:
                raise
            missing.append(str(exc))
            continue
        ids.append(i)
    if not taps:
        raise NotFound(f"nothing to capture on this node: {'; '.join(missing)}")
    return Capture(taps, req.filter, req.count, req.timeout, ids=ids).open(), missing


async def stream_capture(
    cap: Capture, write: Write, missing: Sequence[str] = (), queue_frames: int = QUEUE_FRAMES
) -> None:
    """Send `cap`'s frames as JSON lines until it ends or `write` fails; always closes it.
    Errors and the end always reach the queue: only frames are dropped."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    dropped = 0

    def offer(frame: object) -> None:
        nonlocal dropped
        if queue.qsize() >= queue_frames:
            dropped += 1
        else:
            queue.put_nowait(frame)

    def pump() -> None:
        try:
            for frame in cap.frames():
                loop.call_soon_threadsafe(offer, frame)
        except Exception as exc:  # reported on the stream; the client decides
            log.warning("capture failed: %s", exc)
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    thread = threading.Thread(target=pump, name="capture", daemon=True)
    thread.start()
    try:
        ready = {"taps": [t.label for t in cap.taps], "missing": list(missing)}
        await write(_line({"ready": ready}))
        while (item := await queue.get()) is not _END:
            await write(_line(_event(item)))
        end = {"reason": cap.reason, "captured": cap.captured, "dropped": dropped}
        await write(_line({"end": end}))
    finally:
        cap.stop()
        await asyncio.to_thread(thread.join)
        cap.close()


def _event(item: object) -> dict[str, Any]:
    if item is None:
        return {"tick": True}
    if isinstance(item, Frame):
        return {"frame": {"tap": item.tap, "if": item.ifname, "out": item.outgoing,
                          "ts": item.ts, "data": base64.b64encode(item.data).decode()}}  # fmt: skip
    kind = type(item).__name__ if isinstance(item, VxswarmError) else "VxswarmError"
    return {"error": {"kind": kind, "message": str(item)}}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


# -- client side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    taps: tuple[str, ...]
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class End:
    reason: str
    captured: int
    #: Frames the node dropped because the client read too slowly.
    dropped: int = 0


def read_events(lines: Iterable[dict[str, Any]]) -> Iterator[Ready | Frame | End | None]:
    """Events of a capture stream (None for a tick); an error line is raised as its class."""
    for obj in lines:
        if "frame" in obj:
            f = obj["frame"]
            data = base64.b64decode(f["data"])
            yield Frame(int(f["tap"]), str(f["if"]), bool(f["out"]), float(f["ts"]), data)
        elif "tick" in obj:
            yield None
        elif "ready" in obj:
            ready = obj["ready"]
            yield Ready(tuple(ready.get("taps", ())), tuple(ready.get("missing", ())))
        elif "end" in obj:
            end = obj["end"]
            yield End(
                str(end.get("reason", "")), int(end.get("captured", 0)), int(end.get("dropped", 0))
            )
            return
        elif "error" in obj:
            err = obj["error"]
            raise ERRORS_BY_NAME.get(err.get("kind", ""), VxswarmError)(err.get("message", ""))
