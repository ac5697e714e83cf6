/* dovecotfmt.c: see dovecotfmt.h. */
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

/* mail_index_offset_to_uint32(): 0 if not in that encoding */
static uint32_t size_decode(uint32_t v)
{
	if ((v & 0x80808080U) != 0x80808080U)
		return 0;
	return (((v & 0x0000007fU) << 21) | ((v & 0x00007f00U) << 6) |
		((v & 0x007f0000U) >> 9) | ((v & 0x7f000000U) >> 24)) << 2;
}

/* mail_index_uint32_to_offset() */
static uint32_t size_encode(uint32_t size)
{
	uint32_t v = size >> 2;

	return 0x80808080U | ((v & 0x0000007fU) << 24) |
		((v & 0x00003f80U) << 9) | ((v & 0x001fc000U) >> 6) |
		((v & 0x0fe00000U) >> 21);
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
	size = size_decode(dovecotfmt_u32(rec));
	if (size < DOVECOTFMT_RECORD_HEADER_SIZE || size > left)
		return 0;	/* damaged, or being written */
	rec_r->type = dovecotfmt_u32(rec + 4);
	rec_r->body = rec + DOVECOTFMT_RECORD_HEADER_SIZE;
	rec_r->size = size - DOVECOTFMT_RECORD_HEADER_SIZE;
	if ((rec_r->type & DOVECOTFMT_TYPE_MASK) == DOVECOTFMT_BOUNDARY &&
	    (rec_r->size < 4 || dovecotfmt_u32(rec_r->body) > left))
		return 0;	/* a transaction not all written yet */
	log->pos += size;
	return 1;
}

void dovecotfmt_rec_header(unsigned char hdr[DOVECOTFMT_RECORD_HEADER_SIZE],
			   uint32_t type, size_t body_size)
{
	uint32_t size = size_encode((uint32_t)(body_size +
					       DOVECOTFMT_RECORD_HEADER_SIZE));

	memcpy(hdr, &size, 4);
	memcpy(hdr + 4, &type, 4);
}
