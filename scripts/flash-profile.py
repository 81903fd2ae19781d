#!/usr/bin/env python3
"""Where the flash of an ELF's .text goes, by source function.

LTO inlines nearly all of the agent into a few symbols, so symbol sizes say
little. This reads the DWARF of an image built with debug info (which does
not change the code: scripts/flash-profile.sh checks the .text size is the
same as without) and gives every byte of .text to the innermost function it
was compiled from, inlined copies included, or with --outer-crate to the
innermost function of that crate (so `core::slice::copy_from_slice` inlined
into `agent_core::ring::Ring::write_at` counts for `write_at`).

    flash-profile.py ELF [--outer-crate agent_core] [--by crate|module|file|function] [--top N]

Prints bytes per crate, per module (`agent_core::ring`; methods count for the module of
their type), per source file (`src/agent/timers.rs`) or per function,
largest first, and the total. Needs pyelftools.
"""
import argparse
import sys
from collections import defaultdict

try:
    from elftools.elf.elffile import ELFFile
except ImportError:
    sys.exit("flash-profile: needs pyelftools (pip install pyelftools==0.33)")


def origin(die):
    """The DIE holding a function's name and declaration: an inlined copy
    or a concrete instance points there through DW_AT_abstract_origin or
    DW_AT_specification (at most a few hops)."""
    target = die
    for _ in range(4):
        for attr in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if attr in target.attributes:
                target = target.get_DIE_from_attribute(attr)
                break
        else:
            break
    return target


def decl_file(die, cu, dwarf, files_cache):
    """Source file a subprogram DIE was declared in (following origins)."""
    target = origin(die)
    idx = target.attributes.get("DW_AT_decl_file")
    if idx is None:
        return "?"
    tcu = target.cu
    if tcu.cu_offset not in files_cache:
        lp = dwarf.line_program_for_CU(tcu)
        names = []
        if lp is not None:
            dirs = [d if isinstance(d, bytes) else d.DW_LNCT_path for d in lp.header.include_directory]
            for fe in lp.header.file_entry:
                name = fe.name if isinstance(fe.name, bytes) else fe.DW_LNCT_path
                d = fe.dir_index
                base = dirs[d - 1] if lp.header.version < 5 and d > 0 else (dirs[d] if lp.header.version >= 5 else b"")
                names.append((base + b"/" + name).decode(errors="replace") if base else name.decode(errors="replace"))
        files_cache[tcu.cu_offset] = (lp.header.version if lp else 4, names)
    version, names = files_cache[tcu.cu_offset]
    i = idx.value - 1 if version < 5 else idx.value
    if 0 <= i < len(names):
        path = names[i]
        # Relative to the crate's directory where the path shows it.
        for marker in ("/library/", "/src/"):
            if marker in path:
                head, tail = path.rsplit(marker, 1)
                crate = head.rstrip("/").rsplit("/", 1)[-1]
                return (crate + marker if crate else marker.lstrip("/")) + tail
        return path
    return "?"


def qualified_name(die, cache):
    """`crate::module::Type::fn` for a subprogram DIE (following
    DW_AT_abstract_origin / DW_AT_specification), from its namespaces."""
    key = die.offset
    if key in cache:
        return cache[key]
    target = origin(die)
    name_attr = target.attributes.get("DW_AT_name")
    name = name_attr.value.decode(errors="replace") if name_attr else "?"
    parts = [name]
    parent = target.get_parent()
    while parent is not None and parent.tag in ("DW_TAG_namespace", "DW_TAG_structure_type",
                                                "DW_TAG_enumeration_type", "DW_TAG_union_type"):
        pn = parent.attributes.get("DW_AT_name")
        parts.append(pn.value.decode(errors="replace") if pn else "?")
        parent = parent.get_parent()
    q = "::".join(reversed(parts))
    cache[key] = q
    return q


