"""Safe YAML parsing that remembers where every key came from.

Only plain data is constructed (``yaml.SafeLoader``); tags that would build Python objects are
refused. The parsed document is walked once before construction to record line numbers and to
reject what a config never needs and an attacker might send: duplicate keys, huge alias
expansions ("billion laughs"), absurd nesting and oversized files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bigbench.errors import ConfigError

#: Largest config file accepted, in bytes. Experiment configs are a few hundred bytes.
MAX_FILE_BYTES = 1 << 20
#: Most nodes a document may expand to, counting every alias use. Bounds the work done on
#: alias bombs before pydantic ever sees them.
MAX_NODES = 20_000
#: Deepest nesting accepted.
MAX_DEPTH = 32

KeyPath = tuple[str | int, ...]


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float.

    YAML 1.1 (PyYAML's dialect) requires a dot in exponent floats, so ``lr: 1e-3`` would
    otherwise arrive as the *string* "1e-3" and fail type checks with a confusing message.
    """


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789")
)


@dataclass
class ParsedYaml:
    """A parsed YAML document and the 1-based line of every key path in it."""

    data: object
    lines: dict[KeyPath, int] = field(default_factory=dict)


def read_config_text(path: Path) -> str:
    """Read a config file as UTF-8 text, turning every I/O failure into a ConfigError.

    Only regular files are read, and never more than MAX_FILE_BYTES + 1 bytes, so a FIFO or a
    device such as /dev/zero cannot hang or exhaust memory.
    """
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; check the path")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; pass a YAML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: not a regular file; pass a YAML config file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make the file readable") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: config is larger than {MAX_FILE_BYTES} bytes; a config is a "
                          "small YAML file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); save the config as UTF-8"
        ) from None


def parse_yaml(text: str, source: str) -> ParsedYaml:
    """Parse one YAML document safely.

    Args:
        text: The YAML text.
        source: Where it came from, for messages (a file name or ``--set key=value``).

    Raises:
        ConfigError: for invalid YAML, several documents, unsafe tags, duplicate keys,
            too many nodes or too deep nesting.
    """
    try:
        loader = _ConfigLoader(text)
    except yaml.YAMLError as exc:  # the reader rejects control characters up front
        raise ConfigError(f"{source}: invalid YAML ({_one_line(exc)})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return ParsedYaml(data=None)
        lines: dict[KeyPath, int] = {}
        _walk(node, (), lines, source, counter=[0])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_error_line(exc, source)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML ({_one_line(exc)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nesting is too deep (limit {MAX_DEPTH})") from None
    except ValueError as exc:  # e.g. an integer with thousands of digits
        raise ConfigError(f"{source}: a value cannot be read ({_one_line(exc)}); numbers "
                          "in a config are small") from None
    finally:
        loader.dispose()
    return ParsedYaml(data=data, lines=lines)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _yaml_error_line(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = " ".join((exc.problem or exc.context or "invalid YAML").split())
    if "could not determine a constructor" in str(exc):
        problem = "tags that construct objects are not allowed in a config (" + problem + ")"
    return f"{where}: invalid YAML: {problem}"


def _walk(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str, counter: list[int]
) -> None:
    """Record key lines and enforce the size limits, following aliases as construction would."""
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ConfigError(
            f"{source}: document expands to more than {MAX_NODES} values "
            "(too many aliases or too large); a config is a small mapping"
        )
    if len(path) > MAX_DEPTH:
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: nesting deeper than {MAX_DEPTH}")
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _walk(value_node, path, lines, source, counter)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{source}:{line}: duplicate key '{'.'.join(map(str, path + (key,)))}' "
                    f"(first on line {seen[key]}); keep one"
                )
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, source, counter)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault(path + (index,), item.start_mark.line + 1)
            _walk(item, path + (index,), lines, source, counter)
