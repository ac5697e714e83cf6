/* fuzz_sdbox_flags: an sdbox folder's index files as a split-brain merge
 * reads them (sdboxflags_parse(): dovecot.index, dovecot.index.log.2 and
 * dovecot.index.log, maybe damaged or from the other writer's bundle)
 * and the records it builds from them (sdboxmerge_records()).  Input: the
 * index's and the .log.2's lengths (16 bits each, little endian), the
 * index, the .log.2, then the log.  No read out of bounds; the mails come
 * sorted by UID with only mail flags; merging the state with itself adds
 * nothing, and the records giving those flags to a log of the same mails
 * without flags read back as the state.  The folder's mailbox GUID from the same files
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

/* a log of f's mails appended without flags, then the records that give
   them other's (f's) flags: read back, it says f's flags and keywords */
static void round_trip(const struct sdboxflags *f,
		       const struct sdboxmerge_pair *pairs)
{
	size_t hdr = DOVECOTFMT_LOG_HEADER_SIZE, body = f->count * 8, n;
	unsigned char *log = calloc(1, hdr + 8 + body);
	struct sdboxflags empty, back;
	struct sdboxmerge_result r;

	if (log == NULL)
		abort();
	log[0] = 1;
	log[1] = 3;
	log[2] = (unsigned char)hdr;
	log[DOVECOTFMT_LOG_FILE_SEQ] = 1;
	log[DOVECOTFMT_LOG_COMPAT_FLAGS] = dovecotfmt_compat_flags();
	n = hdr;
	if (f->count > 0) {
		dovecotfmt_rec_header(log + n, DOVECOTFMT_APPEND, body);
		n += DOVECOTFMT_RECORD_HEADER_SIZE;
		for (size_t i = 0; i < f->count; i++, n += 8)
			memcpy(log + n, &f->mails[i].uid, 4);
	}
	sdboxflags_parse(&empty, NULL, 0, NULL, 0, log, n);
	sdboxmerge_records(&empty, f, pairs, f->count, &r);
	log = realloc(log, n + r.size);
	if (log == NULL)
		abort();
	if (r.size > 0)
		memcpy(log + n, r.records, r.size);
	sdboxflags_parse(&back, NULL, 0, NULL, 0, log, n + r.size);
	if (back.count != f->count)
		abort();
	for (size_t i = 0; i < f->count; i++) {
		const struct sdboxflags_mail *a = &f->mails[i];
		const struct sdboxflags_mail *b = &back.mails[i];

		if (a->uid != b->uid || a->flags != b->flags) {
			fprintf(stderr, "uid %u: flags %#x read back as %#x\n",
				a->uid, a->flags, b->flags);
			abort();
		}
		for (unsigned int k = 0; k < f->keyword_count; k++) {
			int kb = sdboxflags_keyword_index(&back, f->keywords[k]);

			if (sdboxflags_has_keyword(a, k) !=
			    (kb >= 0 && sdboxflags_has_keyword(
				     b, (unsigned int)kb))) {
				fprintf(stderr, "uid %u: keyword %s lost\n",
					a->uid, f->keywords[k]);
				abort();
			}
		}
	}
	sdboxmerge_result_free(&r);
	sdboxflags_free(&empty);
	sdboxflags_free(&back);
	free(log);
}

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
	if (!f.incomplete)
		round_trip(&f, pairs);
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
