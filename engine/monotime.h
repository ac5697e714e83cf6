/* monotime.h: the monotonic clock in the units the engine counts in
 * (timeouts, rate limits, durations in the stats); one definition
 * instead of a copy per file. */
#ifndef OBOXFS_MONOTIME_H
#define OBOXFS_MONOTIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t monotime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t monotime_ms(void)
{
	return monotime_us() / 1000;
}

static inline int64_t monotime_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

#endif
