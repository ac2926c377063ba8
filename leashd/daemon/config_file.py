"""Changing `~/.leashd/config.yaml` from the command line (`init`, `add-dir`, `remove-dir`).

An edit changes only the settings it is about. The file is read for a round trip with
ruamel.yaml, so its comments, the order of its keys, its quoting and the keys this code knows
nothing about stay as they were written. Removing a list element or a key takes its own
comment after it along, and keeps the comments written below it. A file that is not YAML is
refused with its line and never overwritten.

What is written is read back as the daemon reads it (PyYAML) and must hold the settings it
held before with only the change made; then it replaces the old file atomically (a temporary
file renamed over it), owner-only from the first byte: it may hold a bot token.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from leashd.daemon.config import NESTED_KEYS, ConfigError, leashd_home

# A new file starts with this, so whoever opens it knows that comments are welcome.
HEADER = (
    "leashd's settings (`leashd config --keys` lists them all). `leashd init`, `add-dir`\n"
    "and `remove-dir` edit this file and keep your comments."
)


def config_path() -> Path:
    return leashd_home() / "config.yaml"


def read(path: Path | None = None) -> dict[str, Any]:
    """The file's settings as the daemon reads them ({} when there is no file)."""
    path = path or config_path()
    if not path.is_file():
        return {}
    return _settings(_text(path), path)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None


