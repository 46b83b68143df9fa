"""The Go template subset behind `--format` and `inspect -f`."""

import json
import re

import pytest

from orchestrator.cli.output import FormatType, columns, echo_rows
from orchestrator.cli.templates import (
    TemplateError,
    check,
    header,
    listing_lines,
    method,
    render,
)

SERVICE = {
    "id": "3e1ba982d71fb6821ebe9e7fe",
    "spec": {
        "name": "web",
        "labels": {"tier": "front", "com.x": "y"},
        "ports": [{"published": 8080, "target": 80}],
        "command": ["sleep", "1000"],
    },
    "created_at": 1796605706.5,
    "replicas": 3,
    "update_status": None,
    "rebalance": False,
}


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{.ID}}", "3e1ba982d71fb6821ebe9e7fe"),
        ("{{.Spec.Name}}", "web"),
        ("{{.spec.name}}", "web"),
        ("{{.CreatedAt}}", "1796605706.5"),
        ("{{.Replicas}}", "3"),
        ("{{.Rebalance}}", "false"),
        ("{{.UpdateStatus}}", "<nil>"),
        ("name={{.Spec.Name}} id={{.ID}}", "name=web id=3e1ba982d71fb6821ebe9e7fe"),
        ("{{json .Spec.Labels}}", '{"tier":"front","com.x":"y"}'),
        ("{{json .Spec.Ports}}", '[{"published":8080,"target":80}]'),
        ('{{index .Spec.Labels "com.x"}}', "y"),
        ('{{index .Spec.Labels "missing"}}', ""),
        ("{{index .Spec.Command 1}}", "1000"),
        ('{{join .Spec.Command " "}}', "sleep 1000"),
        ('{{join (split "a,b,c" ",") "+"}}', "a+b+c"),
        ("{{upper .Spec.Name}} {{lower `ABC`}} {{title `hello world`}}", "WEB abc Hello World"),
        ("{{.Spec.Name | upper}}", "WEB"),
        ("{{len .Spec.Labels}} {{len .Spec.Command}}", "2 2"),
        ('{{printf "%s:%d" .Spec.Name 5}}', "web:5"),
        ("{{pad .Spec.Name 1 2}}|{{truncate .ID 5}}", " web  |3e1ba"),
        ("{{.Spec.Labels}}", "map[com.x:y tier:front]"),
        ("{{.Spec.Command}}", "[sleep 1000]"),
        ("{{(index .Spec.Ports 0).Published}}", "8080"),
        ("a\\tb\\nc", "a\tb\nc"),
        ("{{/* a comment */}}x", "x"),
        ("a  {{- .Spec.Name -}}  b", "awebb"),
    ],
)
def test_fields_functions_and_pipelines(template, out):
    assert render(template, SERVICE) == out


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{if .UpdateStatus}}yes{{else}}no{{end}}", "no"),
        ("{{if .Spec.Labels}}yes{{end}}", "yes"),
        ("{{if not .Rebalance}}off{{end}}", "off"),
        ('{{if eq .Spec.Name "db"}}db{{else if eq .Spec.Name "web"}}web{{else}}?{{end}}', "web"),
        ('{{if and .Replicas (ne .Spec.Name "x")}}ok{{end}}', "ok"),
        ("{{if gt .Replicas 2}}many{{end}}", "many"),
        ("{{with .Spec}}{{.Name}}{{end}}", "web"),
        ("{{with .UpdateStatus}}{{.State}}{{else}}none{{end}}", "none"),
        ("{{range .Spec.Command}}[{{.}}]{{end}}", "[sleep][1000]"),
        ("{{range $i, $c := .Spec.Command}}{{$i}}={{$c}} {{end}}", "0=sleep 1=1000 "),
        ("{{range $k, $v := .Spec.Labels}}{{$k}}:{{$v}};{{end}}", "com.x:y;tier:front;"),
        ("{{range .Missing}}x{{else}}empty{{end}}", "empty"),
        ("{{range .Spec.Command}}{{$.Spec.Name}}{{end}}", "webweb"),
        ("{{$n := .Spec.Name}}{{range .Spec.Command}}{{$n}}{{end}}", "webweb"),
        ("{{$n := 1}}{{if true}}{{$n = 2}}{{end}}{{$n}}", "2"),
    ],
)
def test_if_with_range_and_variables(template, out):
    data = {**SERVICE, "missing": []}
    assert render(template, data) == out


def test_json_of_the_whole_object_keeps_its_key_order():
    assert render("{{json .}}", {"b": 1, "a": "<x&y>"}) == '{"b":1,"a":"<x&y>"}'


def test_a_field_that_takes_arguments_is_called_with_them():
    row = {"Label": method(lambda key: {"team": "a"}.get(key, "")), "Name": "webnet"}
    assert render('{{.Name}}:{{.Label "team"}}', row) == "webnet:a"
    assert render("{{json .}}", row) == '{"Name":"webnet"}'


