/* objstore.h: the object-store API used by the rest of oboxfs.
 *
 * One API, several backends (posix "file:///dir", "s3://bucket/prefix", and a
 * fault-injecting pass-through layer for tests).  Callers never know which
 * backend they talk to.
 *
 * Error contract: every call returns 0 on success and -1 on failure, with
 * errno set (see enum objstore_error for the mapping) and a readable
 * "op(key) failed: reason" message kept for the calling thread, available from
 * objstore_error().  A store handle is safe to use from many threads at once;
 * the error message and code are per thread.
 *
 * Keys are '/'-separated names relative to the store's root (for s3, below its
 * prefix).  They are validated by objstore_key_check() on every call.
 */
#ifndef OBOXFS_OBJSTORE_H
#define OBOXFS_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define OBJSTORE_KEY_MAX 1024
/* user metadata: at most this many pairs; names [a-z0-9-]{1,64}; values any
 * bytes but NUL, at most OBJSTORE_META_VALUE_MAX bytes.  Kept small enough for
 * every S3 implementation we target (Swift caps a value at 256 bytes and all
 * metadata at a few KiB). */
#define OBJSTORE_META_MAX_PAIRS 16
#define OBJSTORE_META_NAME_MAX 64
#define OBJSTORE_META_VALUE_MAX 255
#define OBJSTORE_META_TOTAL_MAX 2048
/* objstore_get(): read the object to its end */
#define OBJSTORE_TO_END ((uint64_t)-1)

struct objstore;

enum objstore_error {
	OBJSTORE_ERR_NONE = 0,
	OBJSTORE_ERR_NOT_FOUND,	/* ENOENT: no such key */
	OBJSTORE_ERR_TRANSIENT,	/* EAGAIN: timeout, reset, 5xx (after retries) */
	OBJSTORE_ERR_THROTTLED,	/* EBUSY: 503 SlowDown/429 (after retries) */
	OBJSTORE_ERR_AUTH,	/* EACCES: bad credentials, signature, 403 */
	OBJSTORE_ERR_INVALID,	/* EINVAL: bad key, argument or reply */
	OBJSTORE_ERR_TOO_BIG,	/* EFBIG: object larger than the caller allows */
	OBJSTORE_ERR_PERMANENT,	/* EIO: anything else that retrying won't fix */
};

enum objstore_op {
	OBJSTORE_OP_PUT = 0,
	OBJSTORE_OP_GET,
	OBJSTORE_OP_HEAD,
	OBJSTORE_OP_LIST,
	OBJSTORE_OP_DELETE,
	OBJSTORE_OP_COPY,
	OBJSTORE_OP_COUNT
};

enum objstore_addressing {
	OBJSTORE_ADDRESSING_AUTO = 0,	/* path-style for a custom endpoint,
					   virtual-host for AWS */
	OBJSTORE_ADDRESSING_PATH,
	OBJSTORE_ADDRESSING_VIRTUAL,
};

struct objstore_settings {
	/* s3: "http[s]://host[:port]"; default https://s3.REGION.amazonaws.com */
	const char *endpoint;
	/* s3: default "us-east-1" */
	const char *region;
	enum objstore_addressing addressing;
	/* s3: file with access_key/secret_key lines (mode must be 0600 or
	   stricter); NULL = AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY */
	const char *credentials_file;
	/* s3: skip TLS certificate verification (default: verify) */
	bool tls_insecure;
	/* s3: PEM file of the CA certificates to trust (NULL: the system's) */
	const char *ca_file;
	/* s3: per-request limits and the total time spent retrying one
	   operation; 0 = defaults (5 s, 60 s, 60 s) */
	unsigned int connect_timeout_ms;
	unsigned int request_timeout_ms;
	unsigned int retry_timeout_ms;
	/* s3: parallel connections kept (default 16) */
	unsigned int max_connections;
	/* s3: keys asked for per LIST page (1..1000; 0 = 1000, the most S3
	   gives): tests ask for fewer to cross pages with fewer keys */
	unsigned int list_page_keys;
	/* posix: do not fsync objects before they become visible (tests) */
	bool no_fsync;
	/* if set, wrap the store in the fault-injection layer; see
	   objstore_fault_init() for the syntax */
	const char *fault;
};

struct objstore_meta {
	const char *name;
	const char *value;
};

/* What objstore_head() returns.  Free with objstore_stat_free(). */
struct objstore_stat {
	uint64_t size;
	time_t mtime;
	unsigned int meta_count;
	struct objstore_meta *meta;	/* names are lowercase */
};

/* One listing entry.  For a common prefix (delimiter given) is_prefix is
   true and size/mtime are 0.  key is relative to the store root. */
struct objstore_list_entry {
	const char *key;
	uint64_t size;
	time_t mtime;
	bool is_prefix;
};

/* Return 0 to go on, non-zero to stop the listing (objstore_list() then
   returns 0). */
typedef int objstore_list_cb(const struct objstore_list_entry *entry,
			     void *context);

struct objstore_stats {
	uint64_t requests[OBJSTORE_OP_COUNT];	/* requests sent, retries too */
	uint64_t retries;
	uint64_t errors;			/* operations that failed */
	uint64_t bytes_out;			/* payload bytes sent */
	uint64_t bytes_in;			/* payload bytes received */
};

