/* dovecotfmt.c: see dovecotfmt.h.  dovecot.index's extension list runs
 * from the base header's end (8-byte aligned) to header_size: each
 * {hdr_size 32, reset_id 32, record_offset 16, record_size 16,
 * record_align 16, name_size 16}, the name, then (at the next 8-byte
 * boundary from the extension's start) hdr_size bytes of data, the next
 * one at the 8-byte boundary after them. */
#include "dovecotfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPAT_LITTLE_ENDIAN 0x01

unsigned char dovecotfmt_compat_flags(void)
{
	const union { uint16_t u; unsigned char c[2]; } one = { .u = 1 };

	return one.c[0] == 1 ? COMPAT_LITTLE_ENDIAN : 0;
}

bool dovecotfmt_host_order(unsigned char compat_flags)
{
	return (compat_flags & COMPAT_LITTLE_ENDIAN) ==
		dovecotfmt_compat_flags();
}

uint32_t dovecotfmt_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint16_t dovecotfmt_u16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int dovecotfmt_read_file(int dir_fd, const char *name, size_t max,
			 unsigned char **data_r, size_t *size_r)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			O_CLOEXEC);
	unsigned char *data = NULL;
	size_t size = 0, want;
	struct stat st;
	int saved;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	want = (uint64_t)st.st_size < max ? (size_t)st.st_size : max;
	if ((data = malloc(want + 1)) == NULL)
		goto fail;
	while (size < want) {
		ssize_t n = pread(fd, data + size, want - size, (off_t)size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;	/* shorter than it was */
		size += (size_t)n;
	}
	close(fd);
	data[size] = '\0';
	*data_r = data;
	*size_r = size;
	return 1;
fail:
	saved = errno;
	free(data);
	close(fd);
	errno = saved;
	return -1;
}

#define EXT_HEADER_SIZE 16
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

bool dovecotfmt_index_open(struct dovecotfmt_index *index_r,
			   const unsigned char *d, size_t size)
{
	memset(index_r, 0, sizeof(*index_r));
	if (d == NULL || size < DOVECOTFMT_INDEX_HEADER_MIN ||
	    d[0] != DOVECOTFMT_INDEX_MAJOR_VERSION ||
	    !dovecotfmt_host_order(d[DOVECOTFMT_INDEX_COMPAT_FLAGS]))
		return false;
	index_r->data = d;
	index_r->size = size;
	index_r->base_header_size =
		dovecotfmt_u16(d + DOVECOTFMT_INDEX_BASE_HEADER_SIZE);
	index_r->header_size = dovecotfmt_u32(d + DOVECOTFMT_INDEX_HEADER_SIZE);
	index_r->record_size = dovecotfmt_u32(d + DOVECOTFMT_INDEX_RECORD_SIZE);
	index_r->messages = dovecotfmt_u32(d + DOVECOTFMT_INDEX_MESSAGES_COUNT);
	index_r->log_file_seq = dovecotfmt_u32(d + DOVECOTFMT_INDEX_LOG_FILE_SEQ);
	index_r->log_head_offset =
		dovecotfmt_u32(d + DOVECOTFMT_INDEX_LOG_HEAD_OFFSET);
	return index_r->base_header_size >= DOVECOTFMT_INDEX_HEADER_MIN &&
		index_r->header_size >= index_r->base_header_size &&
		index_r->header_size <= size && index_r->record_size >= 5 &&
		index_r->record_size <= 65536;
}

void dovecotfmt_index_exts(const struct dovecotfmt_index *index,
			   bool (*fn)(const struct dovecotfmt_ext *ext,
				      void *context),
			   void *context)
{
	const unsigned char *d = index->data;
	size_t hsize = index->header_size;
	struct dovecotfmt_ext ext;

	memset(&ext, 0, sizeof(ext));
	for (size_t off = ALIGN8(index->base_header_size);
	     off < hsize && hsize - off >= EXT_HEADER_SIZE; ext.index++) {
		size_t hdr_size = dovecotfmt_u32(d + off);
		size_t name_size = dovecotfmt_u16(d + off + 14);
		size_t data = off + ALIGN8(EXT_HEADER_SIZE + name_size);

		if (data > hsize || hdr_size > hsize - data)
			return;
		ext.name = d + off + EXT_HEADER_SIZE;
		ext.name_size = name_size;
		ext.data = d + data;
		ext.data_size = hdr_size;
		ext.record_offset = dovecotfmt_u16(d + off + 8);
		ext.record_size = dovecotfmt_u16(d + off + 10);
		if (ext.record_offset > index->record_size ||
		    ext.record_size > index->record_size - ext.record_offset)
			ext.record_offset = ext.record_size = 0;
		if (!fn(&ext, context))
			return;
		off = data + ALIGN8(hdr_size);
	}
}

