#!/usr/bin/env python3
"""Worst-case stack of each entry point of a Thumb ELF (scripts/stack-report.sh).

Frames come from the `.stack_sizes` section (`-Z emit-stack-sizes`); for
functions without an entry (compiler_builtins, built without the flag) from
their disassembly. The call graph comes from `llvm-objdump -d`: `bl`/`blx`
to a symbol, branches out of the function (tail calls), and `blx rN`/`bx rN`
through a register loaded with a function's address from a literal pool
(how opt-level "z" calls a function it calls often). The worst case of a
root is the largest sum of frames over its call paths; a tail call releases
the caller's frame first, except into an outlined function (the machine
outliner's tail-called code still runs in its caller's frame).

Anything the graph cannot bound is printed, and makes the exit status 1:
cycles (recursion), indirect calls it cannot resolve, and a painted
high-water mark (--painted) above the static bound. Stack pointer moves by
a register are printed too. With none of them, the numbers are upper bounds
for the code as linked (not counting interrupts, which stack on top of
whatever runs).

A C image (scripts/firmware-build.sh) adds --su: gcc's `-fstack-usage`
files, whose frames are taken for the C functions (they have no
.stack_sizes entry; each is checked against the sp decrements in its code),
and --hook-free NAME: the calls through a register in NAME are the agent's
lock hooks, which the image does not set (printed as such, not as
unresolved). --bounds FILE writes `name bytes` per root.

Usage: stack-report.py --objdump PATH [--painted FILE] [--su FILE]... [--hook-free NAME]...
                       [--bounds FILE] [--triple T] [--root NAME]... ELF
With no --root, every global symbol named stack_* is a root.
"""
import argparse
import bisect
import re
import struct
import subprocess
import sys
from collections import defaultdict

# ---- ELF (32-bit little-endian) ------------------------------------------


def read_elf(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        sys.exit(f"{path}: not a 32-bit little-endian ELF")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    secs = []
    for i in range(shnum):
        name, typ, flags, addr, off, size, link, info, align, entsize = struct.unpack_from(
            "<10I", data, shoff + i * shentsize)
        secs.append(dict(name=name, type=typ, flags=flags, addr=addr, off=off, size=size, link=link))
    names = secs[shstrndx]
    for s in secs:
        s["name"] = cstr(data, names["off"] + s["name"])
    return data, secs


def cstr(data, off):
    return data[off:data.index(b"\0", off)].decode()


def symbols(data, secs):
    """Function symbols: address (Thumb bit cleared) -> (name, size, global)."""
    out = {}
    for s in secs:
        if s["type"] != 2:  # SHT_SYMTAB
            continue
        strtab = secs[s["link"]]
        for off in range(s["off"], s["off"] + s["size"], 16):
            name, value, size, info, _other, _shndx = struct.unpack_from("<IIIBBH", data, off)
            if info & 0xF == 2:  # STT_FUNC
                out[value & ~1] = (cstr(data, strtab["off"] + name), size, info >> 4 == 1)
    return out


def stack_sizes(data, secs):
    """`.stack_sizes`: address (Thumb bit cleared) -> frame bytes."""
    out = {}
    for s in secs:
        if s["name"] != ".stack_sizes":
            continue
        p, end = s["off"], s["off"] + s["size"]
        while p < end:
            addr, = struct.unpack_from("<I", data, p)
            p += 4
            size, shift = 0, 0
            while True:
                b = data[p]
                p += 1
                size |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            out[addr & ~1] = size
    return out


# ---- disassembly ------------------------------------------------------------

FUNC_RE = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN_RE = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$")
DATA_RE = re.compile(r"^\s+([0-9a-f]+):(\s[0-9a-f]{2})+\s+\.(word|short|byte)")
LIT_RE = re.compile(r"^(r\d{1,2}|lr|ip|fp|sb|sl), \[pc, #-?0x[0-9a-f]+\].*@ 0x([0-9a-f]+)")
REG_RE = re.compile(r"\b(r\d{1,2}|lr|sp|pc|ip|fp|sb|sl)\b")
ALIASES = {"ip": "r12", "fp": "r11", "sb": "r9", "sl": "r10"}
CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
BRANCH_RE = re.compile(r"^(b|bl|blx)(" + "|".join(CONDS) + ")?$")
# Bases whose first operand is not a register they write.
NO_DEST = ("str", "strb", "strh", "strd", "stm", "stmia", "stmdb", "push", "cmp", "cmn", "tst", "teq",
           "cbz", "cbnz", "tbb", "tbh", "vstr", "vpush", "vcmp", "bkpt", "nop", "dmb", "dsb", "isb", "pld",
           "svc", "udf", "vmsr", "bx", "blx", "bl", "b")
CALLER_SAVED = ("r0", "r1", "r2", "r3", "r12", "lr")


def disassemble(objdump, elf, triple=None):
    extra = [f"--triple={triple}"] if triple else []
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", *extra, elf], check=True,
                          capture_output=True, text=True).stdout
    funcs = {}  # start -> {"name", "insns": [(addr, mnem, ops)], "data": [addr]}
    cur = None
    for line in text.splitlines():
        m = FUNC_RE.match(line)
        if m:
            cur = {"name": m.group(2), "insns": [], "data": []}
            funcs[int(m.group(1), 16)] = cur
            continue
        if cur is None:
            continue
        m = DATA_RE.match(line)
        if m:
            cur["data"].append(int(m.group(1), 16))
            continue
        m = INSN_RE.match(line)
        if m and not m.group(2).startswith("."):
            cur["insns"].append((int(m.group(1), 16), m.group(2), m.group(3)))
    return funcs