/* Open a store by URL ("file:///dir", "s3://bucket[/prefix]").  Checks the
   settings and that the store is reachable (posix: the directory exists and
   is writable; s3: a signed request to the bucket succeeds).  On failure
   returns -1 and a one-line message in *error_r (valid until the next call
   in this thread). */
int objstore_init(const char *url, const struct objstore_settings *set,
		  struct objstore **store_r, const char **error_r);
/* Close and free the store; *store is set to NULL. */
void objstore_deinit(struct objstore **store);

/* Store an object from memory.  Atomic: readers see the old state or the
   whole new object, never a part. */
int objstore_put(struct objstore *store, const char *key,
		 const void *data, size_t size,
		 const struct objstore_meta *meta, unsigned int meta_count);
/* Store an object from a file descriptor: size bytes read with pread() from
   offset 0.  The fd's position is not used. */
int objstore_put_fd(struct objstore *store, const char *key, int fd,
		    uint64_t size, const struct objstore_meta *meta,
		    unsigned int meta_count);

/* Read length bytes (OBJSTORE_TO_END = to the end) from offset into a newly
   allocated buffer (free() it).  An object (or range) larger than max_size
   fails with OBJSTORE_ERR_TOO_BIG.  A range past the end is cut short; an
   offset at or past the end gives 0 bytes. The buffer is NUL-terminated
   (not counted in *size_r). */
int objstore_get(struct objstore *store, const char *key,
		 uint64_t offset, uint64_t length, size_t max_size,
		 void **data_r, size_t *size_r);
/* Same, written to fd with pwrite() at fd_offset.  *size_r = bytes
   written.  On failure the fd's content past fd_offset is undefined. */
int objstore_get_fd(struct objstore *store, const char *key,
		    uint64_t offset, uint64_t length, int fd, off_t fd_offset,
		    uint64_t *size_r);

int objstore_head(struct objstore *store, const char *key,
		  struct objstore_stat *stat_r);
void objstore_stat_free(struct objstore_stat *stat);
/* Look up a metadata value in a stat, or NULL. */
const char *objstore_stat_meta(const struct objstore_stat *stat,
			       const char *name);

/* List keys that start with prefix ("" = all), in ascending byte order,
   paginating to completion.  delimiter is NULL or "/": keys with a '/' after
   the prefix are then rolled up into one is_prefix entry each. */
int objstore_list(struct objstore *store, const char *prefix,
		  const char *delimiter, objstore_list_cb *callback,
		  void *context);
/* objstore_list() of the keys after start_after (byte order; NULL = from
   the start), e.g. to resume a listing or to skip a known range: keys
   <= start_after are not listed (S3: start-after, one request saved per
   1,000 keys skipped).  No delimiter with start_after: where a rolled-up
   prefix would begin is not defined the same way by every store. */
int objstore_list_from(struct objstore *store, const char *prefix,
		       const char *start_after, objstore_list_cb *callback,
		       void *context);
/* objstore_list_from() whose first request asks for first_page_keys keys
   (the later ones for the store's page size; 0: the store's page size
   throughout): for a caller likely to stop early, as a LIST page takes
   longer the more keys it has (1,000 keys on the local Swift: ~85 ms more
   than 100).  A store without pages lists as objstore_list_from(). */
int objstore_list_paced(struct objstore *store, const char *prefix,
			const char *start_after, unsigned int first_page_keys,
			objstore_list_cb *callback, void *context);

/* Delete a key.  Deleting a missing key succeeds. */
int objstore_delete(struct objstore *store, const char *key);
/* Delete many keys (in batches where the backend supports it).  Missing
   keys succeed.  On failure, the keys not known to be deleted may or may
   not be. */
int objstore_delete_many(struct objstore *store, const char *const *keys,
			 unsigned int count);

/* Server-side copy of src to dst, data and metadata. */
int objstore_copy(struct objstore *store, const char *src_key,
		  const char *dst_key);

/* The calling thread's last error on any store. */
const char *objstore_error(void);
enum objstore_error objstore_errcode(void);
const char *objstore_error_name(enum objstore_error error);
const char *objstore_op_name(enum objstore_op op);

/* Counters since init, summed over all threads. */
void objstore_get_stats(struct objstore *store, struct objstore_stats *stats_r);

/* Return 0 if key is a valid key, else -1 with a reason in *error_r. */
int objstore_key_check(const char *key, const char **error_r);
/* Metadata values travel percent-encoded where the transport needs it (S3
   headers): '%', bytes outside 0x20..0x7e and leading, trailing or repeated
   spaces become %XX.  Backends encode with objstore_meta_must_encode(); a
   value is refused if longer than OBJSTORE_META_ENCODED_VALUE_MAX once
   encoded (Swift's limit).  objstore_meta_value_fits() tells callers in
   advance whether every backend accepts value. */
#define OBJSTORE_META_ENCODED_VALUE_MAX 256
bool objstore_meta_must_encode(const char *value, size_t i, size_t len);
size_t objstore_meta_encoded_len(const char *value);
bool objstore_meta_value_fits(const char *value);
/* Return 0 if name/value is valid user metadata, else -1 and *error_r. */
int objstore_meta_check(const struct objstore_meta *meta,
			unsigned int meta_count, const char **error_r);

#endif
