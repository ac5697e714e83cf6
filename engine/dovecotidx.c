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
/* an index header with its extensions fits in this */
#define SDBOX_INDEX_HEADER_MAX (1024 * 1024)

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
	/* a UID of a transaction being written is given too */
	log.past_boundaries = true;
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

/* ---- an sdbox folder's mailbox GUID: the "dbox-hdr" extension's
   header (struct sdbox_index_header: rebuild count 32 bits, the GUID's 16
   bytes, flags), in dovecot.index and in the logs' EXT_INTRO (ext_id,
   reset_id, hdr_size 32 bits each, record_size, record_align, flags,
   name_size 16 bits each, then the name) and EXT_HDR_UPDATE ({offset,
   size} 16 bits each, or 32 bits each in EXT_HDR_UPDATE32, then the
   bytes, each entry padded to 4) records after the index's log position;
   an intro names a new extension (ext_id all ones) or one of the list
   the index and earlier intros make, by its place. */
#define DBOX_HDR_NAME "dbox-hdr"
#define DBOX_HDR_SIZE 24
#define DBOX_HDR_GUID_OFFSET 4
#define EXTS_MAX 64
#define EXT_NAME_MAX 64
#define LOG_EXT_INTRO 0x00000040U
#define LOG_EXT_HDR_UPDATE 0x00000100U
#define LOG_EXT_HDR_UPDATE32 0x00010000U
#define EXT_INTRO_SIZE 20

struct sdbox_hdr {
	char names[EXTS_MAX][EXT_NAME_MAX + 1];
	unsigned int count;
	int cur;		/* the last intro's extension, or -1 */
	unsigned char hdr[DBOX_HDR_SIZE];
};

/* the extension of name's place in the list, added if new (a name too
   long to be dbox-hdr holds its place as ""); -1 if the list is full */
static int ext_place(struct sdbox_hdr *h, const unsigned char *name,
		     size_t len)
{
	if (len > EXT_NAME_MAX)
		len = 0;
	for (unsigned int i = 0; len > 0 && i < h->count; i++) {
		if (strlen(h->names[i]) == len &&
		    memcmp(h->names[i], name, len) == 0)
			return (int)i;
	}
	if (h->count >= EXTS_MAX)
		return -1;
	memcpy(h->names[h->count], name, len);
	h->names[h->count][len] = '\0';
	return (int)h->count++;
}

static bool index_ext_cb(const struct dovecotfmt_ext *ext, void *context)
{
	struct sdbox_hdr *h = context;
	int place = ext_place(h, ext->name, ext->name_size);

	if (place >= 0 && dovecotfmt_ext_is(ext, DBOX_HDR_NAME))
		memcpy(h->hdr, ext->data, ext->data_size < DBOX_HDR_SIZE ?
		       ext->data_size : DBOX_HDR_SIZE);
	return true;
}

static bool cur_is_dbox_hdr(const struct sdbox_hdr *h)
{
	return h->cur >= 0 && strcmp(h->names[h->cur], DBOX_HDR_NAME) == 0;
}

/* the {offset, size, bytes} entries of an extension header update
   (wide: 32-bit offset and size) written into h->hdr */
static void ext_hdr_update(struct sdbox_hdr *h, const unsigned char *b,
			   size_t size, bool wide)
{
	size_t fields = wide ? 8 : 4, i = 0;

	while (size - i >= fields) {
		size_t off = wide ? dovecotfmt_u32(b + i) : dovecotfmt_u16(b + i);
		size_t len = wide ? dovecotfmt_u32(b + i + 4) :
			dovecotfmt_u16(b + i + 2);

		if (len > size - i - fields)
			return;
		for (size_t k = 0; k < len && off < DBOX_HDR_SIZE &&
		     k < DBOX_HDR_SIZE - off; k++)
			h->hdr[off + k] = b[i + fields + k];
		i += fields + len;
		i = (i + 3) & ~(size_t)3;
		if (i > size)
			return;
	}
}

