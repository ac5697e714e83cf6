/* fuzz_dovecot_log: an sdbox folder's dovecot.index.log as the engine
 * reads it before putting a mail back (dovecotidx_log_next_uid(): the
 * file may be damaged, or come from a bundle of the store): no read out
 * of bounds, and the next UID only ever goes up. */
#include "dovecotidx.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a start of the input's last byte (the log's first one is its
	   version) */
	uint32_t start = size > 0 ? data[size - 1] : 0, next = start;

	dovecotidx_log_next_uid(data, size, &next);
	if (next < start) {
		fprintf(stderr, "the next UID went down: %u -> %u\n", start,
			next);
		abort();
	}
	return 0;
}
