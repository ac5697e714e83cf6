/* dovecotidx.c: see dovecotidx.h.  The layouts read (Dovecot 2.3,
 * src/lib-index): all integers in host byte order, which the files' compat
 * flags say (bit 1: little endian); a file of the other order is skipped.
 *   dovecot.index header: major version 7 at byte 0, compat flags at 12,
 *   next_uid at 28.
 *   dovecot.index.log header: major version 1 at byte 0, its size (16
 *   bits, at least 24) at 2, compat flags at 32 (if the header has
 *   them); then records, each a size (32 bits, in
 *   Dovecot's "offset" encoding: the top bit of every byte set, 7 bits
 *   of value each, in units of 4 bytes: mail_index_uint32_to_offset()),
 *   a type (32 bits: its low 16 bits say what it is) and data:
 *     APPEND (0x2): index records of 8 bytes, the UID first;
 *     HEADER_UPDATE (0x20): {offset 16 bits, size 16 bits, bytes}
 *       entries, each padded to 4 bytes, writing the index header;
 *     UID_UPDATE (0x4000): {old uid, new uid} pairs.
 *   dovecot-uidlist (maildir): a first line of space-separated fields,
 *   "3" (the version) then V<uidvalidity>, N<next uid>, G<mailbox guid>
 *   and others. */
#include "dovecotidx.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_MAJOR_VERSION 7
#define INDEX_COMPAT_FLAGS_OFFSET 12
#define LOG_COMPAT_FLAGS_OFFSET 32
#define COMPAT_LITTLE_ENDIAN 0x01
#define INDEX_NEXT_UID_OFFSET 28
#define LOG_MAJOR_VERSION 1
#define LOG_HEADER_MIN_SIZE 24
#define LOG_RECORD_HEADER_SIZE 8
#define LOG_TYPE_MASK 0x0000ffffU
#define LOG_APPEND 0x00000002U
#define LOG_HEADER_UPDATE 0x00000020U
#define LOG_UID_UPDATE 0x00004000U
#define LOG_APPEND_RECORD_SIZE 8
#define UIDLIST_HEADER_MAX 1024
#define MAILBOX_GUID_LEN 32
/* Dovecot rotates a log long before this (log_rotate_max_size) */
#define LOG_MAX_BYTES (64 * 1024 * 1024)

unsigned char dovecotidx_compat_flags(void)
{
	const union { uint16_t u; unsigned char c[2]; } one = { .u = 1 };

	return one.c[0] == 1 ? COMPAT_LITTLE_ENDIAN : 0;
}

/* a file's compat flags say it is in this machine's byte order */
static bool host_order(unsigned char compat_flags)
{
	return (compat_flags & COMPAT_LITTLE_ENDIAN) ==
		dovecotidx_compat_flags();
}

/* dir_fd's regular file name (not a symlink, FIFO or device: opened
   without blocking) into *data_r (malloc()ed, at most max bytes: the
   first max of a longer one); 1 if read, 0 if there is no such file,
   -1 with errno */
static int read_file(int dir_fd, const char *name, size_t max,
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

static uint32_t u32_at(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t u16_at(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void raise_to(uint32_t *next_uid, uint32_t uid)
{
	/* uid + 1, without wrapping past the highest UID */
	uint32_t next = uid == UINT32_MAX ? UINT32_MAX : uid + 1;

	if (next > *next_uid)
		*next_uid = next;
}

/* mail_index_offset_to_uint32(): 0 if not in that encoding */
static uint32_t record_size(const unsigned char *p)
{
	if ((u32_at(p) & 0x80808080U) != 0x80808080U)
		return 0;
	return ((uint32_t)(p[3] & 0x7f) << 2) |
	       ((uint32_t)(p[2] & 0x7f) << 9) |
	       ((uint32_t)(p[1] & 0x7f) << 16) |
	       ((uint32_t)(p[0] & 0x7f) << 23);
}

static void header_updates(const unsigned char *p, size_t size,
			   uint32_t *next_uid)
{
	size_t i = 0;

	while (i + 4 <= size) {
		size_t off = u16_at(p + i), len = u16_at(p + i + 2);
		const unsigned char *data = p + i + 4;

		if (len > size - i - 4)
			return;
		if (off <= INDEX_NEXT_UID_OFFSET &&
		    off + len >= INDEX_NEXT_UID_OFFSET + 4) {
			uint32_t v = u32_at(data + INDEX_NEXT_UID_OFFSET - off);

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
	size_t pos;

	if (size < LOG_HEADER_MIN_SIZE || data[0] != LOG_MAJOR_VERSION)
		return;
	pos = u16_at(data + 2);
	if (pos < LOG_HEADER_MIN_SIZE)
		return;
	if (pos > LOG_COMPAT_FLAGS_OFFSET && pos <= size &&
	    !host_order(data[LOG_COMPAT_FLAGS_OFFSET]))
		return;
	while (pos <= size && size - pos >= LOG_RECORD_HEADER_SIZE) {
		const unsigned char *rec = data + pos;
		uint32_t rsize = record_size(rec);
		uint32_t type = u32_at(rec + 4) & LOG_TYPE_MASK;
		const unsigned char *body = rec + LOG_RECORD_HEADER_SIZE;
		size_t body_size;

		if (rsize < LOG_RECORD_HEADER_SIZE || rsize > size - pos)
			return;	/* damaged, or being written */
		body_size = rsize - LOG_RECORD_HEADER_SIZE;
		if (type == LOG_APPEND) {
			for (size_t i = 0; i + LOG_APPEND_RECORD_SIZE <= body_size;
			     i += LOG_APPEND_RECORD_SIZE)
				raise_to(next_uid, u32_at(body + i));
		} else if (type == LOG_UID_UPDATE) {
			for (size_t i = 0; i + 8 <= body_size; i += 8)
				raise_to(next_uid, u32_at(body + i + 4));
		} else if (type == LOG_HEADER_UPDATE) {
			header_updates(body, body_size, next_uid);
		}
		pos += rsize;
	}
}

/* the index header's next_uid: 1 and *next_uid raised, 0 if no index */
static int index_next_uid(int dir_fd, uint32_t *next_uid)
{
	const size_t hdr_size = INDEX_NEXT_UID_OFFSET + 4;
	unsigned char *hdr;
	size_t size;
	int ret = read_file(dir_fd, "dovecot.index", hdr_size, &hdr, &size);

	if (ret <= 0)
		return ret;
	if (size == hdr_size && hdr[0] == INDEX_MAJOR_VERSION &&
	    host_order(hdr[INDEX_COMPAT_FLAGS_OFFSET]) &&
	    u32_at(hdr + INDEX_NEXT_UID_OFFSET) > *next_uid)
		*next_uid = u32_at(hdr + INDEX_NEXT_UID_OFFSET);
	free(hdr);
	return 1;
}

static int log_next_uid(int dir_fd, const char *name, uint32_t *next_uid)
{
	unsigned char *data;
	size_t size;
	int ret = read_file(dir_fd, name, LOG_MAX_BYTES, &data, &size);

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
	int ret = read_file(dir_fd, "dovecot-uidlist", UIDLIST_HEADER_MAX,
			    &data, &len);

	if (ret <= 0)
		return ret;
	ret = dovecotidx_uidlist_guid(data, len, guid_r);
	free(data);
	return ret;
}
