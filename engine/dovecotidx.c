/* dovecotidx.c: see dovecotidx.h.  The formats' facts are dovecotfmt.h's;
 * what is read of them here:
 *   dovecot.index header: next_uid;
 *   dovecot.index.log records:
 *     APPEND: index records of 8 bytes, the UID first;
 *     HEADER_UPDATE: {offset 16 bits, size 16 bits, bytes} entries, each
 *       padded to 4 bytes, writing the index header;
 *     UID_UPDATE: {old uid, new uid} pairs.
 *   dovecot-uidlist (maildir): a first line of space-separated fields,
 *   "3" (the version) then V<uidvalidity>, N<next uid>, G<mailbox guid>
 *   and others. */
#include "dovecotidx.h"
#include "dovecotfmt.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UIDLIST_HEADER_MAX 1024
#define MAILBOX_GUID_LEN 32

static void raise_to(uint32_t *next_uid, uint32_t uid)
{
	/* uid + 1, without wrapping past the highest UID */
	uint32_t next = uid == UINT32_MAX ? UINT32_MAX : uid + 1;

	if (next > *next_uid)
		*next_uid = next;
}

static void header_updates(const unsigned char *p, size_t size,
			   uint32_t *next_uid)
{
	size_t i = 0;

	while (i + 4 <= size) {
		size_t off = dovecotfmt_u16(p + i), len = dovecotfmt_u16(p + i + 2);
		const unsigned char *data = p + i + 4;

		if (len > size - i - 4)
			return;
		if (off <= DOVECOTFMT_INDEX_NEXT_UID &&
		    off + len >= DOVECOTFMT_INDEX_NEXT_UID + 4) {
			uint32_t v = dovecotfmt_u32(data + DOVECOTFMT_INDEX_NEXT_UID - off);

			/* next_uid itself, not a UID */
			if (v > *next_uid)
				*next_uid = v;
		}
		i += 4 + len;
		i = (i + 3) & ~(size_t)3;
	}
}

void dovecotidx_log_next_uid(const unsigned char *data, size_t size,
			     uint32_t *next_uid)
{
	struct dovecotfmt_log log;
	struct dovecotfmt_rec rec;

	if (dovecotfmt_log_open(&log, data, size) < 0)
		return;
	while (dovecotfmt_log_next(&log, &rec) > 0) {
		uint32_t type = rec.type & DOVECOTFMT_TYPE_MASK;

		if (type == DOVECOTFMT_APPEND) {
			for (size_t i = 0; i + DOVECOTFMT_APPEND_RECORD_SIZE <=
			     rec.size; i += DOVECOTFMT_APPEND_RECORD_SIZE)
				raise_to(next_uid, dovecotfmt_u32(rec.body + i));
		} else if (type == DOVECOTFMT_UID_UPDATE) {
			for (size_t i = 0; i + 8 <= rec.size; i += 8)
				raise_to(next_uid,
					 dovecotfmt_u32(rec.body + i + 4));
		} else if (type == DOVECOTFMT_HEADER_UPDATE) {
			header_updates(rec.body, rec.size, next_uid);
		}
	}
}

/* the index header's next_uid: 1 and *next_uid raised, 0 if no index */
static int index_next_uid(int dir_fd, uint32_t *next_uid)
{
	const size_t hdr_size = DOVECOTFMT_INDEX_NEXT_UID + 4;
	unsigned char *hdr;
	size_t size;
	int ret = dovecotfmt_read_file(dir_fd, "dovecot.index", hdr_size,
				       &hdr, &size);

	if (ret <= 0)
		return ret;
	if (size == hdr_size && hdr[0] == DOVECOTFMT_INDEX_MAJOR_VERSION &&
	    dovecotfmt_host_order(hdr[DOVECOTFMT_INDEX_COMPAT_FLAGS]) &&
	    dovecotfmt_u32(hdr + DOVECOTFMT_INDEX_NEXT_UID) > *next_uid)
		*next_uid = dovecotfmt_u32(hdr + DOVECOTFMT_INDEX_NEXT_UID);
	free(hdr);
	return 1;
}

static int log_next_uid(int dir_fd, const char *name, uint32_t *next_uid)
{
	unsigned char *data;
	size_t size;
	int ret = dovecotfmt_read_file(dir_fd, name, DOVECOTFMT_LOG_MAX_BYTES, &data, &size);

	if (ret <= 0)
		return ret;
	dovecotidx_log_next_uid(data, size, next_uid);
	free(data);
	return 1;
}

int dovecotidx_next_uid(int dir_fd, uint32_t *next_uid_r)
{
	uint32_t next = 0;

	if (index_next_uid(dir_fd, &next) < 0 ||
	    log_next_uid(dir_fd, "dovecot.index.log.2", &next) < 0 ||
	    log_next_uid(dir_fd, "dovecot.index.log", &next) < 0)
		return -1;
	*next_uid_r = next;
	return 0;
}

int dovecotidx_uidlist_guid(const unsigned char *data, size_t size,
			    char guid_r[33])
{
	const char *p = (const char *)data, *end;

	if (size > UIDLIST_HEADER_MAX)
		size = UIDLIST_HEADER_MAX;
	end = memchr(p, '\n', size);
	if (end == NULL)
		end = p + size;	/* a first line cut at the bound */
	/* version 3 only: the older formats have no GUID */
	if (end - p < 2 || p[0] != '3' || p[1] != ' ')
		return 0;
	for (p += 2; p < end; ) {
		size_t n = 0;

		while (p + n < end && p[n] != ' ')
			n++;
		if (p[0] == 'G') {
			size_t i;

			if (n != 1 + MAILBOX_GUID_LEN)
				return 0;
			for (i = 1; i < n; i++) {
				if (!isdigit((unsigned char)p[i]) &&
				    (p[i] < 'a' || p[i] > 'f'))
					return 0;
			}
			memcpy(guid_r, p + 1, MAILBOX_GUID_LEN);
			guid_r[MAILBOX_GUID_LEN] = '\0';
			return 1;
		}
		p += n;
		while (p < end && *p == ' ')
			p++;
	}
	return 0;
}

int dovecotidx_maildir_guid(int dir_fd, char guid_r[33])
{
	unsigned char *data;
	size_t len;
	int ret = dovecotfmt_read_file(dir_fd, "dovecot-uidlist", UIDLIST_HEADER_MAX,
			    &data, &len);

	if (ret <= 0)
		return ret;
	ret = dovecotidx_uidlist_guid(data, len, guid_r);
	free(data);
	return ret;
}