static void sdbox_hdr_log(struct sdbox_hdr *h, const unsigned char *data,
			  size_t size, bool have_index, uint32_t seq,
			  uint32_t head)
{
	struct dovecotfmt_log log;
	struct dovecotfmt_rec rec;

	if (data == NULL || dovecotfmt_log_open(&log, data, size) < 0)
		return;
	if (have_index &&
	    (log.file_seq < seq ||
	     (log.file_seq == seq && !dovecotfmt_log_seek(&log, head))))
		return;
	while (dovecotfmt_log_next(&log, &rec) > 0) {
		uint32_t type = rec.type & DOVECOTFMT_TYPE_MASK;

		if (type == LOG_EXT_INTRO && rec.size >= EXT_INTRO_SIZE) {
			uint32_t id = dovecotfmt_u32(rec.body);
			size_t name_size = dovecotfmt_u16(rec.body + 18);

			if (id != UINT32_MAX)
				h->cur = id < h->count ? (int)id : -1;
			else if (name_size <= rec.size - EXT_INTRO_SIZE)
				h->cur = ext_place(h, rec.body + EXT_INTRO_SIZE,
						   name_size);
			else
				h->cur = -1;
		} else if ((type == LOG_EXT_HDR_UPDATE ||
			    type == LOG_EXT_HDR_UPDATE32) &&
			   cur_is_dbox_hdr(h)) {
			ext_hdr_update(h, rec.body, rec.size,
				       type == LOG_EXT_HDR_UPDATE32);
		}
	}
}

int dovecotidx_sdbox_guid_parse(const unsigned char *index, size_t index_size,
				const unsigned char *log2, size_t log2_size,
				const unsigned char *log, size_t log_size,
				char guid_r[33])
{
	static const char hex[] = "0123456789abcdef";
	struct dovecotfmt_index idx;
	struct dovecotfmt_log l1, l2;
	struct sdbox_hdr *h = calloc(1, sizeof(*h));
	bool have_index, zero = true;

	if (h == NULL)
		return -1;
	h->cur = -1;
	have_index = dovecotfmt_index_open(&idx, index, index_size);
	if (have_index)
		dovecotfmt_index_exts(&idx, index_ext_cb, h);
	/* .log.2 is the older one; a stale one (not older) is not read */
	if (log2 != NULL && dovecotfmt_log_open(&l2, log2, log2_size) == 0 &&
	    (log == NULL || dovecotfmt_log_open(&l1, log, log_size) < 0 ||
	     l2.file_seq < l1.file_seq))
		sdbox_hdr_log(h, log2, log2_size, have_index,
			      idx.log_file_seq, idx.log_head_offset);
	h->cur = -1;
	sdbox_hdr_log(h, log, log_size, have_index, idx.log_file_seq,
		      idx.log_head_offset);
	for (unsigned int i = 0; i < 16; i++) {
		unsigned char c = h->hdr[DBOX_HDR_GUID_OFFSET + i];

		zero = zero && c == 0;
		guid_r[2 * i] = hex[c >> 4];
		guid_r[2 * i + 1] = hex[c & 15];
	}
	guid_r[MAILBOX_GUID_LEN] = '\0';
	free(h);
	return zero ? 0 : 1;
}

int dovecotidx_sdbox_guid(int dbox_fd, char guid_r[33])
{
	static const char *const names[] = {
		"dovecot.index", "dovecot.index.log.2", "dovecot.index.log"
	};
	unsigned char *data[3] = { NULL, NULL, NULL };
	size_t size[3] = { 0, 0, 0 };
	int ret = 0;

	for (unsigned int i = 0; i < 3 && ret == 0; i++) {
		/* dovecot.index: its header is enough */
		if (dovecotfmt_read_file(dbox_fd, names[i], i == 0 ?
					 SDBOX_INDEX_HEADER_MAX :
					 DOVECOTFMT_LOG_MAX_BYTES,
					 &data[i], &size[i]) < 0)
			ret = -1;
	}
	if (ret == 0)
		ret = dovecotidx_sdbox_guid_parse(data[0], size[0], data[1],
						  size[1], data[2], size[2],
						  guid_r);
	int saved = errno;

	for (unsigned int i = 0; i < 3; i++)
		free(data[i]);
	errno = saved;
	return ret;
}
