/*
 * riscv/board.c - startup, the trap handler and the drivers of ../board.h
 * for QEMU's RISC-V `virt` machine: one riscv32imac hart in machine mode
 * (-bios none: no firmware below us). The CLINT's mtime/mtimecmp is the
 * millisecond clock and its interrupt, the 16550 UART0 receives by
 * interrupt through the PLIC, semihosting carries the log, and the SiFive
 * test device ends QEMU with the exit status. Each driver is a few register
 * writes; nothing here knows the agent.
 */
#include "board.h"

/* ---- registers (QEMU hw/riscv/virt.c's memory map) ----------------------- */
#define REG32(addr) (*(volatile uint32_t *)(addr))
#define REG8(addr) (*(volatile uint8_t *)(addr))

#define TEST_FINISHER REG32(0x00100000u) /* sifive_test */
#define FINISHER_PASS 0x5555u
#define FINISHER_FAIL 0x3333u /* | status << 16 */

#define CLINT_MTIMECMP_LO REG32(0x02004000u) /* hart 0 */
#define CLINT_MTIMECMP_HI REG32(0x02004004u)
#define CLINT_MTIME_LO REG32(0x0200BFF8u)
#define CLINT_MTIME_HI REG32(0x0200BFFCu)
#define MTIME_HZ 10000000u /* virt's timebase-frequency */
#define MTIME_PER_MS (MTIME_HZ / 1000u)

#define PLIC_PRIORITY(irq) REG32(0x0C000000u + 4u * (irq))
#define PLIC_ENABLE REG32(0x0C002000u)    /* context 0: hart 0, machine mode */
#define PLIC_THRESHOLD REG32(0x0C200000u)
#define PLIC_CLAIM REG32(0x0C200004u)     /* read: claim; write: complete */
#define UART0_IRQ 10u

#define UART0 0x10000000u /* a 16550, byte registers */
#define UART_RBR REG8(UART0 + 0u)
#define UART_THR REG8(UART0 + 0u)
#define UART_IER REG8(UART0 + 1u)
#define UART_FCR REG8(UART0 + 2u)
#define UART_LCR REG8(UART0 + 3u)
#define UART_MCR REG8(UART0 + 4u)
#define UART_LSR REG8(UART0 + 5u)
#define IER_RX 0x01u
#define FCR_FIFO_ON_CLEARED 0x07u /* RX trigger at 1 byte */
#define LCR_8N1 0x03u
#define MCR_OUT2 0x08u /* the interrupt line's gate on a PC-style board */
#define LSR_DR 0x01u
#define LSR_THRE 0x20u

/* mstatus.MIE, mie.MTIE, mie.MEIE and the two interrupt causes. */
#define MSTATUS_MIE 0x8u
#define MIE_MTIE 0x80u
#define MIE_MEIE 0x800u
#define CAUSE_IRQ 0x80000000u
#define CAUSE_M_TIMER (CAUSE_IRQ | 7u)
#define CAUSE_M_EXTERNAL (CAUSE_IRQ | 11u)

#define CSR_READ(csr, v) __asm__ volatile("csrr %0, " #csr : "=r"(v))
#define CSR_WRITE(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"r"(v) : "memory")
#define CSR_SET(csr, bits) __asm__ volatile("csrs " #csr ", %0" ::"r"(bits) : "memory")
#define CSR_CLEAR(csr, bits) __asm__ volatile("csrc " #csr ", %0" ::"r"(bits) : "memory")

/* ---- startup ------------------------------------------------------------ */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top, _stack_limit;
int main(void);
void reset_handler(void) __attribute__((noreturn));

/* The first instructions at 0x80000000 (link.ld puts .text.start first):
 * interrupts off, gp (without relaxation: it is what relaxation uses) and
 * sp set, then C. */
__asm__(".section .text.start, \"ax\", @progbits\n"
        ".globl _start\n"
        "_start:\n"
        "  csrw mie, zero\n"
        "  csrci mstatus, 8\n"
        "  .option push\n"
        "  .option norelax\n"
        "  la gp, __global_pointer$\n"
        "  .option pop\n"
        "  la sp, _stack_top\n"
        "  j reset_handler\n");

static void trap_entry(void);

void reset_handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    /* Every trap to one handler (direct mode: the address's low bits 0).
     * mie stays 0 until a driver enables its source; then the global
     * enable, as a Cortex-M runs with interrupts on from reset. */
    CSR_WRITE(mtvec, (uintptr_t)trap_entry);
    CSR_SET(mstatus, MSTATUS_MIE);
    board_exit(main() == 0 ? 0u : 1u);
}

static void systick_handler(void);
static void uart0_rx_handler(void);

/* Interrupts go to their handlers; anything else (an exception: a trapped
 * panic is an illegal instruction, `unimp`) ends the run with status 3. */
__attribute__((interrupt("machine"), aligned(4))) static void trap_entry(void) {
    uint32_t cause, epc, tval;
    CSR_READ(mcause, cause);
    if (cause == CAUSE_M_TIMER) {
        systick_handler();
    } else if (cause == CAUSE_M_EXTERNAL) {
        uint32_t irq = PLIC_CLAIM;
        if (irq == UART0_IRQ) {
            uart0_rx_handler();
        } else if (irq != 0u) {
            log_str("fw: unexpected interrupt");
            log_u32("irq", irq);
            log_end();
            board_exit(4u);
        }
        if (irq != 0u) PLIC_CLAIM = irq;
    } else {
        CSR_READ(mepc, epc);
        CSR_READ(mtval, tval);
        log_str("fw: TRAP");
        log_u32("mcause", cause);
        log_u32("mepc", epc);
        log_u32("mtval", tval);
        log_end();
        board_exit(3u);
    }
}

