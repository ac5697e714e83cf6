/* objstore-private.h: what a backend implements and the helpers it may use.
 *
 * A backend is a const struct objstore_class.  Its store struct embeds
 * struct objstore as the first member.  objstore.c validates every argument
 * (keys, metadata, sizes) before a backend sees it, counts failed operations,
 * and falls back to one delete per key when a backend has no delete_many.
 *
 * Backends report errors with objstore_set_error() (which also sets errno)
 * and count every request they send with objstore_count_request(), so that
 * retries are counted too: requests are what an operator pays for.
 */
#ifndef OBOXFS_OBJSTORE_PRIVATE_H
#define OBOXFS_OBJSTORE_PRIVATE_H

#include "objstore.h"

#include <stdarg.h>
#include <stdatomic.h>

/* Where put data comes from: data != NULL means memory, else fd. */
struct objstore_source {
	const void *data;
	int fd;
	uint64_t size;
};

/* Where get data goes: fd >= 0 means pwrite() at fd_offset, else a
   growing memory buffer of at most max_size bytes.  Use the helpers. */
struct objstore_sink {
	int fd;
	off_t fd_offset;
	size_t max_size;
	unsigned char *buf;
	size_t alloc;
	uint64_t used;	/* bytes accepted so far */
};

struct objstore_vfuncs {
	int (*put)(struct objstore *store, const char *key,
		   const struct objstore_source *src,
		   const struct objstore_meta *meta, unsigned int meta_count);
	/* length is never 0; OBJSTORE_TO_END means to the end */
	int (*get)(struct objstore *store, const char *key, uint64_t offset,
		   uint64_t length, struct objstore_sink *sink);
	int (*head)(struct objstore *store, const char *key,
		    struct objstore_stat *stat_r);
	/* delimiter is NULL or "/"; start_after is NULL or a position (a
	   key or a prefix) below prefix, then delimiter is NULL: only keys
	   after it.  first_page_keys: keys to ask for in the first request
	   of a paged listing (0: the store's page size; a store without
	   pages ignores it) */
	int (*list)(struct objstore *store, const char *prefix,
		    const char *delimiter, const char *start_after,
		    unsigned int first_page_keys,
		    objstore_list_cb *callback, void *context);
	int (*delete_key)(struct objstore *store, const char *key);
	/* optional: NULL = delete_key() for each */
	int (*delete_many)(struct objstore *store, const char *const *keys,
			   unsigned int count);
	int (*copy)(struct objstore *store, const char *src_key,
		    const char *dst_key);
};

struct objstore_class {
	const char *name;
	struct objstore *(*alloc)(void);
	/* location: the URL without its scheme ("/dir" for file://,
	   "bucket/prefix" for s3://, the fault spec for the fault layer,
	   whose store->parent is set before init).  Returns -1 with a
	   one-line *error_r (a static or thread-local string). */
	int (*init)(struct objstore *store, const char *location,
		    const struct objstore_settings *set, const char **error_r);
	/* frees everything, the store struct included (not the parent) */
	void (*deinit)(struct objstore *store);
	struct objstore_vfuncs v;
};

struct objstore {
	const struct objstore_class *class;
	/* the wrapped store of a pass-through layer, else NULL; owned */
	struct objstore *parent;
	/* counters, updated atomically from any thread */
	_Atomic uint64_t requests[OBJSTORE_OP_COUNT];
	_Atomic uint64_t retries, errors, bytes_out, bytes_in;
};

extern const struct objstore_class objstore_class_posix;
extern const struct objstore_class objstore_class_s3;
extern const struct objstore_class objstore_class_fault;

/* Set the calling thread's error and errno; returns -1 for
   "return objstore_set_error(...)". */
int objstore_set_error(enum objstore_error error, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int objstore_set_errorv(enum objstore_error error, const char *fmt,
			va_list args) __attribute__((format(printf, 2, 0)));
/* errno value for an error code */
int objstore_error_errno(enum objstore_error error);
/* This thread's last error: its code and a strdup() of its message (NULL
   if out of memory), e.g. to raise it again with more context. */
void objstore_error_save(enum objstore_error *error_r, char **message_r);

void objstore_count_request(struct objstore *store, enum objstore_op op);
void objstore_count_retry(struct objstore *store);
void objstore_count_bytes(struct objstore *store, uint64_t in, uint64_t out);

/* Append data to a sink.  Fails (-1, error set) when the memory limit is
   passed or pwrite() fails. */
int objstore_sink_write(struct objstore_sink *sink, const void *data,
			size_t size);
/* Forget what was written (before a retry). */
void objstore_sink_reset(struct objstore_sink *sink);

/* Deep-copy metadata into a stat (names lowercased). */
int objstore_stat_set_meta(struct objstore_stat *stat,
			   const struct objstore_meta *meta,
			   unsigned int meta_count);

#endif
