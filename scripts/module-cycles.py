#!/usr/bin/env python3
"""Finds import cycles between the files of each crate (issue 20: "no module
imports back into a module that imports it").

For every workspace member and fuzz/, every target root (src/lib.rs,
src/main.rs, src/bin/, tests/, benches/, examples/, fuzz_targets/, build.rs and
the `path =` entries of Cargo.toml) is read with its `mod` tree (`#[path]`
honoured). An edge runs from a file to the file that defines what it names by

  * `crate::`, `$crate::`, `super::` or `self::` paths, in `use` items and in code,
  * paths that start with one of the module's own child modules
    (`use child::Item`, `child::f()`),

with re-exports followed to the file that defines the item (`crate::Item`
where the crate root has `pub use module::Item` is an edge to `module`).
A `mod` declaration is not an edge. Comments (doc comments included), string
literals and `#[cfg(test)]` items (`mod tests` blocks and files) are skipped.

Every strongly connected component of more than one file is a cycle: it is
printed with the edges inside it and the path that makes each one. Exit
status 1 if there is any, 0 if none.

    python3 scripts/module-cycles.py          # every crate
    python3 scripts/module-cycles.py sim      # some crates
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- lexing ---------------------------------------------------------------

TOKEN = re.compile(
    r"""
      (?P<ident>r\#[A-Za-z_]\w*|[A-Za-z_]\w*|\$crate)
    | (?P<colons>::)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def strip(text):
    """Returns (code, strings): comments removed, each string literal replaced
    by a `"N"` placeholder whose text is strings[N]. Char literals and
    lifetimes are kept apart."""
    out = []
    strings = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif c in "rb" and re.match(r'(br|r|b)?#*"', text[i:i + 40]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(br|r|b)?(#*)"', text[i:])
            prefix, hashes = m.group(1) or "", m.group(2)
            start = i + m.end()
            if "r" in prefix:
                end = text.find('"' + hashes, start)
                end = n if end < 0 else end
                strings.append(text[start:end])
                i = end + 1 + len(hashes)
            else:
                j = start
                while j < n and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
                strings.append(text[start:j])
                i = j + 1
            out.append('"%d"' % (len(strings) - 1))
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            strings.append(text[i + 1:j])
            out.append('"%d"' % (len(strings) - 1))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:])
            if m:  # a char literal
                out.append("' '")
                i += m.end()
            else:  # a lifetime or label
                out.append("'")
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), strings


def tokens(code):
    toks = []
    for m in TOKEN.finditer(code):
        t = m.group(0)
        if t.isspace():
            continue
        toks.append(t[2:] if t.startswith("r#") else t)
    return toks


# ---- items ----------------------------------------------------------------

OPEN = {"{": "}", "(": ")", "[": "]"}


def skip_group(toks, i):
    """toks[i] opens a group; returns the index after its close."""
    depth = 0
    while i < len(toks):
        if toks[i] in OPEN:
            depth += 1
        elif toks[i] in ("}", ")", "]"):
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def skip_item(toks, i):
    """Skips one item starting at toks[i]: up to a `;` outside groups, or
    through the first `{...}` block."""
    while i < len(toks):
        t = toks[i]
        if t == ";":
            return i + 1
        if t == "{":
            return skip_group(toks, i)
        if t in ("(", "["):
            i = skip_group(toks, i)
            continue
        i += 1
    return i


def parse_use_tree(toks, i, prefix, out):
    """Parses a use tree at toks[i]; appends (segments, alias) per leaf
    (alias None for a glob). Returns the index after the tree."""
    segs = list(prefix)
    if toks[i] == "::":  # `use ::extern_crate::...`
        segs.append("::")
        i += 1
    while i < len(toks):
        t = toks[i]
        if t == "{":
            i += 1
            while toks[i] != "}":
                i = parse_use_tree(toks, i, segs, out)
                if toks[i] == ",":
                    i += 1
            return i + 1
        if t == "*":
            out.append((segs, None))
            return i + 1
        if re.match(r"\w|\$", t):
            segs = segs + [t]
            i += 1
            if i < len(toks) and toks[i] == "::":
                i += 1
                continue
            alias = segs[-1]
            if alias == "self":  # `use a::b::{self}`
                segs = segs[:-1]
                alias = segs[-1] if segs else "self"
            if i < len(toks) and toks[i] == "as":
                alias = toks[i + 1]
                i += 2
            out.append((segs, alias))
            return i
        return i + 1
    return i


def attr_text(toks, i):
    """toks[i] == '#'; returns (text of the attribute, index after it)."""
    j = i + 1
    if toks[j] == "!":
        j += 1
    end = skip_group(toks, j)
    return "".join(toks[j + 1:end - 1]), end


def is_test_cfg(attr):
    return attr == "cfg(test)" or attr.startswith("cfg(all(test,")


