/* dovecotfmt.h: the facts of Dovecot 2.3's index file formats that the
 * engine reads and writes (src/lib-index: mail-index.h,
 * mail-transaction-log.h), in one place: the byte order a file says it
 * has, a bounded reader of a folder's index files, the index header's
 * fields, and the transaction log's header and records (read from
 * untrusted bytes with bounds; built for appending).  dovecotidx.c (next
 * UID, mailbox GUID), sdboxflags.c (flags and keywords) and putback.c
 * (the rebuild mark) use it.
 *
 * All integers are in host byte order: a file whose compat flags say the
 * other order is not read.  No shared state.
 */
#ifndef OBOXFS_DOVECOTFMT_H
#define OBOXFS_DOVECOTFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* dovecot.index: struct mail_index_header */
#define DOVECOTFMT_INDEX_MAJOR_VERSION 7
#define DOVECOTFMT_INDEX_BASE_HEADER_SIZE 2	/* uint16 */
#define DOVECOTFMT_INDEX_HEADER_SIZE 4		/* uint32 */
#define DOVECOTFMT_INDEX_RECORD_SIZE 8		/* uint32 */
#define DOVECOTFMT_INDEX_COMPAT_FLAGS 12
#define DOVECOTFMT_INDEX_FLAGS 20
#define DOVECOTFMT_INDEX_NEXT_UID 28
#define DOVECOTFMT_INDEX_MESSAGES_COUNT 32
#define DOVECOTFMT_INDEX_LOG_FILE_SEQ 60
#define DOVECOTFMT_INDEX_LOG_HEAD_OFFSET 68
#define DOVECOTFMT_INDEX_HEADER_MIN 72
/* MAIL_INDEX_HDR_FLAG_FSCKD: sdbox rebuilds the index from its files */
#define DOVECOTFMT_INDEX_FLAG_FSCKD 0x4

/* dovecot.index.log: struct mail_transaction_log_header */
#define DOVECOTFMT_LOG_MAJOR_VERSION 1
#define DOVECOTFMT_LOG_HEADER_MIN 24
#define DOVECOTFMT_LOG_FILE_SEQ 8
#define DOVECOTFMT_LOG_COMPAT_FLAGS 32
/* the header Dovecot 2.3 writes (with the compat flags) */
#define DOVECOTFMT_LOG_HEADER_SIZE 40
/* Dovecot rotates a log long before this (log_rotate_max_size) */
#define DOVECOTFMT_LOG_MAX_BYTES (64 * 1024 * 1024)

/* enum mail_transaction_type (type & DOVECOTFMT_TYPE_MASK) */
#define DOVECOTFMT_EXPUNGE 0x00000001U
#define DOVECOTFMT_APPEND 0x00000002U
#define DOVECOTFMT_FLAG_UPDATE 0x00000004U
#define DOVECOTFMT_HEADER_UPDATE 0x00000020U
#define DOVECOTFMT_KEYWORD_UPDATE 0x00000400U
#define DOVECOTFMT_KEYWORD_RESET 0x00000800U
#define DOVECOTFMT_UID_UPDATE 0x00004000U
#define DOVECOTFMT_BOUNDARY 0x00080000U
#define DOVECOTFMT_TYPE_MASK 0x0fffffffU
/* the change happened already (a sync's record) */
#define DOVECOTFMT_EXTERNAL 0x10000000U
#define DOVECOTFMT_RECORD_HEADER_SIZE 8
/* struct mail_index_record in an APPEND: uid, flags, padding */
#define DOVECOTFMT_APPEND_RECORD_SIZE 8
/* struct mail_transaction_flag_update: uid1, uid2, add, remove, modseq
   increase, padding */
#define DOVECOTFMT_FLAG_UPDATE_SIZE 12
/* enum modify_type */
#define DOVECOTFMT_MODIFY_ADD 0
#define DOVECOTFMT_MODIFY_REMOVE 1
/* enum mail_flags, without \Recent (never stored) */
#define DOVECOTFMT_MAIL_FLAGS 0x1f

