"""Load YAML configs and validate them, with errors that name the file, line, key and expectation."""
from __future__ import annotations

import copy
import os
import re
import threading
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import WorkbenchError

CONFIG_ENV = "WORKBENCH_CONFIG_DIR"

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config shapes: unknown keys are errors, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# Limits on what one YAML file may ask of the loader; the shipped configs use no aliases, nest 6 deep and
# hold no integer over 7 digits, so these leave room for hand-written files and stop the known attacks.
MAX_ALIASES = 100  # alias uses (*name) per file
MAX_ALIAS_NODES = 10_000  # nodes the aliases add once expanded (billion laughs stays small in alias count)
MAX_DEPTH = 64  # nested lists/mappings; the composer recurses, and ~400 levels is a RecursionError
MAX_INT_DIGITS = 100  # far below int('...')'s 4,300-digit limit and float's ~308, so arithmetic stays sane

_SCALAR_KINDS = {"int": "integer", "float": "number", "bool": "boolean (true or false)", "timestamp": "date"}


class YamlRefused(yaml.YAMLError):
    """A YAML document refused by the loader's limits or checks; read_yaml turns it into a WorkbenchError."""

    def __init__(self, message: str, at: yaml.Node | yaml.Event, value: yaml.Node | None = None):
        self.message = message
        self.line = at.start_mark.line + 1
        self.value = value
        super().__init__(message)


