"""Reading json-file task logs: parsing, --since/--tail, and following across rotation."""

import json

from netagent.tasks.logs import LogEntry, LogReader, parse_entry, parse_time_ns, select
from netagent.tasks.shim import JsonLines, RotatingLog, rfc3339_nano


def _line(text: str, t: int, stream: str = "stdout") -> bytes:
    return json.dumps({"log": text, "stream": stream, "time": rfc3339_nano(t)}).encode() + b"\n"


def test_times_round_trip_with_nanoseconds():
    t = 1_796_605_143_123_456_789
    assert rfc3339_nano(t) == "2026-12-07T00:59:03.123456789Z"
    assert parse_time_ns(rfc3339_nano(t)) == t
    assert parse_time_ns("2026-12-07T00:59:03Z") == 1_796_605_143_000_000_000


def test_a_line_that_is_not_json_file_is_kept_as_it_is():
    assert parse_entry(b"ip netns exec: no such file\n") == LogEntry(
        0, "stdout", "ip netns exec: no such file\n"
    )


def test_since_then_tail():
    entries = [LogEntry(t, "stdout", f"{t}\n") for t in (1, 2, 3, 4)]
    assert [e.time_ns for e in select(entries, since_ns=2)] == [2, 3, 4]
    assert [e.time_ns for e in select(entries, since_ns=2, tail=2)] == [3, 4]
    assert select(entries, tail=0) == []
    assert select(entries) == entries


def test_json_lines_hold_a_partial_line_until_it_ends(tmp_path):
    out = JsonLines(RotatingLog(str(tmp_path / "t.log")))
    out.write("stdout", b"hel")
    out.write("stderr", b"oops\n")
    out.write("stdout", b"lo\nbye")
    out.close()
    with LogReader(tmp_path / "t.log") as reader:
        got = [(e.stream, e.log) for e in reader.history()]
    assert got == [("stderr", "oops\n"), ("stdout", "hello\n"), ("stdout", "bye")]


def test_a_follower_reads_on_across_a_rotation_without_loss_or_repeat(tmp_path):
    path = tmp_path / "t.log"
    log = RotatingLog(str(path), max_size=len(_line("line0\n", 0)) * 3, max_files=3)
    with LogReader(path) as reader:
        assert reader.history() == []  # no file yet
        log.write(_line("line0\n", 0))
        assert [e.log for e in reader.poll()] == ["line0\n"]
        # Past the size twice: the file the reader held is now t.log.2.
        for i in range(1, 7):
            log.write(_line(f"line{i}\n", i))
        assert (tmp_path / "t.log.2").exists()
        assert [e.log for e in reader.poll()] == [f"line{i}\n" for i in range(1, 7)]
        log.write(_line("line7\n", 7))
        assert [e.log for e in reader.poll()] == ["line7\n"]
    log.close()
    with LogReader(path) as again:
        assert [e.log for e in again.history(since_ns=5)] == ["line5\n", "line6\n", "line7\n"]