/* ---- clock (CLINT) ------------------------------------------------------- */
volatile uint32_t board_ticks;
volatile uint32_t board_idle_ticks;
static volatile uint32_t sleeping;
static uint64_t next_tick; /* mtime of the next millisecond */

static uint64_t mtime(void) {
    uint32_t hi, lo;
    do {
        hi = CLINT_MTIME_HI;
        lo = CLINT_MTIME_LO;
    } while (hi != CLINT_MTIME_HI);
    return ((uint64_t)hi << 32) | lo;
}

static void set_mtimecmp(uint64_t t) {
    /* No moment at which the comparator holds a value below both. */
    CLINT_MTIMECMP_HI = 0xFFFFFFFFu;
    CLINT_MTIMECMP_LO = (uint32_t)t;
    CLINT_MTIMECMP_HI = (uint32_t)(t >> 32);
}

void board_clock_init(void) {
    next_tick = mtime() + MTIME_PER_MS;
    set_mtimecmp(next_tick);
    CSR_SET(mie, MIE_MTIE);
}

/* One interrupt per millisecond of mtime: a late one is followed at once by
 * the next, so board_ticks keeps mtime's pace (SysTick loses late ticks). */
static void systick_handler(void) {
    uint32_t now = board_ticks + 1u;
    next_tick += MTIME_PER_MS;
    set_mtimecmp(next_tick);
    board_ticks = now;
    if (sleeping) board_idle_ticks++;
    app_tick(now);
}

/* ---- UART0 (16550) ------------------------------------------------------- */
#define RX_RING 256u /* a power of two */
static uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail; /* head: ISR only; tail: main only */
volatile uint32_t uart_rx_overruns, uart_rx_bytes, uart_tx_bytes;

void uart_init(void) {
    /* QEMU ignores the divisor; a real 16550 would set it with LCR.DLAB. */
    UART_LCR = LCR_8N1;
    UART_FCR = FCR_FIFO_ON_CLEARED;
    UART_MCR = MCR_OUT2;
    UART_IER = IER_RX;
    PLIC_PRIORITY(UART0_IRQ) = 1u;
    PLIC_THRESHOLD = 0u;
    PLIC_ENABLE = 1u << UART0_IRQ;
    CSR_SET(mie, MIE_MEIE);
}

static void uart0_rx_handler(void) {
    while (UART_LSR & LSR_DR) {
        uint8_t b = UART_RBR;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING) {
            rx_ring[head % RX_RING] = b;
            rx_head = head + 1u;
            uart_rx_bytes++;
        } else {
            uart_rx_overruns++;
        }
    }
}

size_t uart_read(uint8_t *out, size_t cap) {
    size_t n = 0;
    uint32_t tail = rx_tail;
    uint32_t head = rx_head;
    while (n < cap && tail != head) out[n++] = rx_ring[tail++ % RX_RING];
    rx_tail = tail;
    return n;
}

void uart_write(const uint8_t *bytes, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        while (!(UART_LSR & LSR_THRE)) {
        }
        UART_THR = bytes[i];
    }
    uart_tx_bytes += (uint32_t)len;
}

void board_idle(void) {
    /* With interrupts masked, a byte that arrives between the check and the
     * wfi still ends the wait (wfi wakes on a pending interrupt enabled in
     * mie, whatever mstatus.MIE says); it is taken once MIE is set again. */
    CSR_CLEAR(mstatus, MSTATUS_MIE);
    if (rx_head == rx_tail) {
        sleeping = 1;
        __asm__ volatile("wfi" ::: "memory");
        sleeping = 0;
    }
    CSR_SET(mstatus, MSTATUS_MIE);
}

/* ---- semihosting and exit ------------------------------------------------ */
/* The RISC-V semihosting call: ebreak between two marker instructions, all
 * three uncompressed and in one page (the 16-byte alignment sees to that);
 * a0 = operation, a1 = argument, result in a0. */
uint32_t semihost_call(uint32_t op, const void *arg);
__asm__(".section .text.semihost_call, \"ax\", @progbits\n"
        ".balign 16\n"
        ".globl semihost_call\n"
        "semihost_call:\n"
        "  .option push\n"
        "  .option norvc\n"
        "  slli zero, zero, 0x1f\n"
        "  ebreak\n"
        "  srai zero, zero, 7\n"
        "  .option pop\n"
        "  ret\n");

void board_write_line(const char *line) {
    semihost_call(0x04u, line); /* SYS_WRITE0 */
}

void board_exit(uint32_t code) {
    /* The SiFive test device: QEMU exits with status 0 (pass) or `code`. */
    TEST_FINISHER = code == 0u ? FINISHER_PASS : FINISHER_FAIL | (code << 16);
    for (;;) {
    }
}

/* ---- stack painting ----------------------------------------------------- */
#define PAINT 0xC0DEC0DEu
static uint32_t *painted_top;

void stack_paint(void) {
    uint32_t *p = &_stack_limit;
    uint32_t *sp;
    BOARD_READ_SP(sp);
    painted_top = sp - 16; /* leave this function's own frame alone */
    while (p < painted_top) *p++ = PAINT;
}

uint32_t stack_used(void) {
    uint32_t *p = &_stack_limit;
    while (p < painted_top && *p == PAINT) p++;
    return (uint32_t)((uintptr_t)painted_top - (uintptr_t)p);
}