/* The compat flags byte of an index or log file Dovecot on this machine
   writes (MAIL_INDEX_COMPAT_LITTLE_ENDIAN or none). */
unsigned char dovecotfmt_compat_flags(void);
/* compat_flags (of a file) say this machine's byte order */
bool dovecotfmt_host_order(unsigned char compat_flags);

uint32_t dovecotfmt_u32(const unsigned char *p);
uint16_t dovecotfmt_u16(const unsigned char *p);

/* dir_fd's regular file name (not a symlink, FIFO or device: opened
   without blocking) into *data_r (malloc()ed, NUL after its bytes, at
   most max bytes: the first max of a longer one): 1 if read, 0 if there
   is no such file, -1 with errno. */
int dovecotfmt_read_file(int dir_fd, const char *name, size_t max,
			 unsigned char **data_r, size_t *size_r);

/* an extension of dovecot.index (struct mail_index_ext_header): its
   place in the header's list, its header data and its part of every
   record */
struct dovecotfmt_ext {
	unsigned int index;		/* 0, 1, ...: the log's ext_id */
	const unsigned char *name;	/* not NUL-terminated */
	size_t name_size;
	const unsigned char *data;	/* its header data */
	size_t data_size;
	size_t record_offset, record_size;	/* within a record's bounds */
};

/* dovecot.index's header (data, size): true if it is one in this
   machine's byte order, with its sizes.  Every field read is bounded by
   size. */
struct dovecotfmt_index {
	const unsigned char *data;
	size_t size;
	size_t base_header_size, header_size, record_size, messages;
	uint32_t log_file_seq, log_head_offset;
};
bool dovecotfmt_index_open(struct dovecotfmt_index *index_r,
			   const unsigned char *data, size_t size);
/* The extensions, in order: fn(ext, context) for each, until it returns
   false; an extension that does not fit the header ends the list. */
void dovecotfmt_index_exts(const struct dovecotfmt_index *index,
			   bool (*fn)(const struct dovecotfmt_ext *ext,
				      void *context),
			   void *context);
/* extension ext is named name */
bool dovecotfmt_ext_is(const struct dovecotfmt_ext *ext, const char *name);

/* a log's bytes, read record by record */
struct dovecotfmt_log {
	const unsigned char *data;
	size_t size, pos;
	uint32_t file_seq;	/* the header's */
	/* read on past a transaction not all written yet (a caller
	   that wants every UID it may name) */
	bool past_boundaries;
};

struct dovecotfmt_rec {
	uint32_t type;		/* with DOVECOTFMT_EXTERNAL etc. */
	const unsigned char *body;
	size_t size;
};

/* 0 with log_r at the first record if data is a log in this machine's
   byte order, -1 if not */
int dovecotfmt_log_open(struct dovecotfmt_log *log_r,
			const unsigned char *data, size_t size);
/* The next whole record: 1, or 0 at the end (also at a record whose size
   is not in Dovecot's encoding or goes past the end: damaged, or being
   written; and, unless log->past_boundaries, at a transaction a BOUNDARY
   record says is not all written yet). */
int dovecotfmt_log_next(struct dovecotfmt_log *log, struct dovecotfmt_rec *rec_r);
/* Skip to offset (a position the index header names), if it is inside
   the records: false if not. */
bool dovecotfmt_log_seek(struct dovecotfmt_log *log, size_t offset);

/* The header of a record of type with body_size bytes of body (a
   multiple of 4, below 2^30): the size is written in Dovecot's "offset"
   encoding (mail_index_uint32_to_offset()). */
void dovecotfmt_rec_header(unsigned char hdr[DOVECOTFMT_RECORD_HEADER_SIZE],
			   uint32_t type, size_t body_size);

#endif