class Module:
    def __init__(self, path, file, dir_):
        self.path = path        # tuple of names from the crate root
        self.file = file        # the file that holds its body
        self.dir = dir_         # where its `mod x;` children live
        self.children = {}      # name -> Module
        self.uses = {}          # alias -> segments (resolved from this module)
        self.globs = []         # segments of `use x::*`
        self.refs = []          # (segments, text) paths named in its code


class Crate:
    def __init__(self, name):
        self.name = name
        self.modules = {}       # path tuple -> Module, per root (key (root, path))
        self.files = set()

    def load(self, root_file):
        root = Module((), root_file, os.path.dirname(root_file))
        self.modules[(root_file, ())] = root
        self._read(root_file, root, root_file)
        return root

    def _read(self, file, module, root_file):
        if not os.path.exists(file):
            return
        self.files.add(file)
        with open(file, encoding="utf-8") as f:
            code, strings = strip(f.read())
        toks = tokens(code)
        self._items(toks, 0, len(toks), module, strings, root_file, file)

    def _items(self, toks, i, end, module, strings, root_file, file):
        """Walks the tokens of one module body."""
        attrs = []
        while i < end:
            t = toks[i]
            if t == "#" and i + 1 < end and toks[i + 1] in ("[", "!"):
                a, i = attr_text(toks, i)
                attrs.append(a)
                continue
            if any(is_test_cfg(a) for a in attrs):
                i = skip_item(toks, i)
                attrs = []
                continue
            if t == "mod" and i + 2 < end and re.match(r"\w", toks[i + 1]) and toks[i + 2] in (";", "{"):
                name = toks[i + 1]
                path_attr = None
                for a in attrs:
                    m = re.match(r'path="(\d+)"', a)
                    if m:
                        path_attr = strings[int(m.group(1))]
                attrs = []
                if toks[i + 2] == ";":
                    if path_attr:
                        child_file = os.path.normpath(os.path.join(os.path.dirname(file), path_attr))
                        child_dir = os.path.dirname(child_file)
                    else:
                        cand = os.path.join(module.dir, name + ".rs")
                        if os.path.exists(cand):
                            child_file, child_dir = cand, os.path.join(module.dir, name)
                        else:
                            child_file = os.path.join(module.dir, name, "mod.rs")
                            child_dir = os.path.join(module.dir, name)
                    child = Module(module.path + (name,), child_file, child_dir)
                    module.children[name] = child
                    self.modules[(root_file, child.path)] = child
                    self._read(child_file, child, root_file)
                    i += 3
                else:
                    close = skip_group(toks, i + 2)
                    child = Module(module.path + (name,), file, os.path.join(module.dir, name))
                    module.children[name] = child
                    self.modules[(root_file, child.path)] = child
                    self._items(toks, i + 3, close - 1, child, strings, root_file, file)
                    i = close
                continue
            if t == "use" and (i == 0 or toks[i - 1] != "::"):
                leaves = []
                j = parse_use_tree(toks, i + 1, [], leaves)
                while j < end and toks[j] != ";":
                    j += 1
                for segs, alias in leaves:
                    if alias is None:
                        module.globs.append(segs)
                    elif alias != "_":
                        module.uses[alias] = segs
                    module.refs.append((segs, "use " + "::".join(segs) + ("" if alias else "::*")))
                attrs = []
                i = j + 1
                continue
            if t in ("crate", "$crate", "super", "self") and i + 1 < end and toks[i + 1] == "::" and (i == 0 or toks[i - 1] != "::"):
                segs, j = [t], i + 1
                while j + 1 < end and toks[j] == "::" and re.match(r"\w|\$", toks[j + 1]):
                    segs.append(toks[j + 1])
                    j += 2
                module.refs.append((segs, "::".join(segs)))
                i = j
                continue
            if re.match(r"[a-z_]\w*$", t) and i + 2 < end and toks[i + 1] == "::" and re.match(r"\w", toks[i + 2]) and (i == 0 or toks[i - 1] != "::"):
                # Maybe a path through a child module: checked at resolve time.
                segs, j = [t], i + 1
                while j + 1 < end and toks[j] == "::" and re.match(r"\w", toks[j + 1]):
                    segs.append(toks[j + 1])
                    j += 2
                module.refs.append((segs, "::".join(segs)))
                i = j
                continue
            if t in (";", "}", "{"):
                attrs = []
            i += 1

    def resolve(self, root_file, module, segs, depth=0):
        """The module (of this root) that defines what `segs`, named in
        `module`, refers to; None if it is outside the crate."""
        if depth > 8 or not segs:
            return None
        first = segs[0]
        start = self._start(module, segs)
        if start is not None:
            cur, rest = start
        elif first in module.uses and module.uses[first] != segs:
            target = module.uses[first]
            target_mod = self.resolve(root_file, module, target, depth + 1)
            if target_mod is None:
                return None
            # A `use`d module: continue through it; a `use`d item: its module.
            if target_mod.path == self._module_path_of(root_file, module, target):
                return self._walk(root_file, target_mod, segs[1:], depth)
            return target_mod
        else:
            return None  # another crate, a std path, a type's associated item
        here = self.modules.get((root_file, cur))
        if here is None:
            return None
        return self._walk(root_file, here, rest, depth)

    def _module_path_of(self, root_file, module, segs):
        """The module path `segs` names if all of it is modules, else None."""
        m = self.resolve_exact(root_file, module, segs)
        return m.path if m else None

    @staticmethod
    def _start(module, segs):
        """Where a path that starts inside the crate begins: (the module path
        it starts from, the segments left); None for any other first
        segment."""
        first = segs[0] if segs else None
        if first in ("crate", "$crate"):
            return (), segs[1:]
        if first in ("super", "self"):
            cur, rest = module.path, segs
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    cur = cur[:-1]
                rest = rest[1:]
            return cur, rest
        if first in module.children:
            return module.path, segs
        return None

    def resolve_exact(self, root_file, module, segs):
        start = self._start(module, segs)
        if start is None:
            return None
        cur, rest = start
        for s in rest:
            cur = cur + (s,)
            if (root_file, cur) not in self.modules:
                return None
        return self.modules.get((root_file, cur))

    def _walk(self, root_file, here, rest, depth):
        for k, s in enumerate(rest):
            child = here.children.get(s)
            if child is not None:
                here = child
                continue
            if s in here.uses:  # a re-export: where the item is defined
                # None: re-exported from another crate.
                return self.resolve(root_file, here, here.uses[s] + list(rest[k + 1:]), depth + 1)
            return here
        return here


