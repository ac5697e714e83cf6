/* cachedir-size.c: cache_size parsing ("1G"), the statistics as Prometheus
 * text and the per-thread error message. */
#include "cachedir-private.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static __thread char error_buf[512];

void cachedir_set_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(error_buf, sizeof(error_buf), fmt, args);
	va_end(args);
}

const char *cachedir_error(void)
{
	return error_buf[0] == '\0' ? "no error" : error_buf;
}

int cachedir_parse_size(const char *str, uint64_t *bytes_r,
			const char **error_r)
{
	static const char units[] = "KMGTP";
	uint64_t value = 0, mult = 1;
	const char *p = str, *u;

	if (str == NULL || !isdigit((unsigned char)*p)) {
		*error_r = "size must start with a digit";
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned int digit = (unsigned int)(*p - '0');

		if (value > (UINT64_MAX - digit) / 10) {
			*error_r = "size is too large";
			return -1;
		}
		value = value * 10 + digit;
	}
	if (*p != '\0') {
		u = strchr(units, toupper((unsigned char)*p));
		if (u == NULL) {
			*error_r = "unknown size unit (use K, M, G, T or P)";
			return -1;
		}
		for (const char *q = units; q <= u; q++)
			mult *= 1024;
		p++;
		if (strcasecmp(p, "iB") == 0)
			p += 2;
		else if (strcasecmp(p, "B") == 0)
			p++;
		if (*p != '\0') {
			*error_r = "trailing garbage after the size unit";
			return -1;
		}
	}
	if (value > UINT64_MAX / mult) {
		*error_r = "size is too large";
		return -1;
	}
	*bytes_r = value * mult;
	return 0;
}

size_t cachedir_stats_format(const struct cachedir_stats *stats,
			     char *buf, size_t size)
{
	const struct {
		const char *name;
		uint64_t value;
	} lines[] = {
		{ "entries", stats->entries },
		{ "bytes", stats->bytes },
		{ "cap_bytes", stats->cap },
		{ "reserved_bytes", stats->reserved },
		{ "hits_total", stats->hits },
		{ "misses_total", stats->misses },
		{ "evictions_total", stats->evictions },
		{ "fetch_errors_total", stats->fetch_errors },
		{ "memory_bytes", stats->memory },
	};
	size_t len = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int ret = snprintf(buf + len, size - len,
				   "oboxfs_mailcache_%s %" PRIu64 "\n",
				   lines[i].name, lines[i].value);

		if (ret < 0 || (size_t)ret >= size - len) {
			buf[len] = '\0';
			break;
		}
		len += (size_t)ret;
	}
	return len;
}
