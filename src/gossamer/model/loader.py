"""Resources from YAML text (several documents, separated by ``---``). No file I/O: the
CLI reads files (``gossamer.cli.yaml_files``) and hands their text in.

Hostile YAML is refused while it is composed, before anything is built from it: more than
``max_nodes`` nodes (an alias counts as every node it repeats, so an alias bomb fails
after reading a few kilobytes) or collections nested more than ``MAX_DEPTH`` deep (which
would otherwise end in Python's ``RecursionError``).
"""

from __future__ import annotations

from dataclasses import replace

import yaml

from gossamer.errors import FieldError, ValidationError
from gossamer.model.base import Resource
from gossamer.model.catalog import describe, parse_manifest
from gossamer.model.text import lone_surrogates

#: composed YAML nodes one load may hold, counting an alias as every node it repeats
#: (``gossamer apply --max-yaml-nodes``); 10,000 services are about 150,000
DEFAULT_MAX_NODES = 1_000_000
#: how deep collections may nest; resources nest about 8 levels
MAX_DEPTH = 100


class _LimitError(yaml.MarkedYAMLError):
    """The YAML is well-formed but over a limit; ``problem`` says which."""


class _Loader(yaml.SafeLoader):
    """A safe loader with the limits above that refuses a mapping with the same key twice
    (YAML would keep the last)."""

    def __init__(self, stream: str, max_nodes: int) -> None:
        super().__init__(stream)
        self.max_nodes = max_nodes
        self._depth = 0
        #: id(node) -> how many nodes it stands for once aliases are expanded (this document)
        self._sizes: dict[int, int] = {}
        self._total = 0

    def _refuse(self, problem: str) -> _LimitError:
        return _LimitError(problem=problem, problem_mark=self.peek_event().start_mark)  # type: ignore[no-untyped-call]

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            self._total += self._sizes[id(node)]
        self._sizes.clear()
        return node

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            target = self.anchors.get(self.peek_event().anchor)  # type: ignore[no-untyped-call]
            if target is not None and id(target) not in self._sizes:
                raise self._refuse("an alias refers to a node that contains it: remove the loop")
            node = super().compose_node(parent, index)
            size = self._sizes[id(node)]
        else:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise self._refuse(
                    f"nested more than {MAX_DEPTH} levels deep: no resource nests like that; "
                    "check the brackets and indentation"
                )
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            size = 1 + sum(self._sizes[id(child)] for child in _children(node))
            self._sizes[id(node)] = size
        if size + self._total > self.max_nodes:
            raise self._refuse(
                f"more than {self.max_nodes} YAML nodes (an alias counts as every node it "
                "repeats): if this is not an alias bomb, split the file or raise the limit "
                "with --max-yaml-nodes"
            )
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base``: the base's keys, which this mapping's own override
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node | None) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def yaml_problem(e: yaml.YAMLError) -> str:
    """``line N: not valid YAML: <problem> (column C; <context>)``: PyYAML's own text
    quotes the input as ``"<unicode string>"`` with a caret, noise in a one-line error."""
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    if isinstance(e, _LimitError):
        return f"{where}{e.problem}"
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    notes = [f"column {mark.column + 1}"] if mark is not None else []
    context, at = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context:
        starts = f" that starts at line {at.line + 1}, column {at.column + 1}" if at else ""
        notes.append(f"{context}{starts}")
    return f"{where}not valid YAML: {problem}" + (f" ({'; '.join(notes)})" if notes else "")


def parse_documents(
    text: str, source: str = "", *, max_nodes: int = DEFAULT_MAX_NODES
) -> list[object]:
    """Every non-empty document in ``text`` as plain data, under the limits above; a YAML
    error raises ``ValidationError`` naming ``source`` and the line."""
    return [doc for _, doc in _documents(text, source, max_nodes)]


def _documents(text: str, source: str, max_nodes: int) -> list[tuple[int, object]]:
    """``parse_documents``, each with the line its document starts on."""
    loader = _Loader(text, max_nodes)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if doc is not None and node is not None:
                docs.append((node.start_mark.line + 1, doc))
        return docs
    except yaml.YAMLError as e:
        raise ValidationError([FieldError(yaml_problem(e), source=source)]) from None
    finally:
        loader.dispose()


def parse_yaml(
    text: str, source: str = "", *, max_nodes: int = DEFAULT_MAX_NODES
) -> list[Resource]:
    """Parse every document in ``text``; collect all errors, then raise them together."""
    docs = _documents(text, source, max_nodes)
    resources: list[Resource] = []
    errors: list[FieldError] = []
    for line, doc in docs:
        # first: a lone surrogate in a key makes pydantic's own error lose its field path
        if bad := lone_surrogates(doc):
            what = describe(doc) or f"document at line {line}"
            errors.extend(FieldError(m, path, what, source) for path, m in bad)
            continue
        try:
            resources.append(parse_manifest(doc, source))
        except ValidationError as e:
            # a document that is no resource at all: say where it starts
            where = f"document at line {line}"
            errors.extend(replace(err, resource=err.resource or where) for err in e.errors)
    seen: dict[object, int] = {}
    for r in resources:
        if r.key in seen:
            errors.append(FieldError("defined twice in the same input", "", str(r.key), source))
        seen[r.key] = 1
    if errors:
        raise ValidationError(errors)
    return resources