def split_path(name):
    """`a::B<c::D>::e` -> ["a", "B<c::D>", "e"]: `::` outside <...> only."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(name):
        c = name[i]
        if c in "<(":
            depth += 1
        elif c in ">)":
            depth -= 1
        if depth == 0 and name.startswith("::", i):
            parts.append(cur)
            cur, i = "", i + 2
            continue
        cur += c
        i += 1
    parts.append(cur)
    return parts


def crate_of(name):
    """The crate a function comes from; the machine outliner's shared
    sequences (mostly the agent's) on a line of their own."""
    if name.startswith("["):
        for crate in ("compiler_builtins", "size_probe", "core", "heapless", "crc"):
            if crate in name:
                return crate
        return "[no DWARF]" if name.startswith("[no DWARF]") else name
    if name.startswith("OUTLINED_FUNCTION"):
        return "[machine outliner]"
    return split_path(name)[0] if "::" in name else name


def module_of(name):
    """The module path of a function: its leading lower-case segments
    (types, impl blocks and the function itself dropped)."""
    if name.startswith("["):
        return "[no DWARF]" if name.startswith("[no DWARF]") else name
    parts = split_path(name)[:-1]
    out = []
    for p in parts:
        if not p[:1].islower() or "<" in p or p.startswith("{"):
            break
        out.append(p)
    return "::".join(out) or name


def die_ranges(die, cu, range_lists):
    """Address ranges [lo, hi) of a DIE."""
    attrs = die.attributes
    if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
        lo = attrs["DW_AT_low_pc"].value
        hi_attr = attrs["DW_AT_high_pc"]
        hi = hi_attr.value if hi_attr.form == "DW_FORM_addr" else lo + hi_attr.value
        return [(lo, hi)]
    if "DW_AT_ranges" in attrs and range_lists is not None:
        base = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
        base = base.value if base else 0
        out = []
        for entry in range_lists.get_range_list_at_offset(attrs["DW_AT_ranges"].value, cu=cu):
            if hasattr(entry, "begin_offset"):
                if getattr(entry, "is_absolute", False):
                    out.append((entry.begin_offset, entry.end_offset))
                else:
                    out.append((base + entry.begin_offset, base + entry.end_offset))
            elif hasattr(entry, "base_address"):
                base = entry.base_address
        return out
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--outer-crate", help="attribute to the innermost function of this crate")
    ap.add_argument("--by", choices=("crate", "module", "file", "function"), default="module")
    ap.add_argument("--top", type=int, default=60)
    args = ap.parse_args()

    with open(args.elf, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        t_lo, t_size = text["sh_addr"], text["sh_size"]
        t_lo &= ~1
        owner = [None] * t_size  # (depth, name) per byte
        symbols = elf.get_section_by_name(".symtab")
        dwarf = elf.get_dwarf_info()
        range_lists = dwarf.range_lists()
        cache = {}
        files_cache = {}
        for cu in dwarf.iter_CUs():
            stack = [(cu.get_top_DIE(), 0, None)]
            while stack:
                die, depth, inherited = stack.pop()
                name = inherited
                if die.tag in ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine"):
                    q = qualified_name(die, cache)
                    if args.outer_crate is None or q.startswith(args.outer_crate + "::"):
                        name = decl_file(die, cu, dwarf, files_cache) if args.by == "file" else q
                    if name is not None:
                        for lo, hi in die_ranges(die, cu, range_lists):
                            lo &= ~1
                            for a in range(max(lo, t_lo), min(hi & ~1, t_lo + t_size)):
                                cur = owner[a - t_lo]
                                if cur is None or cur[0] <= depth:
                                    owner[a - t_lo] = (depth, name)
                for child in die.iter_children():
                    stack.append((child, depth + 1, name))
        # Bytes no DWARF covers (compiler_builtins, outlined functions): by symbol.
        if symbols is not None:
            for sym in symbols.iter_symbols():
                if sym["st_info"]["type"] != "STT_FUNC" or sym["st_size"] == 0:
                    continue
                lo = sym["st_value"] & ~1
                for a in range(max(lo, t_lo), min(lo + sym["st_size"], t_lo + t_size)):
                    if owner[a - t_lo] is None:
                        owner[a - t_lo] = (-1, "[no DWARF] " + sym.name)
    totals = defaultdict(int)
    for o in owner:
        name = o[1] if o else "[padding / literal pools]"
        if args.by == "crate":
            name = crate_of(name)
        elif args.by == "module":
            name = module_of(name)
        elif args.by == "file" and name.startswith("[no DWARF]"):
            name = "[no DWARF]"
        totals[name] += 1
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    width = min(100, max(len(n) for n, _ in rows[: args.top]))
    for name, n in rows[: args.top]:
        print(f"{n:7d}  {100.0 * n / t_size:5.1f} %  {name[:width]}")
    if len(rows) > args.top:
        rest = sum(n for _, n in rows[args.top:])
        print(f"{rest:7d}  {100.0 * rest / t_size:5.1f} %  ({len(rows) - args.top} more)")
    print(f"{t_size:7d}  100.0 %  .text")


if __name__ == "__main__":
    main()
