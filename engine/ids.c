/* ids.c: random and time-ordered 128-bit ids, the ids' clock (its one
 * piece of process-wide state: an atomic) and the user-name hash (keys.c
 * builds the store keys from them). */
#include "ids.h"

#include <errno.h>
#include <stdatomic.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

static const char hexdigits[] = "0123456789abcdef";

int ids_generate(char hex_r[IDS_HEX_LEN + 1])
{
	unsigned char raw[IDS_HEX_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t ret = getrandom(raw + got, sizeof(raw) - got, 0);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)ret;
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		hex_r[i * 2] = hexdigits[raw[i] >> 4];
		hex_r[i * 2 + 1] = hexdigits[raw[i] & 0xf];
	}
	hex_r[IDS_HEX_LEN] = '\0';
	return 0;
}

void ids_time_prefix(uint32_t secs, uint32_t usecs,
		     char hex_r[IDS_TIME_HEX_LEN + 1])
{
	snprintf(hex_r, IDS_TIME_HEX_LEN + 1, "%08x%05x", secs, usecs);
}

/* the last value ids_clock_us() gave, or what it was raised to */
static _Atomic uint64_t ids_clock_last;

uint64_t ids_us(uint32_t secs, uint32_t usecs)
{
	return (uint64_t)secs * 1000000 + usecs;
}

uint64_t ids_clock_us(void)
{
	struct timeval tv;
	uint64_t last = atomic_load(&ids_clock_last), now;

	gettimeofday(&tv, NULL);
	now = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	for (;;) {
		uint64_t next = now > last ? now : last + 1;

		if (atomic_compare_exchange_weak(&ids_clock_last, &last, next))
			return next;
	}
}

void ids_clock_raise(uint64_t us)
{
	uint64_t last = atomic_load(&ids_clock_last);

	while (us > last &&
	       !atomic_compare_exchange_weak(&ids_clock_last, &last, us))
		;
}

int ids_generate_timed(char hex_r[IDS_HEX_LEN + 1])
{
	char prefix[IDS_TIME_HEX_LEN + 1];
	uint64_t us;

	if (ids_generate(hex_r) < 0)
		return -1;
	us = ids_clock_us();
	/* the random tail stays: digits 13..31 */
	ids_time_prefix((uint32_t)(us / 1000000), (uint32_t)(us % 1000000),
			prefix);
	memcpy(hex_r, prefix, IDS_TIME_HEX_LEN);
	return 0;
}

bool ids_is_hex_id(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= IDS_HEX_LEN)
			return false;
		bool digit = s[i] >= '0' && s[i] <= '9';
		bool lower = s[i] >= 'a' && s[i] <= 'f';

		if (!digit && !lower)
			return false;
	}
	return i == IDS_HEX_LEN;
}

void ids_user_hash(const char *user, char h1_r[3], char h2_r[4])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[6];

	SHA256((const unsigned char *)user, strlen(user), md);
	for (unsigned int i = 0; i < 3; i++) {
		hex[i * 2] = hexdigits[md[i] >> 4];
		if (i * 2 + 1 < 5)
			hex[i * 2 + 1] = hexdigits[md[i] & 0xf];
	}
	memcpy(h1_r, hex, 2);
	h1_r[2] = '\0';
	memcpy(h2_r, hex + 2, 3);
	h2_r[3] = '\0';
}

bool ids_timed_us(const char *hex, uint64_t *us_r)
{
	uint32_t secs = 0, usecs = 0;

	for (unsigned int i = 0; i < IDS_TIME_HEX_LEN; i++) {
		char c = hex[i];
		uint32_t v;

		if (c >= '0' && c <= '9')
			v = (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (uint32_t)(c - 'a' + 10);
		else
			return false;
		if (i < 8)
			secs = secs * 16 + v;
		else
			usecs = usecs * 16 + v;
	}
	if (usecs >= 1000000)
		return false;
	*us_r = ids_us(secs, usecs);
	return true;
}
