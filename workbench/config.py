"""Load YAML configs and validate them, with errors that name the file, line, key and expectation."""
from __future__ import annotations

import os
import re
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

    model_config = ConfigDict(extra="forbid", frozen=True)


class YamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so answers like `no` and `yes` stay strings."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def config_dir() -> Path:
    """Where the YAML configs are: $WORKBENCH_CONFIG_DIR, the installed package, or the source checkout."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).parent / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "configs"


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
    loader = None
    try:
        loader = YamlLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
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
    return data, node


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