def regs(s):
    return [ALIASES.get(r, r) for r in REG_RE.findall(s)]


def reglist(ops):
    """Registers in a `{r4-r7, lr}` list."""
    m = re.search(r"\{([^}]*)\}", ops)
    out = []
    for part in (m.group(1).split(",") if m else []):
        part = part.strip()
        if "-" in part:
            a, b = (x.strip() for x in part.split("-"))
            out += [f"{a[0]}{i}" for i in range(int(a[1:]), int(b[1:]) + 1)]
        elif part:
            out.append(ALIASES.get(part, part))
    return out


def imm(ops):
    m = re.search(r"#(-?0x[0-9a-f]+|-?\d+)", ops)
    return int(m.group(1), 0) if m else None


def sp_down(base, ops):
    """Bytes this instruction moves sp down by (0 if none); None if by a register."""
    if base == "push" or (base == "stmdb" and ops.startswith("sp!")):
        return 4 * len(reglist(ops))
    if base == "vpush":
        return sum(8 if r.startswith("d") else 4 for r in reglist(ops))
    if base in ("sub", "subw") and re.match(r"^sp, (sp, )?#", ops):
        return imm(ops)
    if base in ("sub", "subw") and re.match(r"^sp, (sp, )?r", ops):
        return None
    if base in ("add", "addw") and re.match(r"^sp, (sp, )?#-", ops):
        return -imm(ops)
    m = re.search(r"\[sp, #-(0x[0-9a-f]+|\d+)\]!", ops)
    if base.startswith("str") and m:
        return int(m.group(1), 0)
    if base == "mov" and ops.startswith("sp, ") and ops[4:] not in ("r7", "r11"):
        return None
    return 0


