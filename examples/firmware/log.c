/* The firmware's log lines, the same on every board: a line is built here
 * and written whole by the board (semihosting's SYS_WRITE0 on both QEMU
 * boards). No libc: no printf, digits by hand. */
#include "board.h"

static char line[256];
static uint32_t line_len;

void log_str(const char *s) {
    while (*s && line_len < sizeof line - 2u) line[line_len++] = *s++;
}

void log_u32(const char *label, uint32_t v) {
    char digits[10];
    int n = 0;
    log_str(" ");
    log_str(label);
    log_str("=");
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v && n < 10);
    while (n > 0 && line_len < sizeof line - 2u) line[line_len++] = digits[--n];
}

void log_end(void) {
    line[line_len++] = '\n';
    line[line_len] = 0;
    board_write_line(line);
    line_len = 0;
}
