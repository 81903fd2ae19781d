#!/usr/bin/env python3
"""The example firmware's stack, composed from the static bounds per entry
point (stack-report.py --bounds) and what the hardware adds.

    python3 scripts/firmware-stack.py stack-bound.txt link.ld

The two interrupt handlers (SysTick, UART0 RX) run at the same priority,
the reset default, so they do not nest: one of them at a time lands on top
of whatever runs, with the Cortex-M4's exception frame (26 words with the
FPU's lazily stacked state, plus 4 B of alignment: 108 B). Prints, per
`ea_*` call, its bound and its bound with that interrupt (what the painted
figure of the running image, which counts interrupts that landed during the
call, can be compared with), and the image's: reset_handler's path plus an
interrupt, against the stack the linker script reserves (`_stack_size`).
Appends `interrupt B` and `image B` to the bounds file. Exits 1 if the
image's bound exceeds the reservation.
"""
import re
import sys

EXCEPTION_FRAME = 108
HANDLERS = ("systick_handler", "uart0_rx_handler")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    bounds = {}
    for line in open(sys.argv[1]):
        name, b = line.split()
        bounds[name] = int(b)
    irq = max(bounds[h] for h in HANDLERS) + EXCEPTION_FRAME
    m = re.search(r"_stack_size\s*=\s*(\d+)\s*([KM]?)", open(sys.argv[2]).read())
    reserved = int(m.group(1)) * {"": 1, "K": 1024, "M": 1 << 20}[m.group(2)]
    image = bounds["reset_handler"] + irq
    print()
    print(f"{'call':<34}{'static':>8}{'+ interrupt':>13}")
    for name in sorted(n for n in bounds if n.startswith("ea_")):
        print(f"{name:<34}{bounds[name]:>8}{bounds[name] + irq:>13}")
    print(f"interrupt: the larger handler, {max(bounds[h] for h in HANDLERS)} B, + the exception frame, "
          f"{EXCEPTION_FRAME} B = {irq} B")
    print(f"image: reset_handler -> main, {bounds['reset_handler']} B, + an interrupt = {image} B "
          f"(reserved: _stack_size {reserved} B)")
    with open(sys.argv[1], "a") as f:
        f.write(f"interrupt {irq}\nimage {image}\n")
    if image > reserved:
        print(f"firmware-stack: FAILED: the image's static bound, {image} B, exceeds the {reserved} B reserved")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