def decode(f):
    """Per instruction: (addr, base, ops, conditional, kind, target)."""
    out = []
    it = 0
    for addr, mnem, ops in f["insns"]:
        base = mnem.split(".")[0]
        cond = it > 0
        if it:
            base = base[:-2]
            it -= 1
        kind, target = "op", None
        bm = BRANCH_RE.match(base) if not cond else re.match(r"^(b|bl|blx)$", base)
        tm = re.match(r"^0x([0-9a-f]+)", ops)
        if base.startswith("it") and re.match(r"^it[te]*$", base):
            it = len(base) - 1
        elif bm and tm:
            kind = {"b": "jump", "bl": "call", "blx": "call"}[bm.group(1)]
            target = int(tm.group(1), 16)
            cond = cond or bool(bm.group(2))
        elif base in ("cbz", "cbnz"):
            kind, target, cond = "jump", int(re.search(r"0x([0-9a-f]+)", ops).group(1), 16), True
        elif base in ("bx", "blx") and ops.strip() == "lr":
            kind = "ret"
        elif base in ("bx", "blx"):
            kind, target = ("itail" if base == "bx" else "icall"), regs(ops)[0]
        elif base in ("pop", "ldm", "ldmia") and "pc" in reglist(ops):
            kind = "ret"
        elif base == "ldr" and ops.startswith("pc, [sp]"):
            kind = "ret"
        elif base == "ldr" and re.match(r"^pc, \[r\d+, r\d+, lsl #2\]", ops):
            kind = "ldrtab"  # gcc's switch: a table of addresses follows
        elif base in ("ldr", "mov") and ops.startswith("pc"):
            kind, target = "itail", "pc"
        elif base in ("tbb", "tbh"):
            kind = base
        out.append((addr, base, ops, cond, kind, target))
    return out


# ---- the graph -----------------------------------------------------------------


