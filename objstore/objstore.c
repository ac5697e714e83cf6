/* objstore.c: the backend-independent part of the object-store API: URL
 * dispatch, argument validation, per-thread errors, request counters, and the
 * memory/fd sinks that backends write downloaded bytes into. */
#include "objstore-private.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERROR_MSG_MAX 1024

static _Thread_local char error_msg[ERROR_MSG_MAX];
static _Thread_local enum objstore_error error_code;

static const char *const error_names[] = {
	[OBJSTORE_ERR_NONE] = "none",
	[OBJSTORE_ERR_NOT_FOUND] = "not-found",
	[OBJSTORE_ERR_TRANSIENT] = "transient",
	[OBJSTORE_ERR_THROTTLED] = "throttled",
	[OBJSTORE_ERR_AUTH] = "auth",
	[OBJSTORE_ERR_INVALID] = "invalid",
	[OBJSTORE_ERR_TOO_BIG] = "too-big",
	[OBJSTORE_ERR_PERMANENT] = "permanent",
};

static const char *const op_names[OBJSTORE_OP_COUNT] = {
	[OBJSTORE_OP_PUT] = "PUT",
	[OBJSTORE_OP_GET] = "GET",
	[OBJSTORE_OP_HEAD] = "HEAD",
	[OBJSTORE_OP_LIST] = "LIST",
	[OBJSTORE_OP_DELETE] = "DELETE",
	[OBJSTORE_OP_COPY] = "COPY",
};

const char *objstore_error_name(enum objstore_error error)
{
	if ((unsigned int)error >= sizeof(error_names) / sizeof(error_names[0]))
		return "unknown";
	return error_names[error];
}

const char *objstore_op_name(enum objstore_op op)
{
	if ((unsigned int)op >= OBJSTORE_OP_COUNT)
		return "unknown";
	return op_names[op];
}

int objstore_error_errno(enum objstore_error error)
{
	switch (error) {
	case OBJSTORE_ERR_NONE:
		return 0;
	case OBJSTORE_ERR_NOT_FOUND:
		return ENOENT;
	case OBJSTORE_ERR_TRANSIENT:
		return EAGAIN;
	case OBJSTORE_ERR_THROTTLED:
		return EBUSY;
	case OBJSTORE_ERR_AUTH:
		return EACCES;
	case OBJSTORE_ERR_INVALID:
		return EINVAL;
	case OBJSTORE_ERR_TOO_BIG:
		return EFBIG;
	case OBJSTORE_ERR_PERMANENT:
		break;
	}
	return EIO;
}

int objstore_set_errorv(enum objstore_error error, const char *fmt,
			va_list args)
{
	vsnprintf(error_msg, sizeof(error_msg), fmt, args);
	error_code = error;
	errno = objstore_error_errno(error);
	return -1;
}

int objstore_set_error(enum objstore_error error, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	objstore_set_errorv(error, fmt, args);
	va_end(args);
	return -1;
}

void objstore_error_save(enum objstore_error *error_r, char **message_r)
{
	*error_r = error_code;
	*message_r = strdup(error_msg);
}

const char *objstore_error(void)
{
	return error_msg;
}

enum objstore_error objstore_errcode(void)
{
	return error_code;
}

/* the innermost store holds the counters: pass-through layers send nothing
   themselves */
static struct objstore *stats_store(struct objstore *store)
{
	while (store->parent != NULL)
		store = store->parent;
	return store;
}

void objstore_count_request(struct objstore *store, enum objstore_op op)
{
	atomic_fetch_add(&stats_store(store)->requests[op], 1);
}

void objstore_count_retry(struct objstore *store)
{
	atomic_fetch_add(&stats_store(store)->retries, 1);
}

void objstore_count_bytes(struct objstore *store, uint64_t in, uint64_t out)
{
	store = stats_store(store);
	atomic_fetch_add(&store->bytes_in, in);
	atomic_fetch_add(&store->bytes_out, out);
}

void objstore_get_stats(struct objstore *store, struct objstore_stats *stats_r)
{
	store = stats_store(store);
	for (unsigned int i = 0; i < OBJSTORE_OP_COUNT; i++)
		stats_r->requests[i] = atomic_load(&store->requests[i]);
	stats_r->retries = atomic_load(&store->retries);
	stats_r->errors = atomic_load(&store->errors);
	stats_r->bytes_in = atomic_load(&store->bytes_in);
	stats_r->bytes_out = atomic_load(&store->bytes_out);
}

