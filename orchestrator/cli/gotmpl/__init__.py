"""A small subset of Go's text/template, the language of docker's `--format`.

`parse` turns a template into a tree (errors are Go's `template: :LINE: ...`),
`execute` runs it over plain data (dicts, lists, strings, numbers): fields and
nested fields (`.Spec.Name`), variables, pipelines, `if`/`with`/`range`/`else`,
and the functions docker adds (json, join, split, upper, lower, title, pad,
truncate) besides Go's own (index, len, print/printf/println, eq/ne/lt/le/gt/ge,
and/or/not). A field is found by its exact key, else by matching names
case-insensitively with underscores ignored, so `.CreatedAt` reads `created_at`.
"""

from orchestrator.cli.gotmpl.errors import TemplateError
from orchestrator.cli.gotmpl.execute import execute
from orchestrator.cli.gotmpl.parse import Template, parse

__all__ = ["Template", "TemplateError", "execute", "parse"]