class Image:
    def __init__(self, data, secs, syms, sizes, funcs):
        self.data, self.secs, self.syms, self.sizes, self.funcs = data, secs, syms, sizes, funcs
        self.starts = sorted(funcs)
        self.ends = {}
        for i, a in enumerate(self.starts):
            size = syms.get(a, (None, 0, False))[1]
            nxt = self.starts[i + 1] if i + 1 < len(self.starts) else a + 4
            self.ends[a] = a + size if size else nxt
        self.code = {a: decode(f) for a, f in funcs.items()}
        self.notes = []
        self.checked = 0  # frames from .stack_sizes also counted in the code

    def name(self, a):
        return self.funcs[a]["name"]

    def owner(self, addr):
        i = bisect.bisect_right(self.starts, addr) - 1
        return self.starts[i] if i >= 0 and addr < self.ends[self.starts[i]] else None

    def bytes_at(self, addr, n):
        for s in self.secs:
            if s["flags"] & 2 and s["type"] == 1 and s["addr"] <= addr and addr + n <= s["addr"] + s["size"]:
                return self.data[s["off"] + addr - s["addr"]:s["off"] + addr - s["addr"] + n]
        return None

    def table(self, a, addr, base):
        """Targets of the tbb/tbh at addr (its table runs to the next instruction)."""
        start = addr + 4
        after = [x[0] for x in self.code[a] if x[0] > addr]
        end = min(after) if after else self.ends[a]
        step = 1 if base == "tbb" else 2
        raw = self.bytes_at(start, end - start) or b""
        n = len(raw) // step
        vals = raw[:n] if step == 1 else struct.unpack_from(f"<{n}H", raw)
        return sorted({start + 2 * v for v in vals if start + 2 * v >= end})

    def word_table(self, a, addr):
        """Targets of gcc's `ldr pc, [rX, rY, lsl #2]` at addr: the words from
        the next word boundary to the next instruction, each a Thumb address
        in the function (anything else makes the table unreadable: none)."""
        start = (addr + 4 + 3) & ~3
        after = [x[0] for x in self.code[a] if x[0] > addr + 2]
        end = min(after) if after else self.ends[a]
        raw = self.bytes_at(start, end - start) or b""
        words = struct.unpack_from(f"<{len(raw) // 4}I", raw)
        targets = sorted({w & ~1 for w in words})
        return targets if words and all(w & 1 and a <= w & ~1 < self.ends[a] for w in words) else []

    def succ(self, a, i, returns):
        """Successor indices of instruction i of function a, and whether it falls out."""
        code = self.code[a]
        addr, base, ops, cond, kind, target = code[i]
        index = self.index[a]
        nxt = [i + 1] if i + 1 < len(code) else []
        inside = lambda t: a <= t < self.ends[a]
        if kind == "jump" and inside(target):
            return ([index[target]] if target in index else []) + (nxt if cond else [])
        if kind in ("jump", "itail", "ret"):
            return nxt if cond else []
        if kind == "call":
            callee = self.owner(target)
            return nxt if callee is None or returns.get(callee, True) else []
        if kind in ("tbb", "tbh"):
            return [index[t] for t in self.table(a, addr, base) if t in index]
        if kind == "ldrtab":
            return [index[t] for t in self.word_table(a, addr) if t in index]
        return nxt

    def analyze(self):
        self.index = {a: {x[0]: i for i, x in enumerate(c)} for a, c in self.code.items()}
        # Which functions return (least fixpoint): a ret, or a tail call to one that does.
        returns = {a: False for a in self.code}
        changed = True
        while changed:
            changed = False
            for a in self.code:
                if returns[a] or not self.code[a]:
                    continue
                for i in self.reach(a, returns):
                    addr, base, ops, cond, kind, target = self.code[a][i]
                    tail = kind == "jump" and not (a <= target < self.ends[a])
                    if kind in ("ret", "itail") or (tail and returns.get(self.owner(target), True)):
                        returns[a] = changed = True
                        break
        self.returns = returns
        self.live = {a: self.reach(a, returns) for a in self.code}
        self.values = {a: self.dataflow(a) for a in self.code}

    def reach(self, a, returns):
        seen, todo = set(), [0] if self.code[a] else []
        while todo:
            i = todo.pop()
            if i not in seen:
                seen.add(i)
                todo += self.succ(a, i, returns)
        return seen

    def dataflow(self, a):
        """Register values before each reachable instruction: sets of function
        addresses, "E" (as on entry) and "T" (anything else)."""
        code = self.code[a]
        if not code:
            return {}
        entry = defaultdict(lambda: frozenset("E"))
        state = {0: entry}
        todo = [0]
        while todo:
            i = todo.pop()
            s = state[i]
            out = self.transfer(a, code[i], s)
            for j in self.succ(a, i, self.returns):
                old = state.get(j)
                if old is None:
                    state[j] = out
                    todo.append(j)
                    continue
                merged = None
                for r in set(old) | set(out):
                    v = old[r] | out[r]
                    if v != old[r]:
                        if merged is None:
                            merged = defaultdict(lambda: frozenset("E"), old)
                        merged[r] = v
                if merged is not None:
                    state[j] = merged
                    todo.append(j)
        return state

    def transfer(self, a, insn, s):
        addr, base, ops, cond, kind, target = insn
        out = defaultdict(lambda: frozenset("E"), s)

        def put(r, v):
            out[r] = (s[r] | v) if cond else v

        top = frozenset("T")
        if kind in ("call", "icall"):
            for r in CALLER_SAVED:
                put(r, top)
            return out
        if base in ("pop", "ldm", "ldmia"):
            for r in reglist(ops):
                put(r, top)
            return out
        if base in NO_DEST or kind != "op":
            return out
        rs = regs(ops.split(",")[0])
        if not rs:
            return out
        r = rs[0]
        m = LIT_RE.match(ops) if base == "ldr" else None
        if m:
            v = self.bytes_at(int(m.group(2), 16), 4)
            v = struct.unpack("<I", v)[0] if v else None
            put(r, frozenset([v & ~1]) if v is not None and v & 1 and (v & ~1) in self.funcs else top)
        elif base == "movw":
            put(r, frozenset([("w", imm(ops))]))
        elif base == "movt" and all(isinstance(x, tuple) for x in s[r]):
            vals = {x[1] | (imm(ops) << 16) for x in s[r]}
            put(r, frozenset(v & ~1 if v & 1 and (v & ~1) in self.funcs else "T" for v in vals))
        elif base == "mov" and re.match(r"^\w+, (r\d{1,2}|lr|ip|fp|sb|sl)$", ops):
            put(r, s[regs(ops)[1]])
        else:
            put(r, top)
        second = regs(ops.split(",")[1]) if "," in ops else []
        if base in ("ldrd", "umull", "smull", "umlal", "smlal") and second:
            put(second[0], top)
        return out

    def graph(self):
        """Frames, calls (in the caller's frame), tail calls (caller's frame released)."""
        frame, src = {}, {}
        calls, tails = defaultdict(set), defaultdict(set)
        indirect, unresolved = [], []
        callsites = defaultdict(list)  # callee -> [(caller, state before the call)]
        for a, code in self.code.items():
            for i in self.live[a]:
                addr, base, ops, cond, kind, target = code[i]
                if kind == "call" and self.owner(target) is not None:
                    callsites[self.owner(target)].append((a, self.values[a][i]))
        for a, code in self.code.items():
            down, dynamic = 0, False
            for i in sorted(self.live[a]):
                addr, base, ops, cond, kind, target = code[i]
                d = sp_down(base, ops)
                if d is None:
                    dynamic = True
                    self.notes.append(f"sp moved by a register in {self.name(a)} at {addr:#x}: {base} {ops}")
                elif d > 0:
                    down += d
                if kind in ("jump", "call"):
                    if kind == "jump" and a <= target < self.ends[a]:
                        continue
                    o = self.owner(target)
                    if o is None:
                        self.notes.append(f"branch to no function from {self.name(a)} at {addr:#x}")
                        continue
                    if o != target:
                        self.notes.append(f"branch into the middle of {self.name(o)} from {self.name(a)} "
                                          f"at {addr:#x}")
                    self.edge(a, o, kind == "jump", calls, tails)
                elif kind in ("icall", "itail"):
                    indirect.append((a, addr))
                    v = self.values[a][i][target] if target != "pc" else frozenset("T")
                    ts = {x for x in v if isinstance(x, int)}
                    why = []
                    if "T" in v or any(isinstance(x, tuple) for x in v):
                        why.append(f"{target} computed")
                    if "E" in v:
                        # Outlined code: the register was set by whoever called it.
                        for c, st in callsites.get(a, []):
                            cv = st[target]
                            ts |= {x for x in cv if isinstance(x, int)}
                            if cv - {x for x in cv if isinstance(x, int)}:
                                why.append(f"{target} not known at the call from {self.name(c)}")
                        if not callsites.get(a):
                            why.append(f"{target} set by an unknown caller")
                    if why:
                        unresolved.append(f"{self.name(a)} at {addr:#x}: {base} {target} ({'; '.join(why)})")
                    for t in ts:
                        self.edge(a, t, kind == "itail", calls, tails)
            if a in self.sizes:
                frame[a], src[a] = self.sizes[a], "stack_sizes"
                self.checked += not dynamic
                if not dynamic and down != self.sizes[a]:
                    self.notes.append(f"frame of {self.name(a)}: .stack_sizes {self.sizes[a]}, "
                                      f"sp decrements in its code {down}")
            else:
                frame[a], src[a] = down, "disassembly"
        return frame, src, calls, tails, indirect, unresolved

    def edge(self, a, t, tail, calls, tails):
        # The outliner's tail-called code still runs in its caller's frame.
        if tail and not self.name(t).startswith("OUTLINED_FUNCTION"):
            tails[a].add(t)
        else:
            calls[a].add(t)


