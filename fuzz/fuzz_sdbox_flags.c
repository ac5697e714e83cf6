/* fuzz_sdbox_flags: an sdbox folder's index files as a split-brain merge
 * reads them (sdboxflags_parse(): dovecot.index, dovecot.index.log.2 and
 * dovecot.index.log, maybe damaged or from the other writer's bundle)
 * and the records it builds from them (sdboxmerge_records()).  Input: the
 * index's and the .log.2's lengths (16 bits each, little endian), the
 * index, the .log.2, then the log.  No read out of bounds; the mails come
 * sorted by UID with only mail flags; merging the state with itself adds
 * nothing.  The folder's mailbox GUID from the same files
 * (dovecotidx_sdbox_guid_parse()): 32 hex digits when there is one. */
#include "dovecotfmt.h"
#include "dovecotidx.h"
#include "sdboxflags.h"
#include "sdboxmerge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sdboxmerge_pair *pairs;
	struct sdboxmerge_result r;
	struct sdboxflags f;
	size_t ilen, l2len;
	char guid[33];
	int ret;

	if (size < 4)
		return 0;
	ilen = data[0] | ((size_t)data[1] << 8);
	l2len = data[2] | ((size_t)data[3] << 8);
	data += 4;
	size -= 4;
	if (ilen > size)
		ilen = size;
	if (l2len > size - ilen)
		l2len = size - ilen;
	sdboxflags_parse(&f, ilen > 0 ? data : NULL, ilen,
			 l2len > 0 ? data + ilen : NULL, l2len,
			 data + ilen + l2len, size - ilen - l2len);
	for (size_t i = 0; i < f.count; i++) {
		if ((f.mails[i].flags & ~DOVECOTFMT_MAIL_FLAGS) != 0 ||
		    f.mails[i].uid == 0 ||
		    (i > 0 && f.mails[i - 1].uid >= f.mails[i].uid)) {
			fprintf(stderr, "mail %zu: uid %u flags %#x\n", i,
				f.mails[i].uid, f.mails[i].flags);
			abort();
		}
	}
	pairs = calloc(f.count + 1, sizeof(*pairs));
	if (pairs == NULL)
		abort();
	for (size_t i = 0; i < f.count; i++)
		pairs[i].local_uid = pairs[i].other_uid = f.mails[i].uid;
	sdboxmerge_records(&f, &f, pairs, f.count, &r);
	if (r.mails != 0 || r.records != NULL) {
		fprintf(stderr, "merging a state with itself added %u mails\n",
			r.mails);
		abort();
	}
	free(pairs);
	sdboxflags_free(&f);

	ret = dovecotidx_sdbox_guid_parse(ilen > 0 ? data : NULL, ilen,
					  l2len > 0 ? data + ilen : NULL, l2len,
					  data + ilen + l2len,
					  size - ilen - l2len, guid);
	if (ret < 0 || (ret > 0 && (strlen(guid) != 32 ||
				    strspn(guid, "0123456789abcdef") != 32))) {
		fprintf(stderr, "sdbox GUID: %d %s\n", ret, guid);
		abort();
	}
	return 0;
}
