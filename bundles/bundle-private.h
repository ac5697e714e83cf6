/* bundle-private.h: the on-disk layout of bundles (docs/bundle-format.md),
 * little-endian helpers, a growable byte buffer and the decoded diff shared
 * by the bundles/ sources. */
#ifndef OBOXFS_BUNDLE_PRIVATE_H
#define OBOXFS_BUNDLE_PRIVATE_H

#include "bundle.h"

#include <string.h>
#include <sys/stat.h>

#define BUNDLE_MAGIC "OBOXBNDL"
#define BUNDLE_MAGIC_SIZE 8
#define BUNDLE_HEADER_SIZE 128
#define BUNDLE_RECORD_SIZE 56
#define BUNDLE_TRAILER_SIZE 32

/* header field offsets */
#define HDR_MAGIC 0
#define HDR_VERSION 8
#define HDR_KIND 10
#define HDR_FLAGS 11
#define HDR_SEQ 12
#define HDR_SECS 16
#define HDR_USECS 20
#define HDR_ID 24
#define HDR_BASE_ID 40
#define HDR_BASE_SECS 56
#define HDR_BASE_USECS 60
#define HDR_BASE_DIGEST 64
#define HDR_ENTRY_COUNT 96
#define HDR_DELETE_COUNT 100
#define HDR_DATA_BYTES 104
#define HDR_MAILS_SECS 112	/* version 2 */
#define HDR_MAILS_USECS 116	/* version 2 */
/* version 3, a base: its parent (bundle_info.has_parent) where a diff
   has its base's fields: base id, secs, usecs, and the parent's diff id
   in the first half of the base digest (zero if the parent is a base);
   the second half stays zero */
#define HDR_PARENT_BASE_ID HDR_BASE_ID
#define HDR_PARENT_SECS HDR_BASE_SECS
#define HDR_PARENT_USECS HDR_BASE_USECS
#define HDR_PARENT_DIFF_ID HDR_BASE_DIGEST
#define HDR_PARENT_END (HDR_BASE_DIGEST + BUNDLE_ID_SIZE)
#define HDR_RESERVED_V1 112
#define HDR_RESERVED 120

/* entry record field offsets */
#define REC_KIND 0
#define REC_FLAGS 1
#define REC_PATH_LEN 2
#define REC_KEY_LEN 4
#define REC_RESERVED1 6
#define REC_MODE 8
#define REC_UID 12
#define REC_GID 16
#define REC_MTIME_NSEC 20
#define REC_MTIME_SEC 24
#define REC_LINK_ID 32
#define REC_RESERVED2 36
#define REC_SIZE 40
#define REC_RDEV_MAJOR 40	/* device records: where others have size */
#define REC_RDEV_MINOR 44
#define REC_OLD_SIZE 48

enum bundle_record_kind {
	BUNDLE_REC_DIR = 1,
	BUNDLE_REC_FILE = 2,
	BUNDLE_REC_STUB = 3,
	BUNDLE_REC_LINK = 4,
	BUNDLE_REC_APPEND = 5,
	BUNDLE_REC_PATCH = 6,
	BUNDLE_REC_SYMLINK = 7,
	BUNDLE_REC_FIFO = 8,
	BUNDLE_REC_SOCKET = 9,
	BUNDLE_REC_CHARDEV = 10,
	BUNDLE_REC_BLOCKDEV = 11,
};
#define BUNDLE_REC_LAST BUNDLE_REC_BLOCKDEV

/* a patch range's header: offset (8 bytes), length (4) */
#define BUNDLE_PATCH_RANGE_SIZE 12

/* A decoded entry record.  LINK: only path and link_id are set.  APPEND:
   e.size is the new size, old_size the base file's, e.data the tail.
   PATCH: e.size the new size, old_size the base file's, e.data the
   patch_len bytes of range_count checked ranges. */
struct bundle_record {
	enum bundle_record_kind kind;
	struct bundle_entry e;
	uint64_t old_size;
	uint64_t patch_len;
	uint32_t range_count;
};

struct bundle_diff {
	struct bundle_info info;
	struct bundle_record *records;
	size_t record_count;
	char **deletes;
	size_t delete_count;
};