def worst_paths(roots, frame, calls, tails, skip=frozenset()):
    """worst[f] = (bytes, path) over call paths not entering `skip`; a path is
    [(function, reached by a tail call)]. Also the cycles met."""
    worst, cycles, onstack = {}, [], []

    def visit(f):
        if f in worst:
            return worst[f]
        if f in onstack:
            cycles.append(onstack[onstack.index(f):] + [f])
            return (0, [])
        onstack.append(f)
        best = (frame[f], [(f, False)])
        for c in calls.get(f, ()):
            if c not in skip:
                b, p = visit(c)
                if frame[f] + b > best[0]:
                    best = (frame[f] + b, [(f, False)] + p)
        for c in tails.get(f, ()):
            if c not in skip:
                b, p = visit(c)
                if b > best[0]:
                    best = (b, [(f, False), (p[0][0], True)] + p[1:])
        onstack.pop()
        worst[f] = best
        return best

    for r in roots:
        visit(r)
    return worst, cycles


def show(path, frame, name):
    """The path's lines: frame, stack in use at the end of the frame, name."""
    lines, depth = [], 0
    for i, (f, tail) in enumerate(path):
        if tail:
            depth -= frame[path[i - 1][0]]
        depth += frame[f]
        note = "  (tail call: the caller's frame is released first)" if tail else ""
        lines.append(f"    {frame[f]:>6} {depth:>6}  {short(name(f), 90)}{note}")
    return lines


