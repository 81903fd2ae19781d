/*
 * board.c - startup, vector table and the drivers of board.h for QEMU's
 * mps2-an386. Each driver is a few register writes; nothing here knows the
 * agent.
 */
#include "board.h"

/* ---- registers --------------------------------------------------------- */
#define REG(addr) (*(volatile uint32_t *)(addr))

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER0 REG(0xE000E100u)
#define SCB_CPACR REG(0xE000ED88u)
#define SCB_SHCSR REG(0xE000ED24u)

#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00u)
#define UART_STATE REG(UART0 + 0x04u)
#define UART_CTRL REG(UART0 + 0x08u)
#define UART_INTCLEAR REG(UART0 + 0x0Cu)
#define UART_BAUDDIV REG(UART0 + 0x10u)
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TXEN 1u
#define UART_CTRL_RXEN 2u
#define UART_CTRL_RXIRQ 8u
#define UART_INT_RX 2u
#define UART0_RX_IRQ 0u

#define SYSCLK_HZ 25000000u /* mps2-an386's system clock, SysTick's source */

/* ---- startup ------------------------------------------------------------ */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top, _stack_limit;
int main(void);

void reset_handler(void) __attribute__((noreturn));
void reset_handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    SCB_CPACR |= 0xFu << 20;             /* FPU on (the hard-float ABI) */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18); /* own fault handlers */
    __asm__ volatile("dsb\n isb" ::: "memory");
    board_exit(main() == 0 ? 0u : 1u);
}

/* Any fault (a trapped panic is a UsageFault) ends the run with status 3. */
static void fault_handler(void) __attribute__((noreturn));
static void fault_handler(void) {
    log_str("fw: HARDFAULT");
    log_end();
    board_exit(3u);
}

static void unexpected_irq(void) __attribute__((noreturn));
static void unexpected_irq(void) {
    log_str("fw: unexpected interrupt");
    log_end();
    board_exit(4u);
}

static void systick_handler(void);
static void uart0_rx_handler(void);

typedef void (*vector)(void);
/* The initial stack pointer precedes this table (link.ld). */
__attribute__((section(".vectors"), used)) static const vector vectors[15 + 32] = {
    reset_handler,
    fault_handler,   /* NMI */
    fault_handler,   /* HardFault */
    fault_handler,   /* MemManage */
    fault_handler,   /* BusFault */
    fault_handler,   /* UsageFault (udf: a trapped panic) */
    0, 0, 0, 0,
    unexpected_irq,  /* SVCall */
    unexpected_irq,  /* DebugMonitor */
    0,
    unexpected_irq,  /* PendSV */
    systick_handler,
    uart0_rx_handler, /* IRQ 0: UART0 RX */
    unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq,
    unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq,
    unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq,
    unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq,
    unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq, unexpected_irq,
    unexpected_irq,
};

/* ---- clock -------------------------------------------------------------- */
volatile uint32_t board_ticks;
volatile uint32_t board_idle_ticks;
static volatile uint32_t sleeping;

void board_clock_init(void) {
    SYST_RVR = SYSCLK_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */
}

static void systick_handler(void) {
    uint32_t now = board_ticks + 1u;
    board_ticks = now;
    if (sleeping) board_idle_ticks++;
    app_tick(now);
}

/* ---- UART0 -------------------------------------------------------------- */
#define RX_RING 256u /* a power of two */
static uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail; /* head: ISR only; tail: main only */
volatile uint32_t uart_rx_overruns, uart_rx_bytes, uart_tx_bytes;

void uart_init(void) {
    UART_BAUDDIV = 16u; /* the smallest divider QEMU accepts */
    UART_CTRL = UART_CTRL_TXEN | UART_CTRL_RXEN | UART_CTRL_RXIRQ;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
}

static void uart0_rx_handler(void) {
    UART_INTCLEAR = UART_INT_RX;
    while (UART_STATE & UART_STATE_RXFULL) {
        uint8_t b = (uint8_t)UART_DATA;
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
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = bytes[i];
    }
    uart_tx_bytes += (uint32_t)len;
}

void board_idle(void) {
    /* With interrupts masked, a byte that arrives between the check and the
     * wfi still ends the wait (a pending interrupt wakes wfi). */
    __asm__ volatile("cpsid i" ::: "memory");
    if (rx_head == rx_tail) {
        sleeping = 1;
        __asm__ volatile("wfi" ::: "memory");
        sleeping = 0;
    }
    __asm__ volatile("cpsie i" ::: "memory");
}

/* ---- semihosting -------------------------------------------------------- */
static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt #0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_write_line(const char *line) {
    semihost(0x04u, line); /* SYS_WRITE0 */
}

void board_exit(uint32_t code) {
    /* SYS_EXIT_EXTENDED: QEMU exits with `code` as its status. */
    static uint32_t block[2];
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = code;
    semihost(0x20u, block);
    for (;;) {
    }
}

/* ---- stack painting ----------------------------------------------------- */
#define PAINT 0xC0DEC0DEu
static uint32_t *painted_top;

void stack_paint(void) {
    uint32_t *p = &_stack_limit;
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    painted_top = sp - 16; /* leave this function's own frame alone */
    while (p < painted_top) *p++ = PAINT;
}

uint32_t stack_used(void) {
    uint32_t *p = &_stack_limit;
    while (p < painted_top && *p == PAINT) p++;
    return (uint32_t)((uintptr_t)painted_top - (uintptr_t)p);
}
