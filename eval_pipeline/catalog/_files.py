"""Reading catalog files so that every problem names the file and the line.

A catalog file that is not UTF-8, not valid YAML or that repeats a mapping key is
refused with a :class:`CatalogError` that says where, instead of a bare decode error or
a silently dropped duplicate.
"""

from __future__ import annotations

from pathlib import Path

# Any: what a YAML file holds (any YAML value).
from typing import Any

import yaml

from eval_pipeline.core.errors import CatalogError


def display(path: Path, root: Path) -> str:
    """``path`` relative to the project ``root`` (absolute when it lies outside)."""
    if path.is_absolute() and root.is_absolute() and ".." not in path.parts:
        # The catalog's own files, found under the resolved root: no symlink walk needed.
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_text(path: Path, shown: str) -> str:
    """The UTF-8 text of ``path``; raises CatalogError naming ``shown`` and the bad line.

    Raises:
        CatalogError: the file is missing, is not a regular file, or is not UTF-8.
    """
    if not path.exists():
        raise CatalogError(shown, "", "file does not exist")
    if not path.is_file():
        raise CatalogError(shown, "", "is not a regular file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CatalogError(
            shown,
            f"line {line}",
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at column {column} "
            "(save the file as UTF-8)",
        ) from None


# libyaml's parser when PyYAML was built with it: parsing a models.yaml of 1,000 entries
# takes about a tenth of the pure-Python parser's time. Same safe constructor, same marks.
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]  # same API


class _UniqueKeyLoader(_SafeLoader):
    """A safe loader that refuses a mapping key given twice (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base`` may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the base constructor reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first given on line {first})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: Path, shown: str) -> Any:
    """Parse the YAML file ``path``; problems raise CatalogError naming ``shown`` and the line."""
    return parse_yaml(read_text(path, shown), shown)


def parse_yaml(text: str, shown: str) -> Any:
    """Parse YAML ``text`` read from ``shown``; problems raise CatalogError naming the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise CatalogError(shown, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