/* counts a failed operation once, at the outermost layer */
static int op_result(struct objstore *store, int ret)
{
	if (ret < 0) {
		int saved_errno = errno;

		atomic_fetch_add(&stats_store(store)->errors, 1);
		errno = saved_errno;
	}
	return ret;
}

int objstore_key_check(const char *key, const char **error_r)
{
	size_t len = strlen(key), seg_start = 0;

	if (len == 0) {
		*error_r = "empty key";
		return -1;
	}
	if (len > OBJSTORE_KEY_MAX) {
		*error_r = "key too long";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (c != '\0' && c != '/') {
			if (c < 0x20 || c == 0x7f) {
				*error_r = "control character in key";
				return -1;
			}
			continue;
		}
		size_t seg_len = i - seg_start;
		const char *seg = key + seg_start;

		if (seg_len == 0) {
			*error_r = "empty segment in key";
			return -1;
		}
		if ((seg_len == 1 && seg[0] == '.') ||
		    (seg_len == 2 && seg[0] == '.' && seg[1] == '.')) {
			*error_r = "'.' or '..' segment in key";
			return -1;
		}
		seg_start = i + 1;
	}
	return 0;
}

/* prefixes may end in '/' (and may be empty) but are otherwise keys */
static int prefix_check(const char *prefix, const char **error_r)
{
	size_t len = strlen(prefix);
	char buf[OBJSTORE_KEY_MAX + 1];

	if (len == 0)
		return 0;
	if (len > OBJSTORE_KEY_MAX) {
		*error_r = "prefix too long";
		return -1;
	}
	memcpy(buf, prefix, len + 1);
	if (buf[len - 1] == '/')
		buf[len - 1] = '\0';
	if (buf[0] == '\0') {
		*error_r = "empty segment in prefix";
		return -1;
	}
	/* a prefix may end in a partial segment such as "." */
	char *last = strrchr(buf, '/');
	char *tail = last != NULL ? last + 1 : buf;

	if (strcmp(tail, ".") == 0 || strcmp(tail, "..") == 0) {
		if (prefix[len - 1] == '/') {
			*error_r = "'.' or '..' segment in prefix";
			return -1;
		}
		*tail = '\0';
		if (last != NULL)
			*last = '\0';
		if (buf[0] == '\0')
			return 0;
	}
	return objstore_key_check(buf, error_r);
}

bool objstore_meta_must_encode(const char *value, size_t i, size_t len)
{
	unsigned char c = (unsigned char)value[i];

	return c == '%' || c < 0x20 || c > 0x7e ||
		(c == ' ' && (i == 0 || i == len - 1 || value[i - 1] == ' '));
}

size_t objstore_meta_encoded_len(const char *value)
{
	size_t len = strlen(value), out = 0;

	for (size_t i = 0; i < len; i++)
		out += objstore_meta_must_encode(value, i, len) ? 3 : 1;
	return out;
}

bool objstore_meta_value_fits(const char *value)
{
	return strlen(value) <= OBJSTORE_META_VALUE_MAX &&
		objstore_meta_encoded_len(value) <=
		OBJSTORE_META_ENCODED_VALUE_MAX;
}

int objstore_meta_check(const struct objstore_meta *meta,
			unsigned int meta_count, const char **error_r)
{
	size_t total = 0;

	if (meta_count > OBJSTORE_META_MAX_PAIRS) {
		*error_r = "too many metadata pairs";
		return -1;
	}
	for (unsigned int i = 0; i < meta_count; i++) {
		size_t nlen = strlen(meta[i].name);
		size_t vlen = strlen(meta[i].value);

		if (nlen == 0 || nlen > OBJSTORE_META_NAME_MAX) {
			*error_r = "metadata name empty or too long";
			return -1;
		}
		for (size_t j = 0; j < nlen; j++) {
			char c = meta[i].name[j];

			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			      c == '-')) {
				*error_r = "metadata name not [a-z0-9-]";
				return -1;
			}
		}
		if (vlen > OBJSTORE_META_VALUE_MAX) {
			*error_r = "metadata value too long";
			return -1;
		}
		for (unsigned int j = 0; j < i; j++) {
			if (strcmp(meta[i].name, meta[j].name) == 0) {
				*error_r = "duplicate metadata name";
				return -1;
			}
		}
		total += nlen + vlen;
	}
	if (total > OBJSTORE_META_TOTAL_MAX) {
		*error_r = "metadata too large";
		return -1;
	}
	return 0;
}

