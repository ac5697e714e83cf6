/* cachedir-private.h: internals shared by the cachedir sources and tests:
 * the LRU index (hash table + doubly-linked list, no locking), cache file
 * names and the file helpers. */
#ifndef OBOXFS_CACHEDIR_PRIVATE_H
#define OBOXFS_CACHEDIR_PRIVATE_H

#include "cachedir.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#define CACHEDIR_ID_LEN 16
/* "ab/<32 hex>.<16 hex>" */
#define CACHEDIR_NAME_LEN (3 + 2 * CACHEDIR_ID_LEN + 1 + 16)

struct cachedir_entry {
	struct cachedir_entry *lru_prev, *lru_next;	/* prev = more recent */
	struct cachedir_entry *hash_next;
	uint64_t size;
	uint64_t csum;		/* first 64 bits of SHA-256(content) */
	uint8_t id[CACHEDIR_ID_LEN];
	bool verified;		/* checksum checked since this process
				   started (or written by it) */
};

struct cachedir_index {
	struct cachedir_entry **buckets;
	size_t nbuckets;	/* a power of 2 */
	size_t count;
	uint64_t bytes;		/* sum of entry sizes */
	struct cachedir_entry *mru, *lru;
};

int cachedir_index_init(struct cachedir_index *idx);
/* frees every entry */
void cachedir_index_deinit(struct cachedir_index *idx);
struct cachedir_entry *
cachedir_index_lookup(struct cachedir_index *idx,
		      const uint8_t id[CACHEDIR_ID_LEN]);
/* Add a new entry (id must not be in the index) as the most recently used.
   Returns it, or NULL with errno = ENOMEM. */
struct cachedir_entry *
cachedir_index_insert(struct cachedir_index *idx,
		      const uint8_t id[CACHEDIR_ID_LEN], uint64_t size,
		      uint64_t csum);
/* make e the most recently used */
void cachedir_index_touch(struct cachedir_index *idx, struct cachedir_entry *e);
/* take e out of the index (the caller frees it) */
void cachedir_index_remove(struct cachedir_index *idx,
			   struct cachedir_entry *e);
/* the least recently used entry, or NULL */
struct cachedir_entry *cachedir_index_lru(struct cachedir_index *idx);
/* bytes used by the bookkeeping */
uint64_t cachedir_index_memory(const struct cachedir_index *idx);

struct cachedir {
	int dir_fd;
	struct objstore *store;
	uint64_t cap;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a flight ended or space was freed */
	struct cachedir_index idx;	/* protected by lock */
	uint64_t reserved;		/* by writes in progress */
	/* the disk is smaller than the cap: what the cache held when its
	   owner's own write hit ENOSPC (cachedir_shrink()), UINT64_MAX
	   until then; the cache does not grow past it again */
	uint64_t disk_cap;
	uint64_t unlinking;		/* evicted, unlink in progress */
	uint64_t del_seq;		/* names files being deleted */
	struct cachedir_flight *flights;
	struct cachedir_stats stats;
};

/* set the calling thread's error message (printf format) */
void cachedir_set_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* The id of key: its last segment if that is 32 lowercase hex digits (a
   mail oid), else the first 128 bits of SHA-256(key). */
void cachedir_key_id(const char *key, uint8_t id_r[CACHEDIR_ID_LEN]);
/* Where an id is spread over subdirectories and hash buckets: its last
   bytes, random both in mail oids (whose first 13 hex digits are their
   time, ids.h) and in SHA-256 ids.  The subdirectory is the last byte. */
#define CACHEDIR_ID_SPREAD(id) ((id) + CACHEDIR_ID_LEN - 8)
#define CACHEDIR_ID_SUBDIR(id) ((id) + CACHEDIR_ID_LEN - 1)
/* "<last byte of the id, hex>/<id hex>.<csum hex>" */
void cachedir_file_name(const uint8_t id[CACHEDIR_ID_LEN], uint64_t csum,
			char name_r[CACHEDIR_NAME_LEN + 1]);
/* Parse a file name inside a subdirectory ("<id hex>.<csum hex>").  Returns
   0 or -1. */
int cachedir_parse_file_name(const char *name, uint8_t id_r[CACHEDIR_ID_LEN],
			     uint64_t *csum_r);
/* Checksum the first size bytes of fd.  Returns 0, or -1 with errno (EIO if
   the file is shorter). */
int cachedir_file_csum(int fd, uint64_t size, uint64_t *csum_r);
/* Create a temporary file in id's subdirectory; returns the fd and its name
   in tmp_r, or -1 with errno. */
int cachedir_tmp_create(int dir_fd, const uint8_t id[CACHEDIR_ID_LEN],
			char tmp_r[CACHEDIR_NAME_LEN + 16]);
/* Copy size bytes of src (pread from 0) into dst (from 0) and checksum them.
   Returns 0, or -1 with errno. */
int cachedir_copy_fd(int src, int dst, uint64_t size, uint64_t *csum_r);

/* Take e out of the index and unlink its file (lock held; dropped
   meanwhile). */
void cachedir_drop_locked(struct cachedir *cd, struct cachedir_entry *e,
			  bool evicted);
/* The disk is full below the cap: evict at least size bytes (or all there
   is).  Returns 0 if something was freed, -1 if nothing could be. */
int cachedir_make_room(struct cachedir *cd, uint64_t size);
/* Fill the temporary file fd with size bytes: a copy of src_fd, or (src_fd
   < 0) the object key fetched from the store; checksum them.  Evicts and
   retries when the disk is full.  Returns 0, or -1 with errno and
   cachedir_error(). */
int cachedir_fill(struct cachedir *cd, const char *key, int src_fd, int fd,
		  uint64_t size, uint64_t *csum_r);
/* Fetch an object into memory, uncached (larger than the cap, or the
   disk is full of what cannot be evicted); count_miss: count it. */
int cachedir_open_uncached(struct cachedir *cd, const char *key,
			   uint64_t size, bool count_miss, int *fd_r);

/* Rebuild cd->idx from the directory (called by cachedir_init()). */
int cachedir_scan(struct cachedir *cd);

#endif
