/*
 * board.h - the few drivers the example firmware needs: a millisecond clock
 * with its interrupt, UART0 with interrupt receive into a small ring,
 * semihosting for the log, an exit code for QEMU, and stack painting. No
 * libc, no heap. Two boards implement it: board.c for QEMU's mps2-an386
 * (Cortex-M4: SysTick, the CMSDK UART, semihosting exit) and riscv/board.c
 * for QEMU's RISC-V virt (riscv32imac: the CLINT timer, the 16550 UART
 * through the PLIC, the SiFive test device's exit). main.c is the same.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

/* ---- clock (SysTick, 1 ms) ---------------------------------------------- */
/* Milliseconds since boot; wraps after 49 days (the agent's _tick calls
 * extend it). Written by the SysTick handler only. */
extern volatile uint32_t board_ticks;
/* Ticks the SysTick interrupt found the CPU sleeping in board_idle(). */
extern volatile uint32_t board_idle_ticks;
/* Starts SysTick at 1 kHz; calls app_tick() from its interrupt. */
void board_clock_init(void);
/* Called from the SysTick interrupt once per millisecond (the app's). */
void app_tick(uint32_t now);

/* ---- UART0 (CMSDK APB UART) --------------------------------------------- */
/* Enables TX, RX and the RX interrupt. */
void uart_init(void);
/* Writes `len` bytes, waiting for room (TX is polled). */
void uart_write(const uint8_t *bytes, size_t len);
/* Moves up to `cap` received bytes out of the RX ring; returns how many. */
size_t uart_read(uint8_t *out, size_t cap);
/* Bytes the RX interrupt found no room for in its ring (never expected). */
extern volatile uint32_t uart_rx_overruns;
extern volatile uint32_t uart_rx_bytes, uart_tx_bytes;

/* Sleeps until the next interrupt unless received bytes are waiting. */
void board_idle(void);

/* ---- the log (log.c builds lines; the board writes them) ---------------- */
void log_str(const char *s);
void log_u32(const char *label, uint32_t v); /* " label=v" */
void log_end(void);                          /* newline, flush the line */
/* Writes one NUL-terminated line (semihosting on the QEMU boards). */
void board_write_line(const char *line);
/* Ends QEMU with exit status `code` (0 success). */
void board_exit(uint32_t code) __attribute__((noreturn));

/* ---- the two instructions main.c needs inline -------------------------- */
/* Reads the stack pointer into `p` (no call: main.c paints below it), and
 * executes what a trapped panic does (the fault path's test). */
#if defined(__riscv)
#define BOARD_READ_SP(p) __asm__ volatile("mv %0, sp" : "=r"(p))
#define BOARD_TRAP() __asm__ volatile("unimp")
#else
#define BOARD_READ_SP(p) __asm__ volatile("mov %0, sp" : "=r"(p))
#define BOARD_TRAP() __asm__ volatile("udf #0")
#endif

/* ---- stack painting ---------------------------------------------------- */
/* Fills the free stack below the caller's frame with a pattern. */
void stack_paint(void);
/* Bytes of stack ever used below the point stack_paint() was called from. */
uint32_t stack_used(void);

#endif