static int check_key(const char *op, const char *key)
{
	const char *reason;

	if (key == NULL)
		return objstore_set_error(OBJSTORE_ERR_INVALID,
					  "%s(NULL) failed: no key", op);
	if (objstore_key_check(key, &reason) < 0)
		return objstore_set_error(OBJSTORE_ERR_INVALID,
					  "%s(%.*s) failed: invalid key: %s", op,
					  200, key, reason);
	return 0;
}

int objstore_init(const char *url, const struct objstore_settings *set,
		  struct objstore **store_r, const char **error_r)
{
	static const struct objstore_settings default_set;
	static _Thread_local char errbuf[ERROR_MSG_MAX];
	const struct objstore_class *class;
	const char *location;
	struct objstore *store, *fault;
	const char *error;

	*store_r = NULL;
	if (set == NULL)
		set = &default_set;
	if (strncmp(url, "file://", 7) == 0) {
		class = &objstore_class_posix;
		location = url + 7;
	} else if (strncmp(url, "s3://", 5) == 0) {
		class = &objstore_class_s3;
		location = url + 5;
	} else {
		snprintf(errbuf, sizeof(errbuf),
			 "invalid store URL '%.200s': expected file:///DIR or "
			 "s3://BUCKET[/PREFIX]", url);
		*error_r = errbuf;
		return -1;
	}

	store = class->alloc();
	if (store == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	store->class = class;
	if (class->init(store, location, set, &error) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s", error);
		*error_r = errbuf;
		class->deinit(store);
		return -1;
	}
	if (set->fault != NULL && set->fault[0] != '\0') {
		fault = objstore_class_fault.alloc();
		if (fault == NULL) {
			class->deinit(store);
			*error_r = "out of memory";
			return -1;
		}
		fault->class = &objstore_class_fault;
		fault->parent = store;
		if (objstore_class_fault.init(fault, set->fault, set,
					      &error) < 0) {
			snprintf(errbuf, sizeof(errbuf), "%s", error);
			*error_r = errbuf;
			objstore_deinit(&fault);
			return -1;
		}
		store = fault;
	}
	*store_r = store;
	return 0;
}

void objstore_deinit(struct objstore **_store)
{
	struct objstore *store = *_store, *parent;

	if (store == NULL)
		return;
	*_store = NULL;
	while (store != NULL) {
		parent = store->parent;
		store->class->deinit(store);
		store = parent;
	}
}

int objstore_put(struct objstore *store, const char *key, const void *data,
		 size_t size, const struct objstore_meta *meta,
		 unsigned int meta_count)
{
	struct objstore_source src = { .data = data, .fd = -1, .size = size };
	const char *reason;

	if (check_key("PUT", key) < 0)
		return op_result(store, -1);
	if (data == NULL && size > 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "PUT(%s) failed: no data", key));
	if (data == NULL)
		src.data = "";
	if (objstore_meta_check(meta, meta_count, &reason) < 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "PUT(%s) failed: %s", key, reason));
	return op_result(store, store->class->v.put(store, key, &src, meta,
						    meta_count));
}

int objstore_put_fd(struct objstore *store, const char *key, int fd,
		    uint64_t size, const struct objstore_meta *meta,
		    unsigned int meta_count)
{
	struct objstore_source src = { .data = NULL, .fd = fd, .size = size };
	const char *reason;

	if (check_key("PUT", key) < 0)
		return op_result(store, -1);
	if (fd < 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "PUT(%s) failed: bad fd", key));
	if (objstore_meta_check(meta, meta_count, &reason) < 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "PUT(%s) failed: %s", key, reason));
	return op_result(store, store->class->v.put(store, key, &src, meta,
						    meta_count));
}

