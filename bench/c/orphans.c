/* orphans N: makes N zombies and hands them to the init. A child forks N
   grandchildren that exit at once, waits (without reaping) until all have
   exited, prints CLOCK_MONOTONIC and its own pid, and exits: its N zombies
   are reparented to PID 1, which must reap them. The main process itself
   stays, sleeping. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	pid_t c = fork();
	if (c == 0) {
		pid_t *kids = malloc(sizeof(pid_t) * n);
		for (int i = 0; i < n; i++) {
			kids[i] = fork();
			if (kids[i] == 0) _exit(0);
		}
		for (int i = 0; i < n; i++) {
			siginfo_t si;
			waitid(P_PID, kids[i], &si, WEXITED | WNOWAIT);
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		printf("%lld %d\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
		fflush(stdout);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	for (;;) pause();
}