struct bundle_buf {
	unsigned char *data;
	size_t used, alloc;
};

void bundle_buf_append(struct bundle_buf *buf, const void *data, size_t size);
unsigned char *bundle_buf_append_space(struct bundle_buf *buf, size_t size);
void bundle_buf_put_u16(struct bundle_buf *buf, uint16_t v);

static inline void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* set the thread's error message and return it */
const char *bundle_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

void *bundle_xmalloc(size_t size);
void *bundle_xcalloc(size_t n, size_t size);
void *bundle_xrealloc(void *p, size_t size);
char *bundle_xstrndup(const char *s, size_t len);

void bundle_entry_copy(struct bundle_entry *dst, const struct bundle_entry *src);
void bundle_entry_clear(struct bundle_entry *e);
/* index of path in tree, or -1; *insert_r = where it would go */
long bundle_tree_lookup(const struct bundle_tree *tree, const char *path,
			size_t *insert_r);
/* append (ownership moves; must sort after the last entry) */
void bundle_tree_push(struct bundle_tree *tree, struct bundle_entry *entry);
/* names.c: an id (BUNDLE_ID_SIZE bytes) as 2 * BUNDLE_ID_SIZE lowercase
   hex digits (out gets a NUL after them), and back (false if s does not
   start with that many lowercase hex digits) */
void bundle_id_hex_format(const unsigned char *id, char *out);
bool bundle_id_hex_parse(const char *s, unsigned char *id);
/* 0 if s is BUNDLE_GUID_HEX_LEN lowercase hex digits */
bool bundle_is_hex_id(const char *s, size_t len);
int bundle_key_check(const char *key, size_t len, const char **error_r);

/* Link ids for encoding entries where include[i] (NULL: all): groups with
   at least two included members get 1, 2, ... in order of their first
   member; others 0.  *first_r[i] is true for a group's first member.
   Returns a malloc()ed array of count ids. */
uint32_t *bundle_link_map(const struct bundle_tree *tree, const bool *include,
			  bool **first_r);

/* special.c: symlinks, fifos, sockets and device nodes */
/* true for the special entry types */
bool bundle_type_is_special(enum bundle_entry_type type);
/* true for the types whose data/size are content (FILE, SYMLINK) */
bool bundle_type_has_data(enum bundle_entry_type type);
/* true for CHARDEV and BLOCKDEV (the types with an rdev) */
bool bundle_type_is_device(enum bundle_entry_type type);
/* the special entry type of a file type (st_mode), or 0 if none */
enum bundle_entry_type bundle_special_type(mode_t mode);
/* the fields of a special entry: a symlink's target, no rdev but a
   device's, no key, guid or link id */
int bundle_special_check(const struct bundle_entry *e, const char **error_r);
/* Fill e (type, rdev, a symlink's target) from the special file name in
   dirfd, which lstat() gave as st.  Returns 1, 0 if it is gone, -1 on
   error. */
int bundle_special_scan(int dirfd, const char *name, const struct stat *st,
			struct bundle_entry *e, const char **error_r);
/* create e (special) as e->path below dirfd, mode 0600 */
int bundle_special_create(int dirfd, const struct bundle_entry *e,
			  const char **error_r);

/* encode.c */
/* pack.c */
bool bundle_is_packed(const unsigned char *data, size_t size);
int bundle_unpack(const unsigned char *data, size_t size, size_t max_size,
		  unsigned char **raw_r, size_t *raw_size_r,
		  const char **error_r);
/* usecs fields < 1000000, the mail watermark not after the bundle */
int bundle_info_times_check(const struct bundle_info *info,
			    const char **error_r);
void bundle_encode_header(struct bundle_buf *buf, const struct bundle_info *info,
			  uint32_t entry_count, uint32_t delete_count);
void bundle_encode_record(struct bundle_buf *buf, enum bundle_record_kind kind,
			  const struct bundle_entry *e, uint32_t link_id,
			  uint64_t old_size);
/* fill data bytes and append the trailer; info->digest is set */
void bundle_encode_finish(struct bundle_buf *buf, struct bundle_info *info,
			  uint64_t data_bytes);

void bundle_diff_free(struct bundle_diff **diff);

#endif