int objstore_get(struct objstore *store, const char *key, uint64_t offset,
		 uint64_t length, size_t max_size, void **data_r,
		 size_t *size_r)
{
	struct objstore_sink sink = { .fd = -1, .max_size = max_size };

	*data_r = NULL;
	*size_r = 0;
	if (check_key("GET", key) < 0)
		return op_result(store, -1);
	if (length != 0 &&
	    store->class->v.get(store, key, offset, length, &sink) < 0) {
		free(sink.buf);
		return op_result(store, -1);
	}
	if (sink.buf == NULL) {
		/* length 0 or empty object: still check that it exists */
		if (sink.used == 0 && length == 0) {
			struct objstore_stat st;

			if (store->class->v.head(store, key, &st) < 0)
				return op_result(store, -1);
			objstore_stat_free(&st);
		}
		sink.buf = calloc(1, 1);
		if (sink.buf == NULL)
			return op_result(store, objstore_set_error(
				OBJSTORE_ERR_PERMANENT, "GET(%s) failed: "
				"out of memory", key));
	}
	sink.buf[sink.used] = '\0';
	*data_r = sink.buf;
	*size_r = sink.used;
	return 0;
}

int objstore_get_fd(struct objstore *store, const char *key, uint64_t offset,
		    uint64_t length, int fd, off_t fd_offset, uint64_t *size_r)
{
	struct objstore_sink sink = { .fd = fd, .fd_offset = fd_offset };

	*size_r = 0;
	if (check_key("GET", key) < 0)
		return op_result(store, -1);
	if (fd < 0 || fd_offset < 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "GET(%s) failed: bad fd", key));
	if (length == 0) {
		struct objstore_stat st;

		if (store->class->v.head(store, key, &st) < 0)
			return op_result(store, -1);
		objstore_stat_free(&st);
		return 0;
	}
	if (store->class->v.get(store, key, offset, length, &sink) < 0)
		return op_result(store, -1);
	*size_r = sink.used;
	return 0;
}

int objstore_head(struct objstore *store, const char *key,
		  struct objstore_stat *stat_r)
{
	memset(stat_r, 0, sizeof(*stat_r));
	if (check_key("HEAD", key) < 0)
		return op_result(store, -1);
	if (store->class->v.head(store, key, stat_r) < 0) {
		objstore_stat_free(stat_r);
		return op_result(store, -1);
	}
	return 0;
}

void objstore_stat_free(struct objstore_stat *stat)
{
	for (unsigned int i = 0; i < stat->meta_count; i++) {
		free((char *)stat->meta[i].name);
		free((char *)stat->meta[i].value);
	}
	free(stat->meta);
	stat->meta = NULL;
	stat->meta_count = 0;
}

const char *objstore_stat_meta(const struct objstore_stat *stat,
			       const char *name)
{
	for (unsigned int i = 0; i < stat->meta_count; i++) {
		if (strcmp(stat->meta[i].name, name) == 0)
			return stat->meta[i].value;
	}
	return NULL;
}

int objstore_stat_set_meta(struct objstore_stat *stat,
			   const struct objstore_meta *meta,
			   unsigned int meta_count)
{
	objstore_stat_free(stat);
	if (meta_count == 0)
		return 0;
	stat->meta = calloc(meta_count, sizeof(*stat->meta));
	if (stat->meta == NULL)
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
					  "out of memory");
	for (unsigned int i = 0; i < meta_count; i++) {
		char *name = strdup(meta[i].name);
		char *value = strdup(meta[i].value);

		if (name == NULL || value == NULL) {
			free(name);
			free(value);
			return objstore_set_error(OBJSTORE_ERR_PERMANENT,
						  "out of memory");
		}
		for (char *p = name; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		stat->meta[i].name = name;
		stat->meta[i].value = value;
		stat->meta_count = i + 1;
	}
	return 0;
}

/* objstore_list() and objstore_list_from(): the arguments checked, then
   the backend (start_after never comes with a delimiter) */
