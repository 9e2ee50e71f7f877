"""Tool names in texts, shown as the server showing the text names its tools.

Descriptions, instructions, prompts and error messages name a tool by its bare name (list_calls), wherever they
are written: a server, a workflow, an adapter. A server that mounts tools under a prefix (the composite:
gong_list_calls) renders each such word as its own name for the tool, so a model reads only names it can call;
a domain server shows them as written. Workflows and adapters stay unaware of which server shows their words.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

# A snake_case word: how a tool name looks in prose (no ordinary word has an underscore).
SNAKE_WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")

# Tools renamed since they were first offered (old bare name -> new): a call by the old name is told the new one.
RENAMED = {"search_knowledge": "search_documents"}

# MCP's longest tool name: nothing longer is compared with the real names (difflib is quadratic in length).
LONGEST_NAME = 128
SUGGESTIONS = 3

# The keys of the protocol's JSON whose values are prose: a description (of a tool, a schema property, a prompt
# or its arguments, a resource) and a message's text.
PROSE = ("description", "text")


def close_names(asked: str, names: list[str]) -> list[str]:
    """The names in `names` spelled most like `asked`, best first."""
    if len(asked) > LONGEST_NAME:
        return []
    return difflib.get_close_matches(asked, names, n=SUGGESTIONS, cutoff=0.6)


class ToolNames:
    """The tools a server offers: the bare name texts use for each, and the name the server gives it."""

    def __init__(self) -> None:
        self._mounted: dict[str, str] = {}  # bare -> mounted
        self._prefix: dict[str, str] = {}  # bare -> prefix
        self._names: set[str] = set()  # mounted

    def add(self, bare: str, prefix: str = "") -> str:
        """Record the tool `bare`, mounted as `prefix` + `bare`; returns the mounted name."""
        mounted = prefix + bare
        if self._mounted.get(bare, mounted) != mounted:
            raise ValueError(f"{bare} is mounted twice ({self._mounted[bare]}, {mounted}): texts could name neither")
        self._mounted[bare], self._prefix[bare] = mounted, prefix
        self._names.add(mounted)
        return mounted

    def __contains__(self, name: object) -> bool:
        """Whether `name` is a tool of this server, as the server names it."""
        return name in self._names

    @property
    def prefixed(self) -> bool:
        """Whether any tool is mounted under a prefix (else texts are shown as written)."""
        return any(self._prefix.values())

    def render(self, text: str) -> str:
        """`text` with every bare tool name in it replaced by this server's name for the tool."""
        if not self.prefixed:
            return text
        return SNAKE_WORD.sub(lambda word: self._mounted.get(word.group(), word.group()), text)

    def nearest(self, asked: str) -> list[str]:
        """This server's names for the tools a caller asking for `asked` most likely meant, best first."""
        if len(asked) > LONGEST_NAME:
            return []
        aliases: dict[str, str] = {}  # every way of saying a tool's name -> the name it has here
        for bare, mounted in self._mounted.items():
            aliases[bare] = aliases[mounted] = mounted
        for old, new in RENAMED.items():
            if new in self._mounted:
                aliases[old] = aliases[self._prefix[new] + old] = self._mounted[new]
        if asked in aliases:  # the bare name of a mounted tool, or an old name
            return [aliases[asked]]
        # A prefixed name asked of a server that mounts the tool bare (gong_list_calls of the gong server).
        found = [mounted for alias, mounted in aliases.items() if asked.endswith(f"_{alias}")]
        return list(dict.fromkeys(found or [aliases[a] for a in close_names(asked, list(aliases))]))[:SUGGESTIONS]


def render_prose(value: Any, render: Callable[[str], str]) -> Any:
    """`value` (a protocol model such as a tool, a prompt or a rendered prompt, or JSON such as a schema) with `render`
    applied to every prose string in it; models are copied, not validated again (a tool's schemas are large)."""
    if isinstance(value, BaseModel):
        update = {name: _rendered(name, getattr(value, name), render) for name in type(value).model_fields}
        return value.model_copy(update=update)
    if isinstance(value, dict):
        return {key: _rendered(key, item, render) for key, item in value.items()}
    if isinstance(value, list):
        return [render_prose(item, render) for item in value]
    return value


def _rendered(key: str, value: Any, render: Callable[[str], str]) -> Any:
    return render(value) if key in PROSE and isinstance(value, str) else render_prose(value, render)