class _LimitedLoader(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """A safe loader with YAML 1.2 booleans and limits, so a small hostile file fails fast with a line number.

    The limits are checked while composing, before anything is expanded: alias uses and the nodes
    they add, nesting depth, integer length; duplicate keys in one mapping are refused too. The scanner
    and parser come from a subclass: libyaml's or PyYAML's pure-Python ones.
    """

    def __init__(self) -> None:
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._aliases = 0
        self._alias_nodes = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[yaml.Node, int] = {}
        self._keys_checked: set[yaml.Node] = set()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._count_alias(event, target)
            return super().compose_node(parent, index)
        collection = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels; deeper nesting is refused", event)
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
            if event.anchor is not None:
                self._open_anchors.discard(event.anchor)
        if isinstance(node, yaml.SequenceNode):
            self._sizes[node] = 1 + sum(self._sizes[child] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            self._sizes[node] = 1 + sum(self._sizes[k] + self._sizes[v] for k, v in node.value)
        else:
            self._sizes[node] = 1
        return node

    def _count_alias(self, event: yaml.AliasEvent, target: yaml.Node) -> None:
        if event.anchor in self._open_anchors:
            raise YamlRefused(f"recursive YAML alias '*{event.anchor}' (it stands inside its own anchor)", event)
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise YamlRefused(f"too many YAML aliases (over {MAX_ALIASES}); aliases are refused beyond that "
                              f"to keep a small file from expanding without bound", event)
        self._alias_nodes += self._sizes[target]
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise YamlRefused(f"YAML aliases expand to over {MAX_ALIAS_NODES:,} nodes; aliases are refused "
                              f"beyond that to keep a small file from expanding without bound", event)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return super().construct_object(node, deep)
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError, OverflowError):
            kind = node.tag.rsplit(":", 1)[-1]
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            raise YamlRefused(f"'{shown}' is not a valid {_SCALAR_KINDS.get(kind, kind)}", node, node) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        literal = node.value.replace("_", "").replace(":", "").lstrip("+-")
        if literal[:2].lower() in ("0b", "0o", "0x"):
            literal = literal[2:]
        if len(literal) > MAX_INT_DIGITS:
            raise YamlRefused(f"integer with {len(literal):,} digits is too long (over {MAX_INT_DIGITS} digits)",
                              node, node)
        return super().construct_yaml_int(node)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if node not in self._keys_checked:
            self._keys_checked.add(node)
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        """Keys written twice in one mapping are refused; keys brought in by a `<<` merge may be overridden.

        Checked before the mapping's merges are flattened into it, so merged keys are not counted.
        """
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue
            if first is not key_node:
                raise YamlRefused(f"duplicate key '{key_node.value}' (first on line {first.start_mark.line + 1})",
                                  key_node)


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_yaml_int)
_LimitedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_LimitedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class PythonYamlLoader(_LimitedLoader, yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """The limited loader on PyYAML's pure-Python scanner and parser."""

    def __init__(self, stream: Any):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _LimitedLoader.__init__(self)


if yaml.__with_libyaml__:
    class CYamlLoader(_LimitedLoader, yaml.cyaml.CParser):
        """The limited loader on libyaml's scanner and parser: about ten times faster on the shipped configs."""

        def __init__(self, stream: Any):
            yaml.cyaml.CParser.__init__(self, stream)
            _LimitedLoader.__init__(self)

    YamlLoader: type[_LimitedLoader] = CYamlLoader
else:
    YamlLoader = PythonYamlLoader


def config_dir() -> Path:
    """Where the YAML configs are: $WORKBENCH_CONFIG_DIR, the installed package, or the source checkout."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).parent / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "configs"


# Parsed YAML by (path, text): a changed file is parsed again, an unchanged one is not (the node tree, for line
# numbers of later validation errors, is only read).
_PARSED: dict[tuple[str, str], tuple[Any, Any]] = {}
_PARSED_LOCK = threading.Lock()
PARSED_MAX_FILES = 32
PARSED_MAX_CHARS = 1_000_000


def read_yaml(path: Path | str, text: str | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text (read from path unless given); returns the data and its node tree for line numbers."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WorkbenchError("file not found", file=str(path)) from None
        except UnicodeDecodeError as exc:
            raise WorkbenchError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                                 file=str(path)) from None
    key = (str(path), text)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:             # the same text parsed before: pages read their configs on every rerun
        return copy.deepcopy(hit[0]), hit[1]
    loader = None
    node = None
    try:
        loader = YamlLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except YamlRefused as exc:
        path_to = _path_to(node, exc.value) if exc.value is not None else None
        field = ".".join(str(p) for p in path_to) if path_to else None
        raise WorkbenchError(exc.message, file=str(path), line=exc.line, field=field) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise WorkbenchError(f"invalid YAML: {problem}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise WorkbenchError(f"invalid YAML: {reason}", file=str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()
    if len(text) <= PARSED_MAX_CHARS:
        with _PARSED_LOCK:
            _PARSED[key] = (copy.deepcopy(data), node)
            while len(_PARSED) > PARSED_MAX_FILES:
                _PARSED.pop(next(iter(_PARSED)))
    return data, node


def _path_to(root: yaml.Node | None, target: yaml.Node) -> tuple[Any, ...] | None:
    """The key path from root to target in a composed node tree, for naming the field of a bad value."""
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, path + (key,)))
                stack.append((key_node, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, path + (i,)) for i, child in reversed(list(enumerate(node.value))))
    return None


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line where the value at loc (a key path) stands, or the nearest parent found."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model class that holds the value at loc, following lists and dicts of models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        while typing.get_origin(current) in (list, dict, typing.Union, tuple) or str(
                typing.get_origin(current)) == "types.UnionType":
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        expected = f"; expected one of: {', '.join(parent.model_fields)}" if parent else ""
        return f"unknown key{expected}"
    if kind == "missing":
        return "required key is missing"
    got = err.get("input")
    return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {got!r})"


def validation_error(exc: ValidationError, model: type[BaseModel], path: Path | str,
                     node: yaml.Node | None) -> WorkbenchError:
    """Turn a pydantic error into one WorkbenchError listing every problem with its line and key."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(node, loc)
        problems.append((line, key, _describe(err, model)))
    first_line, first_key, first_msg = problems[0]
    if len(problems) == 1:
        return WorkbenchError(first_msg, file=str(path), line=first_line, field=first_key)
    listing = "; ".join(f"line {ln} '{k}': {m}" for ln, k, m in problems)
    return WorkbenchError(f"{len(problems)} problems: {listing}", file=str(path), line=first_line,
                          field=first_key)


def parse_model(model: type[M], data: Any, path: Path | str, node: yaml.Node | None = None) -> M:
    """Validate already-parsed data against a model, raising WorkbenchError on any problem."""
    if data is None:
        raise WorkbenchError("the file is empty", file=str(path))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, model, path, node) from None


def load_model(model: type[M], path: Path | str) -> M:
    """Read a YAML file and validate it against a pydantic model."""
    data, node = read_yaml(path)
    return parse_model(model, data, path, node)


def config_path(name: str) -> Path:
    """Path of a bundled config file, e.g. config_path('decision.yaml')."""
    return config_dir() / name
