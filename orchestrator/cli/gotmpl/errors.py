"""The one error of the template language, worded as Go's text/template words it."""

from __future__ import annotations

from netagent.contract.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """A template that does not parse or cannot run over the data: `template: ...`."""

    def __init__(self, message: str):
        super().__init__(f"template: {message}", obj="template", op="format")


def position(source: str, offset: int) -> str:
    """Go's `LINE:COL` of a byte offset (the column counts from 0)."""
    line = source.count("\n", 0, offset) + 1
    return f"{line}:{offset - (source.rfind(chr(10), 0, offset) + 1)}"