static int list_run(struct objstore *store, const char *prefix,
		    const char *delimiter, const char *start_after,
		    unsigned int first_page_keys,
		    objstore_list_cb *callback, void *context)
{
	const char *reason;

	if (prefix == NULL)
		prefix = "";
	if (prefix_check(prefix, &reason) < 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "LIST(%.200s) failed: invalid prefix: %s",
				 prefix, reason));
	if (delimiter != NULL && strcmp(delimiter, "/") != 0)
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "LIST(%s) failed: only '/' is supported as "
				 "delimiter", prefix));
	if (start_after != NULL &&
	    (prefix_check(start_after, &reason) < 0 ||
	     strncmp(start_after, prefix, strlen(prefix)) != 0))
		return op_result(store, objstore_set_error(OBJSTORE_ERR_INVALID,
				 "LIST(%.200s) failed: start-after %.200s is "
				 "not a key below the prefix", prefix,
				 start_after));
	return op_result(store, store->class->v.list(store, prefix, delimiter,
						     start_after,
						     first_page_keys,
						     callback, context));
}

int objstore_list(struct objstore *store, const char *prefix,
		  const char *delimiter, objstore_list_cb *callback,
		  void *context)
{
	return list_run(store, prefix, delimiter, NULL, 0, callback, context);
}

int objstore_list_from(struct objstore *store, const char *prefix,
		       const char *start_after, objstore_list_cb *callback,
		       void *context)
{
	return list_run(store, prefix, NULL, start_after, 0, callback,
			context);
}

int objstore_list_paced(struct objstore *store, const char *prefix,
			const char *start_after, unsigned int first_page_keys,
			objstore_list_cb *callback, void *context)
{
	return list_run(store, prefix, NULL, start_after, first_page_keys,
			callback, context);
}

int objstore_delete(struct objstore *store, const char *key)
{
	if (check_key("DELETE", key) < 0)
		return op_result(store, -1);
	return op_result(store, store->class->v.delete_key(store, key));
}

int objstore_delete_many(struct objstore *store, const char *const *keys,
			 unsigned int count)
{
	for (unsigned int i = 0; i < count; i++) {
		if (check_key("DELETE", keys[i]) < 0)
			return op_result(store, -1);
	}
	if (count == 0)
		return 0;
	if (store->class->v.delete_many != NULL) {
		return op_result(store, store->class->v.delete_many(
					store, keys, count));
	}
	for (unsigned int i = 0; i < count; i++) {
		if (store->class->v.delete_key(store, keys[i]) < 0)
			return op_result(store, -1);
	}
	return 0;
}

int objstore_copy(struct objstore *store, const char *src_key,
		  const char *dst_key)
{
	if (check_key("COPY", src_key) < 0 || check_key("COPY", dst_key) < 0)
		return op_result(store, -1);
	return op_result(store, store->class->v.copy(store, src_key, dst_key));
}

int objstore_sink_write(struct objstore_sink *sink, const void *data,
			size_t size)
{
	if (size == 0)
		return 0;
	if (sink->fd >= 0) {
		const unsigned char *p = data;
		size_t done = 0;

		while (done < size) {
			ssize_t ret = pwrite(sink->fd, p + done, size - done,
					     sink->fd_offset +
					     (off_t)(sink->used + done));
			if (ret < 0) {
				if (errno == EINTR)
					continue;
				return objstore_set_error(
					OBJSTORE_ERR_PERMANENT,
					"pwrite() failed: %s", strerror(errno));
			}
			done += (size_t)ret;
		}
		sink->used += size;
		return 0;
	}
	if (sink->used + size > sink->max_size) {
		return objstore_set_error(OBJSTORE_ERR_TOO_BIG,
			"object larger than the allowed %zu bytes",
			sink->max_size);
	}
	/* +1 for the terminating NUL objstore_get() adds */
	if (sink->used + size + 1 > sink->alloc) {
		size_t new_alloc = sink->alloc == 0 ? 4096 : sink->alloc;

		while (new_alloc < sink->used + size + 1)
			new_alloc *= 2;
		if (new_alloc > sink->max_size + 1)
			new_alloc = sink->max_size + 1;
		unsigned char *buf = realloc(sink->buf, new_alloc);

		if (buf == NULL)
			return objstore_set_error(OBJSTORE_ERR_PERMANENT,
						  "out of memory");
		sink->buf = buf;
		sink->alloc = new_alloc;
	}
	memcpy(sink->buf + sink->used, data, size);
	sink->used += size;
	return 0;
}

void objstore_sink_reset(struct objstore_sink *sink)
{
	sink->used = 0;
}