def _settings(text: str, path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(_not_yaml(path, text, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config file must be a mapping of settings")
    return data


def _not_yaml(path: Path, text: str, exc: Exception) -> str:
    """`FILE:LINE:COL: cannot read the config file: …`, the line and a caret."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    lines = text.splitlines()
    opened = getattr(exc, "context_mark", None)
    if mark is not None and opened is not None and not "".join(lines[mark.line :]).strip():
        # at the end of the text: where what never ended began (`[a,` never closed)
        problem, mark = f"{problem}, {exc.context} begun here", opened  # type: ignore[attr-defined]
    if mark is None and isinstance(getattr(exc, "position", None), int):  # a bad character
        before = text[: exc.position]  # type: ignore[attr-defined]
        line, column = before.count("\n"), len(before) - (before.rfind("\n") + 1)
    elif mark is not None:
        line, column = mark.line, mark.column
    else:
        return f"{path}: cannot read the config file: not YAML: {problem}; it was left as it is"
    source = lines[line] if line < len(lines) else ""
    return (
        f"{path}:{line + 1}:{column + 1}: cannot read the config file: not YAML: {problem}; "
        f"it was left as it is\n  {source}\n  {' ' * column}^"
    )


# --- the round trip --------------------------------------------------------------------------


class Document:
    """config.yaml held for a round trip: `data` is what the daemon will read (PyYAML's view,
    kept in step with every change), `root` the text's tree with its comments."""

    def __init__(self, text: str, path: Path) -> None:
        from ruamel.yaml.comments import CommentedMap

        self.path, self.text = path, text
        self.before = _settings(text, path)  # refused here, with its line, when not YAML
        self.data = copy.deepcopy(self.before)
        self.new = not text.strip()
        yaml_rt = _round_trip()
        try:
            root = yaml_rt.load(text)
        except Exception as exc:  # what PyYAML reads and ruamel.yaml does not (a duplicate key)
            raise ConfigError(_not_yaml(path, text, exc)) from None
        self.comments_only = root is None and not self.new  # only comments: kept above
        self.root = root if root is not None else CommentedMap()
        self.loose = ""  # comment lines left with no setting to go with: at the end
        self.changed = False

    # --- where a setting is written ----------------------------------------------------

    def _place(self, name: str) -> tuple[Any, Any, dict[str, Any]] | None:
        """The mapping that holds setting `name`, its key there, and the matching mapping of
        `data`: a key of the file, or one of leashd 0.x's `telegram:` block."""
        if name in self.root:
            return self.root, name, self.data
        for (block, sub), flat in NESTED_KEYS.items():
            inner = self.root.get(block)
            if flat == name and hasattr(inner, "ca") and sub in inner:
                return inner, sub, self.data[block]
        return None

    def get(self, name: str) -> Any:
        place = self._place(name)
        return None if place is None else place[2].get(place[1])

    # --- changes -------------------------------------------------------------------------

    def set(self, name: str, value: Any, same: Callable[[Any, Any], bool] | None = None) -> None:
        """Setting `name` to `value` (a string or a list of strings). A list already in the
        file is edited element by element: the elements `same` as a wanted one stay as they
        are written, with their comments."""
        same = same or _same_text
        place = self._place(name)
        if place is None:
            _add(self.root, name, _node(value))
            self.data[name] = copy.deepcopy(value)
            self.changed = True
            return
        mapping, key, data = place
        old = mapping[key]
        if isinstance(value, list) and _is_seq(old) and not _is_flow(old):
            edited, orphans = _edit_list(old, list(data[key]), value, same)
            if edited is None:
                return
            if not old:  # `key: []`, with what was written between and below its elements
                lines = _lines_above(mapping, key) + orphans
                _replace(mapping, key, _node([]))
                _add_rest(mapping, key, lines)
            data[key] = edited
            self.changed = True
            return
        if isinstance(value, list) and isinstance(data[key], list):
            if len(data[key]) == len(value) and all(map(same, data[key], value)):
                return
        elif not isinstance(value, list) and data[key] is not None and same(data[key], value):
            return
        _replace(mapping, key, _node(value, flow=_is_flow(old)))
        data[key] = copy.deepcopy(value)
        self.changed = True

    def delete(self, name: str) -> None:
        place = self._place(name)
        if place is None:
            return
        mapping, key, data = place
        self.loose += _delete(mapping, key, self.root)
        del data[key]
        if mapping is not self.root and len(mapping) == 0:  # an emptied 0.x block goes too
            for block, _ in NESTED_KEYS:
                if self.root.get(block) is mapping:
                    self.loose += _delete(self.root, block, self.root)
                    del self.data[block]
                    break
        self.changed = True

    def flatten(self, block: str) -> None:
        """leashd 0.x's `telegram:` block as the flat keys this version writes, in its place,
        each with its comments."""
        from ruamel.yaml.comments import CommentedMap
        from ruamel.yaml.error import CommentMark

        inner = self.root.get(block)
        if not isinstance(inner, CommentedMap):
            return
        names = {sub: flat for (b, sub), flat in NESTED_KEYS.items() if b == block}
        unknown = [sub for sub in inner if sub not in names]
        if unknown:
            raise ConfigError(f"{self.path}: unknown key {block}.{unknown[0]} in the config file")
        keys = list(self.root)
        at = keys.index(block)
        rest = _take_rest(self.root, block)
        note = _take_eol(self.root, block)
        self.root.pop(block)
        self.root.ca.items.pop(block, None)
        placed = []
        for sub, value in inner.items():
            flat = names[sub]
            if flat in self.root:  # a flat key wins, as the daemon reads it
                continue
            self.root.insert(at + len(placed), flat, value)
            self.root.ca.items[flat] = entry = inner.ca.items.get(sub, [None, None, None, None])
            if entry[2] is not None and entry[2].value.startswith("#"):  # same place after it
                shift = len(flat) - len(sub) - inner.lc.key(sub)[1]
                entry[2].start_mark = CommentMark(entry[2].start_mark.column + shift)
            placed.append(flat)
            self.data.setdefault(flat, self.data[block][sub])
        del self.data[block]
        if placed:
            if note:
                _add_before(self.root, placed[0], note)
            _add_rest(self.root, placed[-1], rest)
        elif rest or note:
            self.loose += _after(self.root, keys, at, note + rest)
        self.changed = True

    # --- writing -------------------------------------------------------------------------

    def dump(self) -> str:
        import io

        from ruamel.yaml.comments import CommentedMap

        if self.new:
            self.root.yaml_set_start_comment(HEADER)
        stream = io.StringIO()
        if len(self.root) or not isinstance(self.root, CommentedMap):
            _round_trip(_indents(self.text)).dump(self.root, stream)
        text = stream.getvalue()
        if self.comments_only:
            text = self.text.rstrip("\n") + "\n" + text
        return text + self.loose


def edit(
    change: Callable[[Document], None],
    path: Path | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Make `change` to the config file (created when there is none) and write it; `check`
    sees the settings as they will be read and may refuse them (ConfigError) before anything
    is written."""
    path = path or config_path()
    text = _text(path) if path.exists() else ""
    doc = Document(text, path)
    change(doc)
    if check is not None:
        check(doc.data)
    if not doc.changed:
        return path
    written = doc.dump()
    try:
        after = yaml.safe_load(written)
    except yaml.YAMLError:
        after = None
    if (after or {}) != doc.data:
        raise ConfigError(
            f"{path}: this change cannot be written without changing other settings, so the "
            "file was left as it is; edit it by hand (and please report this to leashd)"
        )
    return _write(written, path)


def _write(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Owner-only from the first byte: the file may hold a bot token, which is a password.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
    tmp.replace(path)
    return path


# --- add-dir, remove-dir ---------------------------------------------------------------------


def _real(directory: Any) -> str:
    return os.path.realpath(os.path.expanduser(str(directory)))


def same_directory(written: Any, wanted: Any) -> bool:
    return _real(written) == _real(wanted)


def add_dir(directory: str, path: Path | None = None) -> tuple[str, bool]:
    """Approve a directory; returns it resolved, and whether it was new."""
    real = _real(directory)
    if not os.path.isdir(real):
        raise ConfigError(f"{directory} is not a directory")
    added = False

    def change(doc: Document) -> None:
        nonlocal added
        dirs = _dirs(doc.get("approved_directories"))
        if any(_real(d) == real for d in dirs):
            return
        doc.set("approved_directories", [*map(str, dirs), real], same_directory)
        added = True

    edit(change, path)
    return real, added


def remove_dir(directory: str, path: Path | None = None) -> tuple[str, bool]:
    real = _real(directory)
    removed = False

    def change(doc: Document) -> None:
        nonlocal removed
        dirs = _dirs(doc.get("approved_directories"))
        kept = [str(d) for d in dirs if _real(d) != real]
        if len(kept) == len(dirs):
            return
        doc.set("approved_directories", kept, same_directory)
        removed = True

    edit(change, path)
    return real, removed


def _dirs(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise ConfigError("approved_directories in the config file is not a list")
    return value


# --- ruamel.yaml, and its comments -----------------------------------------------------------
#
# ruamel.yaml keeps a comment with what comes before it: the comment after a value, on its
# line and on the lines below up to the next key or element, is one token in the slot of that
# value's key (or list index); the slot of a key whose value is a block is that block's last
# value. A token is "# after the value\n# a line below\n", or "\n# a line below\n" when the
# value's line has no comment. Taking an element away would take the comments below it too;
# here its lines below are handed to the element before it.


def _round_trip(indents: tuple[int, int, int] = (2, 4, 2)) -> Any:
    from ruamel.yaml import YAML

    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # never fold a long value
    mapping, sequence, offset = indents
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _indents(text: str) -> tuple[int, int, int]:
    """The indentation the file uses (mapping, sequence, dash offset), so what is written
    looks like what is there; a new file gets 2, 4, 2 (`key:\\n  - value`)."""
    mapping, sequence, offset = 2, 4, 2
    lines = text.splitlines()
    seen_map = seen_seq = False
    for n, line in enumerate(lines[:-1]):
        stripped = line.strip()
        if not stripped.endswith(":") or stripped.startswith(("#", "-")):
            continue
        col = len(line) - len(line.lstrip())
        below = next(
            (s for s in lines[n + 1 :] if s.strip() and not s.lstrip().startswith("#")), ""
        )
        inner = len(below) - len(below.lstrip())
        if below.lstrip().startswith("- ") and not seen_seq and inner >= col:
            after_dash = len(below) - len(below.lstrip()[2:].lstrip())
            offset, sequence, seen_seq = inner - col, after_dash - col, True
        elif inner > col and not seen_map and not below.lstrip().startswith("-"):
            mapping, seen_map = inner - col, True
    return mapping, max(sequence, offset + 2), offset


def _same_text(written: Any, wanted: Any) -> bool:
    return str(written) == str(wanted)


def _node(value: Any, flow: bool = False) -> Any:
    """A value as it is written: a block list of strings, each quoted where plain text would
    read as something else to the daemon (PyYAML: `yes`, `1:30`, `0777`)."""
    from ruamel.yaml.comments import CommentedSeq

    if isinstance(value, list):
        seq = CommentedSeq([_scalar(v) for v in value])
        if seq and not flow:
            seq.fa.set_block_style()
        else:
            seq.fa.set_flow_style()  # `[]`, and a comment below it stays below it
        return seq
    return _scalar(value)


def _scalar(value: Any) -> Any:
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    if not isinstance(value, str):
        return value
    kind = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))
    return value if kind == "tag:yaml.org,2002:str" else DoubleQuotedScalarString(value)


def _is_seq(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedSeq

    return isinstance(node, CommentedSeq)


def _is_flow(node: Any) -> bool:
    return bool(getattr(node, "fa", None) and node.fa.flow_style())


def _keys(container: Any) -> list[Any]:
    return list(container) if isinstance(container, dict) else list(range(len(container)))


def _slot(container: Any, key: Any) -> tuple[Any, Any]:
    """The container and key whose comment slot holds what follows `container[key]`."""
    value = container[key]
    if hasattr(value, "ca") and len(value) and not _is_flow(value):
        return _slot(value, _keys(value)[-1])
    return container, key


def _token(container: Any, key: Any, create: bool = False) -> Any:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    at = 2 if isinstance(container, dict) else 0
    items = container.ca.items
    entry = items.get(key)
    if entry is None:
        if not create:
            return None
        entry = items[key] = [None, None, None, None]
    if entry[at] is None and create:
        entry[at] = CommentToken("\n", CommentMark(0), None)
    return entry[at]


def _take_rest(container: Any, key: Any) -> str:
    """The comment lines below the value of `container[key]` (not the one on its line),
    taken out of the file's tree."""
    token = _token(*_slot(container, key))
    if token is None:
        return ""
    value = token.value
    first, _, rest = value.partition("\n")
    token.value = first + "\n" if first.strip() else "\n"
    return rest


def _take_above(container: Any, key: Any) -> str:
    """The comment lines put above `container[key]` by an edit, taken out."""
    entry = container.ca.items.get(key)
    if not entry or len(entry) < 2 or not entry[1]:
        return ""
    lines = "".join(token.value for token in entry[1])
    entry[1] = None
    return lines


def _take_eol(container: Any, key: Any) -> str:
    """The comment on the line of `key:` whose value is a block (`telegram:  # 0.x`)."""
    token = _token(container, key)
    if token is None or not hasattr(container[key], "ca") or not token.value.startswith("#"):
        return ""
    first, _, rest = token.value.partition("\n")
    token.value = "\n" + rest
    return first.strip() + "\n"


def _add_rest(container: Any, key: Any, rest: str) -> None:
    """Comment lines below the value of `container[key]`, after those already there."""
    if not rest.strip():
        return
    token = _token(*_slot(container, key), create=True)
    token.value = token.value + rest if token.value.endswith("\n") else token.value + "\n" + rest


def _add_before(container: Any, key: Any, lines: str) -> None:
    """Comment lines above `key` in the mapping `container`."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    entry = container.ca.items.setdefault(key, [None, None, None, None])
    entry[1] = [*(entry[1] or []), CommentToken(lines, CommentMark(0), None)]


def _after(root: Any, keys: list[Any], at: int, lines: str) -> str:
    """Comment lines where key number `at` of `keys` was, now that it is gone; those that
    have no key left to go with are returned."""
    if at > 0:
        _add_rest(root, keys[at - 1], lines)
    elif len(root):
        _add_before(root, _keys(root)[0], lines)
    else:
        return lines
    return ""


def _delete(container: Any, key: Any, root: Any) -> str:
    """Take `container[key]` out; the comment lines below it go to what came before it (those
    with nothing left to go with are returned)."""
    keys = _keys(container)
    at = keys.index(key)
    rest = _take_above(container, key) + _take_rest(container, key)
    del container[key]
    if isinstance(container, dict):
        container.ca.items.pop(key, None)
    if not rest.strip():
        return ""
    if at > 0:
        _add_rest(container, _keys(container)[at - 1], rest)
    elif container is root:
        return _after(root, keys, 0, rest)
    else:  # the first of a block: below the key that holds the block
        parent, parent_key = _parent(root, container)
        token = _token(parent, parent_key, create=True)
        token.value += rest
    return ""


def _parent(root: Any, child: Any) -> tuple[Any, Any]:
    stack = [root]
    while stack:
        node = stack.pop()
        for k in _keys(node):
            if node[k] is child:
                return node, k
            if hasattr(node[k], "ca"):
                stack.append(node[k])
    raise AssertionError("not in the tree")  # pragma: no cover


def _replace(container: Any, key: Any, value: Any) -> None:
    from ruamel.yaml.error import CommentMark

    rest = _take_rest(container, key)
    container[key] = value
    token = _token(container, key)
    if token is not None and token.value.startswith("#"):  # its column was the old value's
        shown = f"[{', '.join(map(str, value))}]" if _is_flow(value) else ""
        try:
            indent = container.lc.key(key)[1]
        except (KeyError, TypeError, AttributeError):
            indent = 0
        token.start_mark = CommentMark(indent + len(f"{key}: {shown}".rstrip()) + 2)
    _add_rest(container, key, rest)


def _add(container: Any, key: Any, value: Any) -> None:
    """A new key after the last; the comments below the last stay at the end."""
    rest = _take_rest(container, _keys(container)[-1]) if len(container) else ""
    container[key] = value
    _add_rest(container, key, rest)


def _append(seq: Any, value: Any) -> None:
    rest = _take_rest(seq, len(seq) - 1) if len(seq) else ""
    seq.append(value)
    _add_rest(seq, len(seq) - 1, rest)


def _edit_list(
    seq: Any, old: list[Any], wanted: list[Any], same: Callable[[Any, Any], bool]
) -> tuple[list[Any] | None, str]:
    """Make the block list `seq` (read as `old`) hold `wanted`, keeping the elements already
    there that are `same` as wanted ones, as they are written. Returns the list as the daemon
    will read it (None: nothing changed) and, when the list ends up empty, the comment lines
    that were below its elements."""
    if len(old) == len(wanted) and all(map(same, old, wanted)):
        return None, ""
    matched: dict[int, int] = {}  # element of `old` -> the wanted one it is
    for i, v in enumerate(old):
        taken = set(matched.values())
        j = next((j for j, w in enumerate(wanted) if j not in taken and same(v, w)), None)
        if j is not None:
            matched[i] = j
    kept = sorted(matched)
    if [matched[i] for i in kept] != sorted(matched.values()):  # wanted in another order
        kept = []
    orphans = ""
    for i in reversed(range(len(old))):
        if i not in kept:
            orphans = _delete_item(seq, i) + orphans
    result = [old[i] for i in kept]
    order = [matched[i] for i in kept]
    for j, w in enumerate(wanted):
        if j in order:
            continue
        at = sum(1 for o in order if o < j)
        if at == len(seq):
            _append(seq, _scalar(w))
        else:
            seq.insert(at, _scalar(w))
        order.insert(at, j)
        result.insert(at, w)
    if orphans and len(seq):
        _add_before_item(seq, 0, orphans)
        orphans = ""
    return result, orphans


def _delete_item(seq: Any, i: int) -> str:
    """Take element `i` out of a block list; the comment lines below it go below the one
    before it, or above the one after it. Returns them when the list is left empty."""
    rest = _take_above(seq, i) + _take_rest(seq, i)
    del seq[i]
    if not rest.strip():
        return ""
    if i > 0:
        _add_rest(seq, i - 1, rest)
    elif len(seq):
        _add_before_item(seq, 0, rest)
    else:
        return rest
    return ""


def _add_before_item(seq: Any, i: int, lines: str) -> None:
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    entry = seq.ca.items.setdefault(i, [None, None, None, None])
    entry[1] = [CommentToken(lines, CommentMark(0), None), *(entry[1] or [])]


def _lines_above(mapping: Any, key: Any) -> str:
    """The comment lines between `key:` and the first element of its block list, taken out."""
    seen: set[int] = set()
    out = []
    entry = mapping.ca.items.get(key)
    value = mapping[key]
    holders = [(entry, 3)] if entry is not None and len(entry) > 3 else []
    if value.ca.comment:
        holders.append((value.ca.comment, 1))
    for holder, at in holders:
        for token in holder[at] or []:
            if id(token) not in seen:
                seen.add(id(token))
                out.append(token.value)
        holder[at] = None
    return "".join(out)