def reachable(roots, calls, tails):
    seen, todo = set(), list(roots)
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += list(calls.get(f, ())) + list(tails.get(f, ()))
    return seen


def short(name, width=70):
    return name if len(name) <= width else name[:width - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("elf")
    ap.add_argument("--objdump", required=True)
    ap.add_argument("--root", action="append", default=[])
    ap.add_argument("--painted", help="lines 'name bytes' from a painted-stack run")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--su", action="append", default=[], help="a gcc -fstack-usage file")
    ap.add_argument("--hook-free", action="append", default=[],
                    help="a function whose register calls are lock hooks the image does not set")
    ap.add_argument("--triple", help="for llvm-objdump, when the ELF has no .ARM.attributes")
    ap.add_argument("--bounds", help="write 'name bytes' (the worst case) per root here")
    args = ap.parse_args()

    data, secs = read_elf(args.elf)
    syms = symbols(data, secs)
    sizes = stack_sizes(data, secs)
    if not sizes:
        sys.exit(f"{args.elf}: no .stack_sizes section (build with -Z emit-stack-sizes)")
    img = Image(data, secs, syms, sizes, disassemble(args.objdump, args.elf, args.triple))
    img.analyze()
    frame, src, calls, tails, indirect, unresolved = img.graph()
    name = img.name
    by_name = {f["name"]: a for a, f in img.funcs.items()}
    su_bad = apply_su(args.su, by_name, frame, src, img)
    hook_free = set()
    for n in args.hook_free:
        if n not in by_name:
            sys.exit(f"no function {n} (--hook-free)")
        hook_free.add(by_name[n])
    names = args.root or sorted(n for a, (n, _s, g) in syms.items() if g and n.startswith("stack_"))
    roots = []
    for n in names:
        if n not in by_name:
            sys.exit(f"no function {n}")
        roots.append(by_name[n])
    painted = {}
    if args.painted:
        for line in open(args.painted):
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                painted[parts[0]] = int(parts[1])
    live = reachable(roots, calls, tails)
    worst, cycles = worst_paths(roots, frame, calls, tails)
    # Paths into a function that never returns are panics (panic = "abort").
    noreturn = frozenset(a for a in live if not img.returns[a])
    ok, _ = worst_paths(roots, frame, calls, tails, noreturn)

    print(f"{'entry point':<26} {'worst':>6} {'no-panic':>8} {'painted':>8}   largest frame on the worst no-panic path")
    for r in roots:
        b, path = ok[r]
        big = max((f for f, _ in path), key=lambda a: frame[a])
        pt = painted.get(name(r))
        print(f"{name(r):<26} {worst[r][0]:>6} {b:>8} {pt if pt is not None else '-':>8}   "
              f"{frame[big]:>5}  {short(name(big), 60)}")
    print()
    print("worst paths: frame bytes, stack in use below the caller, function")
    for r in roots:
        for label, (b, path) in (("", worst[r]), ("without panics, ", ok[r])):
            if label and path == worst[r][1]:
                continue
            print(f"{name(r)}: {label}{b} B")
            print("\n".join(show(path, frame, name)))
    print()
    print(f"largest frames among the {len(live)} functions reachable from the entry points:")
    for a in sorted(live, key=lambda a: -frame[a])[:args.top]:
        print(f"    {frame[a]:>6}  {short(name(a), 100)}")
    print()
    nosize = sorted(name(a) for a in live if src[a] == "disassembly")
    print(f"frames read from the code (no .stack_sizes entry): {', '.join(nosize) or 'none'}")
    if args.su:
        fromsu = sorted(name(a) for a in live if src[a] == "su")
        print(f"frames from gcc -fstack-usage: {len(fromsu)} ({', '.join(fromsu)})")
    mismatched = sum(n.startswith("frame of ") for n in img.notes)
    print(f"frames counted in the code too (sp decrements): {img.checked}, "
          f"{img.checked - mismatched} equal to .stack_sizes")
    print(f"never return (the panic paths): {', '.join(sorted(name(a) for a in noreturn)) or 'none'}")
    live_ind = [x for x in indirect if x[0] in live]
    at = lambda u: img.owner(int(u.split(" at ")[1].split(":")[0], 16))
    hooks = [u for u in unresolved if at(u) in live and at(u) in hook_free]
    bad = [u for u in unresolved if at(u) in live and at(u) not in hook_free]
    for u in hooks:
        print(f"    lock hook (none set in this image, so never called): {u}")
    print(f"calls through a register: {len(live_ind)}, "
          + ("all to function addresses loaded from literal pools" if not bad else f"{len(bad)} unresolved"))
    for u in bad:
        print(f"    UNRESOLVED (numbers through it are lower bounds): {u}")
    if cycles:
        for c in cycles:
            print("    RECURSION (numbers through it are lower bounds): " + " -> ".join(name(a) for a in c))
    else:
        print("recursion: none")
    for n in img.notes:
        print(f"note: {n}")
    over = [name(r) for r in roots if painted.get(name(r), 0) > worst[r][0]]
    for n in over:
        print(f"    PAINTED ABOVE THE STATIC BOUND (the graph misses something): {n}")
    if args.bounds:
        with open(args.bounds, "w") as f:
            for r in roots:
                f.write(f"{name(r)} {worst[r][0]}\n")
    return 1 if bad or cycles or over or su_bad else 0


def apply_su(paths, by_name, frame, src, img):
    """Frames of gcc -fstack-usage (`file:line:col:name<TAB>bytes<TAB>qualifier`)
    for the functions without a .stack_sizes entry. A dynamic frame, or one
    that differs from the sp decrements counted in the code, is printed and
    counted as a failure."""
    bad = 0
    for path in paths:
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            fn = parts[0].rsplit(":", 1)[-1]
            a = by_name.get(fn)
            if a is None:  # gcc's clones: `f.constprop` is the symbol `f.constprop.0`
                clones = [n for n in by_name if n.startswith(fn + ".") and n[len(fn) + 1:].isdigit()]
                a = by_name[clones[0]] if len(clones) == 1 else None
            if a is None:
                continue  # inlined everywhere or dropped by --gc-sections
            if parts[2] != "static":
                print(f"    FRAME NOT STATIC (gcc -fstack-usage: {parts[2]}): {fn}")
                bad += 1
            if src[a] == "disassembly" and int(parts[1]) != frame[a]:
                img.notes.append(f"frame of {fn}: -fstack-usage {parts[1]}, sp decrements in its code {frame[a]}")
            frame[a], src[a] = int(parts[1]), "su"
    return bad


if __name__ == "__main__":
    sys.exit(main())
