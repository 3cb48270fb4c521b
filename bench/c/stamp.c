/* stamp: the main program of the startup benchmark. Its first act is to
   print CLOCK_MONOTONIC in nanoseconds, so "exec of the init -> first
   instruction of the main program" can be measured from outside. */
#include <stdio.h>
#include <time.h>
int main(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	return 0;
}
