"""Prompt templates: Jinja2 files in ``prompts/``, versioned by content hash."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

# Any: a row's fields (any JSON value) for the templates.
from typing import Any

import jinja2
import jinja2.meta

from eval_pipeline.catalog._files import display, read_text
from eval_pipeline.core.errors import CatalogError
from eval_pipeline.core.hashing import content_hash
from eval_pipeline.core.types import Message

# ``trim_blocks``: a block tag's own line break (``{% set system = ... %}`` on the first
# line) is not written. The file's last line break is not either (``keep_trailing_newline``
# false); everything else the template writes is kept, whitespace included.
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
    autoescape=False,
)


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template; its version is ``<name>@<hash of the file's text>``.

    The rendered text is the user message of a one-turn chat. A template may set a
    system message with ``{% set system = "..." %}`` at its top.
    """

    name: str
    path: Path
    text: str

    @property
    def content_hash(self) -> str:
        return content_hash(self.text, 12)

    @property
    def version(self) -> str:
        return f"{self.name}@{self.content_hash}"

    @property
    def variables(self) -> set[str]:
        """Names the template reads from its context."""
        return set(_variables(self.text))

    def render(self, fields: dict[str, Any], *, strip: bool = False) -> tuple[Message, ...]:
        """The messages for one row's ``fields`` (a system message only when set).

        The user message is the text the template writes, leading and trailing whitespace
        included (a context for log-likelihood scoring must be exact); ``strip`` removes
        it (a dataset's ``prompt_strip: true``).
        """
        module = _compile(self.text).make_module(fields)
        user = str(module).strip() if strip else str(module)
        system = getattr(module, "system", None)
        messages = [Message("system", str(system).strip())] if system else []
        messages.append(Message("user", user))
        return tuple(messages)


@functools.lru_cache(maxsize=256)
def _variables(text: str) -> frozenset[str]:
    # Parsed once per template text: every dataset that uses a prompt checks its fields.
    return frozenset(jinja2.meta.find_undeclared_variables(_ENV.parse(text)))


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> jinja2.Template:
    # Compiling dominates rendering; a partition renders the same template for every row.
    return _ENV.from_string(text)


def load_prompt(prompts_dir: Path, name: str, display_root: Path) -> PromptTemplate:
    """Load ``prompts_dir/<name>.jinja``; raises CatalogError with the file and problem."""
    path = prompts_dir / f"{name}.jinja"
    shown = display(path, display_root)
    if not path.exists():
        raise CatalogError(shown, "", f"prompt '{name}' does not exist")
    text = read_text(path, shown)
    try:
        _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise CatalogError(
            shown, f"line {exc.lineno}", f"template syntax error: {exc.message}"
        ) from exc
    return PromptTemplate(name=name, path=path, text=text)


def render_problem(prompt: PromptTemplate, fields: dict[str, Any]) -> tuple[str, str] | None:
    """Render ``prompt`` with ``fields`` as generation would; ``(where, problem)`` if it fails.

    ``where`` is ``line <n>`` of the template when Jinja says which line failed. Catches
    what parsing cannot: ``{{ question.text }}`` on a string field, a filter applied to
    the wrong type, an arithmetic error.
    """
    try:
        prompt.render(fields)
    except Exception as exc:  # any failure of a template render is the template's problem
        line = _template_line(exc)
        message = exc.message if isinstance(exc, jinja2.TemplateError) else str(exc)
        return (f"line {line}" if line else "", f"{type(exc).__name__}: {message}")
    return None


def _template_line(exc: BaseException) -> int | None:
    # A failing template frame runs Jinja's generated code; the template maps that
    # code's line back to the line of the template text.
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line
