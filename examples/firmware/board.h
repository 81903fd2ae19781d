/*
 * board.h - the few drivers the example firmware needs on QEMU's mps2-an386
 * (Cortex-M4): SysTick as a millisecond clock, CMSDK UART0 with interrupt
 * receive into a small ring, Arm semihosting for the log and the exit code,
 * and stack painting. No libc, no heap.
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

/* ---- semihosting (QEMU -semihosting) ------------------------------------ */
void log_str(const char *s);
void log_u32(const char *label, uint32_t v); /* " label=v" */
void log_end(void);                          /* newline, flush the line */
/* Ends QEMU with exit status `code` (0 success). */
void board_exit(uint32_t code) __attribute__((noreturn));

/* ---- stack painting ---------------------------------------------------- */
/* Fills the free stack below the caller's frame with a pattern. */
void stack_paint(void);
/* Bytes of stack ever used below the point stack_paint() was called from. */
uint32_t stack_used(void);

#endif