def test_a_computed_field_is_computed_only_when_used():
    calls = []
    row = {"ID": "x", "Slow": lambda: calls.append(1) or "done"}
    assert render("{{.ID}}", row) == "x"
    assert calls == []
    assert render("{{.Slow}}", row) == "done"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{.Foo}}",
            'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo '
            "(valid fields: CreatedAt, ID, Rebalance, Replicas, Spec, UpdateStatus)",
        ),
        ("x\n{{.Spec.Nme}}", "at <.Spec.Nme>: can't evaluate field Nme (valid fields: Command,"),
        ("{{.ID.X}}", "can't evaluate field X in type string"),
        ("{{.UpdateStatus.State}}", "nil pointer evaluating .UpdateStatus.State"),
        ("{{index .Spec.Command 5}}", "error calling index: index out of range: 5"),
        ("{{.ID 1}}", "can't give argument to non-function .ID"),
        ("{{range .ID}}{{end}}", "range can't iterate over 3e1ba982d71fb6821ebe9e7fe"),
        ("{{$x}}", 'undefined variable "$x"'),
    ],
)
def test_execution_errors_say_where_and_what(template, message):
    with pytest.raises(TemplateError) as err:
        render(template, SERVICE)
    assert message in str(err.value)
    assert str(err.value).startswith("template: :")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.ID", "template: :1: unclosed action"),
        ("{{foo .ID}}", 'template: :1: function "foo" not defined'),
        ("{{if .ID}}x", "template: :1: unexpected EOF in if"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{.ID | }}", "template: :1: missing value for command"),
        ("a\n{{(.ID}}", "template: :2: unclosed left paren"),
        ("{{.ID ! }}", "template: :1: unexpected '!' in command"),
    ],
)
def test_parse_errors_are_go_worded(template, message):
    with pytest.raises(TemplateError, match="^" + re.escape(message)):
        check(template)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("ID", "ID"),
        ("Name", "NAME"),
        ("CurrentState", "CURRENT STATE"),
        ("DesiredState", "DESIRED STATE"),
        ("ManagerStatus", "MANAGER STATUS"),
        ("TLSStatus", "TLS STATUS"),
        ("CreatedAt", "CREATED AT"),
    ],
)
def test_headers_are_derived_from_field_names_as_docker_names_them(field, text):
    assert header(field) == text


COLS = columns("table {{.ID}}\\t{{.Name}}", ["ID", "Name", "CurrentState"], ID="NETWORK ID")
ROWS = [
    {"ID": "abc", "Name": "web", "CurrentState": "Running 5 seconds ago"},
    {"ID": "abcdefghijkl", "Name": "x", "CurrentState": "Failed"},
]


def test_a_table_template_heads_each_column_and_aligns_like_docker():
    assert listing_lines(COLS.default, ROWS, COLS.headers) == [
        "NETWORK ID     NAME",
        "abc            web",
        "abcdefghijkl   x",
    ]
    lines = listing_lines("table {{.Name}}\\t{{.CurrentState}}", ROWS, COLS.headers)
    assert lines == [
        "NAME      CURRENT STATE",
        "web       Running 5 seconds ago",
        "x         Failed",
    ]


def test_a_table_of_nothing_is_its_header_and_a_template_of_nothing_is_empty():
    assert listing_lines("table {{.ID}}", [], COLS.headers) == ["NETWORK ID"]
    assert listing_lines("{{.ID}}", [], COLS.headers) == []


def test_a_plain_template_prints_one_line_per_row_without_header():
    assert listing_lines("{{.Name}}={{.ID}}", ROWS, COLS.headers) == ["web=abc", "x=abcdefghijkl"]


def test_an_unknown_field_fails_in_the_header_before_any_row():
    with pytest.raises(
        TemplateError, match=re.escape("field Nope (valid fields: CurrentState, ID, Name)")
    ):
        listing_lines("table {{.Nope}}", [], COLS.headers)


def test_an_empty_format_is_the_default_and_a_bad_template_fails_when_parsed():
    assert FormatType("table").convert("", None, None) == "table"
    assert FormatType("json").convert("", None, None) == "json"
    assert FormatType("table").convert("table {{.ID}}", None, None) == "table {{.ID}}"
    with pytest.raises(TemplateError, match="unclosed action"):
        FormatType("table").convert("table {{.ID", None, None)


OBJS = [{"id": "abcdefghijklmnop", "name": "web"}]


def echo(capsys, fmt: str, quiet: bool = False) -> str:
    rows = lambda objs: [{"ID": o["id"][:12], "Name": o["name"]} for o in objs]  # noqa: E731
    echo_rows(OBJS, fmt, quiet, rows, columns("table {{.ID}}\\t{{.Name}}", ["ID", "Name"]))
    return capsys.readouterr().out


def test_a_listing_prints_json_ids_the_default_table_or_a_template(capsys):
    assert echo(capsys, "json") == json.dumps(OBJS, indent=4) + "\n"
    assert echo(capsys, "json", quiet=True) == json.dumps(OBJS, indent=4) + "\n"
    assert echo(capsys, "table", quiet=True) == "abcdefghijkl\n"
    assert echo(capsys, "table") == "ID             NAME\nabcdefghijkl   web\n"
    assert echo(capsys, "{{.Name}}", quiet=True) == "web\n"  # a template wins over -q
