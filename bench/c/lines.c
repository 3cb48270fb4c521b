/* lines: writes N lines of exactly 100 bytes (99 characters and a newline)
   to stdout as fast as stdio allows, each starting with its sequence
   number, then sleeps (so the init stays up to be measured) unless told
   not to. Usage: lines N [exit] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	static char buf[1 << 16];
	setvbuf(stdout, buf, _IOFBF, sizeof buf);
	char line[101];
	memset(line, 'x', 99);
	line[99] = '\n';
	line[100] = 0;
	for (long i = 0; i < n; i++) {
		int k = snprintf(line, 12, "%010ld ", i);
		line[k] = ' ';
		fwrite(line, 1, 100, stdout);
	}
	fflush(stdout);
	if (argc > 2) return 0;
	for (;;) pause();
}
