"""`service logs` output as docker prints it, and its --tail / --since values."""

import pytest

from netagent.contract.errors import InvalidArgument
from orchestrator.cli.service_logs import LogStyle, format_line, parse_tail, prefix
from orchestrator.cli.timestamps import parse_timestamp

LINE = {
    "service": "web",
    "service_id": "s" * 25,
    "slot": 3,
    "task_id": "0123456789abcdef012345678",
    "node": "worker1",
    "node_id": "n" * 25,
    "stream": "stdout",
    "time_ns": 1_796_605_143_000_000_005,
    "log": "hello\n",
}


def test_prefix_is_name_slot_short_task_id_at_node():
    assert format_line(LINE, LogStyle()) == "web.3.0123456789ab@worker1    | hello\n"


def test_slots_are_padded_to_the_widest_slot_as_docker_does():
    assert prefix(LINE, LogStyle(padding=2)) == "web.3.0123456789ab@worker1 "
    assert prefix({**LINE, "slot": 10}, LogStyle(padding=2)) == "web.10.0123456789ab@worker1"


@pytest.mark.parametrize(
    ("style", "printed"),
    [
        (LogStyle(no_trunc=True), "web.3.0123456789abcdef012345678@worker1    | hello\n"),
        (LogStyle(no_task_ids=True), "web.3@worker1    | hello\n"),
        (LogStyle(no_resolve=True), f"{'s' * 25}.3.0123456789ab@{'n' * 25}    | hello\n"),
        (LogStyle(raw=True), "hello\n"),
        (
            LogStyle(timestamps=True),
            "2026-12-07T00:59:03.000000005Z web.3.0123456789ab@worker1    | hello\n",
        ),
        (LogStyle(timestamps=True, raw=True), "2026-12-07T00:59:03.000000005Z hello\n"),
    ],
)
def test_flags_change_the_line_as_docker_does(style, printed):
    assert format_line(LINE, style) == printed


def test_a_last_line_without_newline_still_ends_its_printed_line():
    assert format_line({**LINE, "log": "partial"}, LogStyle(raw=True)) == "partial\n"


@pytest.mark.parametrize(("text", "lines"), [("all", None), ("0", 0), ("25", 25)])
def test_tail_is_all_or_a_count(text, lines):
    assert parse_tail(text) == lines


@pytest.mark.parametrize("text", ["-1", "ten", "1.5", ""])
def test_a_bad_tail_is_refused_naming_it(text):
    with pytest.raises(InvalidArgument, match=f"invalid value '{text}' for --tail"):
        parse_tail(text)


NOW = 1_796_605_143.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("42m", NOW - 42 * 60),
        ("1h30m", NOW - 5400),
        ("1796605000", 1796605000.0),
        ("1796605000.123456789", 1796605000.123456789),
        ("2026-12-07T00:59:03Z", 1796605143.0),
        ("2026-12-07T00:59:03.5Z", 1796605143.5),
        ("2026-12-07T01:59:03.25+01:00", 1796605143.25),
    ],
)
def test_since_takes_docker_forms(text, seconds):
    assert parse_timestamp(text, "--since", now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-40", "5 minutes"])
def test_a_bad_since_is_refused_naming_flag_and_value(text):
    with pytest.raises(InvalidArgument, match=f"invalid value '{text}' for --until"):
        parse_timestamp(text, "--until", now=NOW)