# ---- the graph ------------------------------------------------------------

def roots_of(pkg):
    """The target root files of the package in directory `pkg`."""
    roots = []
    for rel in ("src/lib.rs", "src/main.rs", "build.rs"):
        if os.path.exists(os.path.join(pkg, rel)):
            roots.append(os.path.join(pkg, rel))
    for d in ("src/bin", "tests", "benches", "examples", "fuzz_targets"):
        full = os.path.join(pkg, d)
        if not os.path.isdir(full):
            continue
        for name in sorted(os.listdir(full)):
            p = os.path.join(full, name)
            if name.endswith(".rs"):
                roots.append(p)
            elif os.path.exists(os.path.join(p, "main.rs")):
                roots.append(os.path.join(p, "main.rs"))
    with open(os.path.join(pkg, "Cargo.toml"), encoding="utf-8") as f:
        for m in re.finditer(r'^\s*path\s*=\s*"([^"]+\.rs)"', f.read(), re.M):
            roots.append(os.path.normpath(os.path.join(pkg, m.group(1))))
    seen, out = set(), []
    for r in roots:
        if r not in seen and os.path.exists(r):
            seen.add(r)
            out.append(r)
    return out


def graph_of(pkg):
    """{file: {file: [path text, ...]}} over every target of the package."""
    crate = Crate(pkg)
    edges = {}
    for root_file in roots_of(pkg):
        crate.modules = {k: v for k, v in crate.modules.items() if k[0] != root_file}
        crate.load(root_file)
        for (rf, _), module in list(crate.modules.items()):
            if rf != root_file:
                continue
            for segs, text in module.refs:
                target = crate.resolve(root_file, module, segs)
                if target is None or target.file == module.file:
                    continue
                edges.setdefault(module.file, {}).setdefault(target.file, [])
                if text not in edges[module.file][target.file]:
                    edges[module.file][target.file].append(text)
    return edges


def sccs(edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def workspace_packages():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", text).group(1)
    pkgs = re.findall(r'"([^"]+)"', members)
    if os.path.exists(os.path.join(ROOT, "fuzz", "Cargo.toml")):
        pkgs.append("fuzz")
    return pkgs


def main(argv):
    pkgs = argv[1:] or workspace_packages()
    found = 0
    for pkg in pkgs:
        edges = graph_of(os.path.join(ROOT, pkg))
        cycles = [c for c in sccs(edges) if len(c) > 1]
        files = len(set(edges) | {t for ts in edges.values() for t in ts})
        if not cycles:
            print(f"{pkg}: no import cycles ({files} files with imports)")
            continue
        for comp in cycles:
            found += 1
            names = [os.path.relpath(f, ROOT) for f in comp]
            print(f"{pkg}: import cycle of {len(comp)} files: {', '.join(names)}")
            for a in comp:
                for b in comp:
                    if b in edges.get(a, {}):
                        via = "; ".join(edges[a][b][:3])
                        more = len(edges[a][b]) - 3
                        print(f"    {os.path.relpath(a, ROOT)} -> {os.path.relpath(b, ROOT)}: {via}"
                              + (f" (+{more} more)" if more > 0 else ""))
    if found:
        print(f"{found} import cycle(s): no module may import back into a module that imports it (issue 20)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