bool dovecotfmt_ext_is(const struct dovecotfmt_ext *ext, const char *name)
{
	return ext->name_size == strlen(name) &&
		memcmp(ext->name, name, ext->name_size) == 0;
}

/* mail_index_offset_to_uint32(): a record's size, 7 bits of it (in units
   of 4 bytes) in each of its 4 bytes, the top bit of each set, the most
   significant byte first (the same bytes on any host): 0 if not in that
   encoding */
static uint32_t size_decode(const unsigned char *p)
{
	if ((p[0] & p[1] & p[2] & p[3] & 0x80) == 0)
		return 0;
	return ((uint32_t)(p[0] & 0x7f) << 23) |
		((uint32_t)(p[1] & 0x7f) << 16) |
		((uint32_t)(p[2] & 0x7f) << 9) | ((uint32_t)(p[3] & 0x7f) << 2);
}

/* mail_index_uint32_to_offset() */
static void size_encode(unsigned char p[4], uint32_t size)
{
	uint32_t v = size >> 2;

	p[0] = (unsigned char)(0x80 | ((v >> 21) & 0x7f));
	p[1] = (unsigned char)(0x80 | ((v >> 14) & 0x7f));
	p[2] = (unsigned char)(0x80 | ((v >> 7) & 0x7f));
	p[3] = (unsigned char)(0x80 | (v & 0x7f));
}

int dovecotfmt_log_open(struct dovecotfmt_log *log_r,
			const unsigned char *data, size_t size)
{
	size_t hdr_size;

	memset(log_r, 0, sizeof(*log_r));
	if (size < DOVECOTFMT_LOG_HEADER_MIN ||
	    data[0] != DOVECOTFMT_LOG_MAJOR_VERSION)
		return -1;
	hdr_size = dovecotfmt_u16(data + 2);
	if (hdr_size < DOVECOTFMT_LOG_HEADER_MIN || hdr_size > size)
		return -1;
	/* older logs have no compat flags: this machine's order */
	if (hdr_size > DOVECOTFMT_LOG_COMPAT_FLAGS &&
	    !dovecotfmt_host_order(data[DOVECOTFMT_LOG_COMPAT_FLAGS]))
		return -1;
	log_r->data = data;
	log_r->size = size;
	log_r->pos = hdr_size;
	log_r->file_seq = dovecotfmt_u32(data + DOVECOTFMT_LOG_FILE_SEQ);
	return 0;
}

bool dovecotfmt_log_seek(struct dovecotfmt_log *log, size_t offset)
{
	size_t hdr_size = dovecotfmt_u16(log->data + 2);

	if (offset < hdr_size || offset > log->size)
		return false;
	log->pos = offset;
	return true;
}

int dovecotfmt_log_next(struct dovecotfmt_log *log, struct dovecotfmt_rec *rec_r)
{
	const unsigned char *rec;
	size_t left;
	uint32_t size;

	if (log->pos > log->size ||
	    log->size - log->pos < DOVECOTFMT_RECORD_HEADER_SIZE)
		return 0;
	rec = log->data + log->pos;
	left = log->size - log->pos;
	size = size_decode(rec);
	if (size < DOVECOTFMT_RECORD_HEADER_SIZE || size > left)
		return 0;	/* damaged, or being written */
	rec_r->type = dovecotfmt_u32(rec + 4);
	rec_r->body = rec + DOVECOTFMT_RECORD_HEADER_SIZE;
	rec_r->size = size - DOVECOTFMT_RECORD_HEADER_SIZE;
	if (!log->past_boundaries &&
	    (rec_r->type & DOVECOTFMT_TYPE_MASK) == DOVECOTFMT_BOUNDARY &&
	    (rec_r->size < 4 || dovecotfmt_u32(rec_r->body) > left))
		return 0;	/* a transaction not all written yet */
	log->pos += size;
	return 1;
}

void dovecotfmt_rec_header(unsigned char hdr[DOVECOTFMT_RECORD_HEADER_SIZE],
			   uint32_t type, size_t body_size)
{
	size_encode(hdr, (uint32_t)(body_size + DOVECOTFMT_RECORD_HEADER_SIZE));
	memcpy(hdr + 4, &type, 4);
}
