/* objstore-posix.c: the "file:///DIR" backend: its vtable and operations.
 * Each key is a file below the root directory (key segments are
 * directories).  Writes are atomic: the data goes to a temporary file in
 * <root>/.oboxfs-tmp (posix-tmp.c), gets its metadata (JSON in the
 * user.oboxfs.meta xattr, posix-meta.c) and is renamed into place.  Symlinks
 * are never followed (posix-path.c), metadata read back is validated like
 * any untrusted input, and listings walk the directories (posix-list.c). */
#include "objstore-private.h"
#include "posix-list.h"
#include "posix-meta.h"
#include "posix-path.h"
#include "posix-tmp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define TMP_DIR_NAME POSIX_TMP_DIR_NAME
#define META_XATTR POSIX_META_XATTR
#define IO_CHUNK (128 * 1024)
/* a concurrent delete may remove a parent directory we just created; each
   retry means another thread made progress, so this only bounds a livelock */
#define RENAME_RETRIES 1000

struct posix_store {
	struct objstore store;
	char *root;
	int root_fd, tmp_fd;
	bool no_fsync;
	_Atomic uint64_t tmp_counter;
};

static bool key_is_reserved(const char *key)
{
	size_t len = strlen(TMP_DIR_NAME);

	return strncmp(key, TMP_DIR_NAME, len) == 0 &&
		(key[len] == '\0' || key[len] == '/');
}

static int reserved_error(const char *op, const char *key)
{
	return objstore_set_error(OBJSTORE_ERR_INVALID,
		"%s(%s) failed: the key segment '" TMP_DIR_NAME
		"' is reserved by the file:// store", op, key);
}

/* map an errno from a filesystem call to a store error */
static int errno_error(int err, const char *op, const char *key,
		       const char *call)
{
	enum objstore_error code;

	switch (err) {
	case ENOENT:
	case ENOTDIR:
		return objstore_set_error(OBJSTORE_ERR_NOT_FOUND,
			"%s(%s) failed: no such key", op, key);
	case ELOOP:
	case EXDEV:
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
			"%s(%s) failed: %s: symlink in the path (not followed)",
			op, key, call);
	case ENAMETOOLONG:
		return objstore_set_error(OBJSTORE_ERR_INVALID,
			"%s(%s) failed: a key segment is longer than the "
			"filesystem allows (%s)", op, key, strerror(err));
	case EINTR:
	case EAGAIN:
	case ENOMEM:
		code = OBJSTORE_ERR_TRANSIENT;
		break;
	default:
		code = OBJSTORE_ERR_PERMANENT;
		break;
	}
	return objstore_set_error(code, "%s(%s) failed: %s failed: %s",
				  op, key, call, strerror(err));
}

/* fill stat from an open object file */
static int stat_fd(int fd, const char *op, const char *key,
		   struct objstore_stat *stat_r)
{
	char buf[POSIX_META_XATTR_MAX];
	const char *reason;
	struct stat st;
	ssize_t len;

	memset(stat_r, 0, sizeof(*stat_r));
	if (fstat(fd, &st) < 0)
		return errno_error(errno, op, key, "fstat()");
	if (!S_ISREG(st.st_mode))
		return errno_error(ENOENT, op, key, "open()");
	stat_r->size = (uint64_t)st.st_size;
	stat_r->mtime = st.st_mtim.tv_sec;
	len = fgetxattr(fd, META_XATTR, buf, sizeof(buf));
	if (len < 0) {
		if (errno == ENODATA)
			return 0;	/* placed there by hand: no metadata */
		if (errno == ERANGE) {
			return objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s(%s) failed: metadata xattr " META_XATTR
				" is too large", op, key);
		}
		return errno_error(errno, op, key, "fgetxattr()");
	}
	if (posix_meta_decode(buf, (size_t)len, stat_r, &reason) < 0) {
		objstore_stat_free(stat_r);
		return objstore_set_error(OBJSTORE_ERR_INVALID,
			"%s(%s) failed: invalid metadata in xattr " META_XATTR
			": %s", op, key, reason);
	}
	return 0;
}

/* ---- writing ---- */

static int write_all(int fd, const void *data, size_t size)
{
	const unsigned char *p = data;

	while (size > 0) {
		ssize_t ret = write(fd, p, size);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += ret;
		size -= (size_t)ret;
	}
	return 0;
}

/* copy size bytes from in_fd (from offset 0) to out_fd; -1 with errno, or
   EPIPE-like short source as errno = ENODATA */
static int copy_fd(int in_fd, int out_fd, uint64_t size)
{
	uint64_t done = 0;
	char *buf;

	buf = malloc(IO_CHUNK);
	if (buf == NULL)
		return -1;
	while (done < size) {
		size_t want = size - done > IO_CHUNK ? IO_CHUNK :
			(size_t)(size - done);
		ssize_t ret = pread(in_fd, buf, want, (off_t)done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0 || write_all(out_fd, buf, (size_t)ret) < 0) {
			if (ret == 0)
				errno = ENODATA;
			free(buf);
			return -1;
		}
		done += (uint64_t)ret;
	}
	free(buf);
	return 0;
}

/* rename tmp_name into the place of key, creating parent directories */
static int rename_into_place(struct posix_store *ps, const char *tmp_name,
			     const char *op, const char *key)
{
	const char *name;
	int dfd, err;

	for (int try = 0;; try++) {
		if (posix_open_parent(ps->root_fd, key, POSIX_PARENT_CREATE |
				      (ps->no_fsync ? 0 : POSIX_PARENT_SYNC),
				      &dfd, &name) < 0) {
			err = errno;
			if (err == ENOENT && try < RENAME_RETRIES) {
				sched_yield();
				continue;
			}
			if (err == ENOTDIR || err == EEXIST) {
				return objstore_set_error(OBJSTORE_ERR_INVALID,
					"%s(%s) failed: a parent of the key "
					"is an existing object", op, key);
			}
			return errno_error(err, op, key, "mkdir()");
		}
		if (renameat(ps->tmp_fd, tmp_name, dfd, name) == 0) {
			if (!ps->no_fsync && fsync(dfd) < 0) {
				err = errno;
				close(dfd);
				return errno_error(err, op, key, "fsync(dir)");
			}
			close(dfd);
			return 0;
		}
		err = errno;
		close(dfd);
		if (err == ENOENT && try < RENAME_RETRIES) {
			sched_yield();
			continue;
		}
		if (err == EISDIR || err == ENOTEMPTY || err == EEXIST) {
			return objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s(%s) failed: the key is an existing prefix "
				"(%s/...)", op, key, key);
		}
		return errno_error(err, op, key, "rename()");
	}
}

/* write the object: data from src_fd or src memory, then metadata, fsync,
   rename.  Frees nothing of the caller's. */
static int write_object(struct posix_store *ps, const char *op,
			const char *key, const struct objstore_source *src,
			const char *json)
{
	char tmp_name[128];
	int fd, ret = -1;

	fd = posix_tmp_create(ps->tmp_fd, &ps->tmp_counter, tmp_name,
			      sizeof(tmp_name));
	if (fd < 0)
		return errno_error(errno, op, key, "open(" TMP_DIR_NAME ")");
	if (src->data != NULL) {
		if (write_all(fd, src->data, src->size) < 0) {
			errno_error(errno, op, key, "write()");
			goto out;
		}
	} else if (copy_fd(src->fd, fd, src->size) < 0) {
		if (errno == ENODATA) {
			objstore_set_error(OBJSTORE_ERR_INVALID,
				"%s(%s) failed: source is shorter than %llu "
				"bytes", op, key,
				(unsigned long long)src->size);
		} else {
			errno_error(errno, op, key, "copy data");
		}
		goto out;
	}
	if (fsetxattr(fd, META_XATTR, json, strlen(json), 0) < 0) {
		errno_error(errno, op, key, "fsetxattr(" META_XATTR ")");
		goto out;
	}
	if (!ps->no_fsync && fdatasync(fd) < 0) {
		errno_error(errno, op, key, "fsync()");
		goto out;
	}
	ret = 0;
out:
	if (close(fd) < 0 && ret == 0)
		ret = errno_error(errno, op, key, "close()");
	if (ret == 0)
		ret = rename_into_place(ps, tmp_name, op, key);
	if (ret < 0)
		(void)unlinkat(ps->tmp_fd, tmp_name, 0);
	return ret;
}

static int posix_put(struct objstore *store, const char *key,
		     const struct objstore_source *src,
		     const struct objstore_meta *meta, unsigned int meta_count)
{
	struct posix_store *ps = (struct posix_store *)store;
	char *json;
	int ret;

	objstore_count_request(store, OBJSTORE_OP_PUT);
	if (key_is_reserved(key))
		return reserved_error("PUT", key);
	json = posix_meta_encode(meta, meta_count);
	if (json == NULL)
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
			"PUT(%s) failed: cannot encode metadata", key);
	ret = write_object(ps, "PUT", key, src, json);
	free(json);
	if (ret == 0)
		objstore_count_bytes(store, 0, src->size);
	return ret;
}

/* ---- reading ---- */

static int open_object(struct posix_store *ps, const char *op,
		       const char *key)
{
	int fd;

	if (key_is_reserved(key))
		return reserved_error(op, key);
	fd = posix_open_beneath(ps->root_fd, key, O_RDONLY);
	if (fd < 0)
		return errno_error(errno, op, key, "open()");
	return fd;
}

static int posix_get(struct objstore *store, const char *key, uint64_t offset,
		     uint64_t length, struct objstore_sink *sink)
{
	struct posix_store *ps = (struct posix_store *)store;
	uint64_t size, want, done = 0;
	struct stat st;
	char *buf = NULL;
	int fd, ret = -1;

	objstore_count_request(store, OBJSTORE_OP_GET);
	if ((fd = open_object(ps, "GET", key)) < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		errno_error(errno, "GET", key, "fstat()");
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		errno_error(ENOENT, "GET", key, "open()");
		goto out;
	}
	size = (uint64_t)st.st_size;
	want = offset >= size ? 0 : size - offset;
	if (length < want)
		want = length;
	if (sink->fd < 0 && want > sink->max_size) {
		objstore_set_error(OBJSTORE_ERR_TOO_BIG,
			"GET(%s) failed: %llu bytes, larger than the allowed "
			"%zu", key, (unsigned long long)want, sink->max_size);
		goto out;
	}
	if (want > 0 && (buf = malloc(IO_CHUNK)) == NULL) {
		objstore_set_error(OBJSTORE_ERR_TRANSIENT,
				   "GET(%s) failed: out of memory", key);
		goto out;
	}
	while (done < want) {
		size_t chunk = want - done > IO_CHUNK ? IO_CHUNK :
			(size_t)(want - done);
		ssize_t n = pread(fd, buf, chunk, (off_t)(offset + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errno_error(errno, "GET", key, "pread()");
			goto out;
		}
		if (n == 0)
			break;	/* cannot happen: objects are never rewritten */
		if (objstore_sink_write(sink, buf, (size_t)n) < 0) {
			enum objstore_error code = objstore_errcode();

			objstore_set_error(code, "GET(%s) failed: %s", key,
					   objstore_error());
			goto out;
		}
		done += (uint64_t)n;
	}
	ret = 0;
out:
	objstore_count_bytes(store, done, 0);
	free(buf);
	close(fd);
	return ret;
}

static int posix_head(struct objstore *store, const char *key,
		      struct objstore_stat *stat_r)
{
	struct posix_store *ps = (struct posix_store *)store;
	int fd, ret;

	objstore_count_request(store, OBJSTORE_OP_HEAD);
	if ((fd = open_object(ps, "HEAD", key)) < 0)
		return -1;
	ret = stat_fd(fd, "HEAD", key, stat_r);
	close(fd);
	return ret;
}

/* ---- listing ---- */

static int posix_list(struct objstore *store, const char *prefix,
		      const char *delimiter, const char *start_after,
		      unsigned int first_page_keys,
		      objstore_list_cb *callback, void *context)
{
	struct posix_store *ps = (struct posix_store *)store;
	const char *slash = strrchr(prefix, '/');
	char dir_key[OBJSTORE_KEY_MAX + 2] = "";
	int dfd, ret;

	(void)first_page_keys;	/* no pages: one directory read */
	objstore_count_request(store, OBJSTORE_OP_LIST);
	if (slash == NULL) {
		dfd = dup(ps->root_fd);
	} else {
		size_t dir_len = (size_t)(slash - prefix);

		memcpy(dir_key, prefix, dir_len);
		dir_key[dir_len] = '\0';
		if (key_is_reserved(dir_key))
			return 0;
		dfd = posix_open_beneath(ps->root_fd, dir_key,
					 O_RDONLY | O_DIRECTORY);
		if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
			return 0;
		dir_key[dir_len] = '/';
		dir_key[dir_len + 1] = '\0';
	}
	if (dfd < 0)
		return errno_error(errno, "LIST", prefix, "open()");
	ret = posix_list_dir(dfd, dir_key, slash == NULL ? prefix : slash + 1,
			     slash == NULL, delimiter != NULL, start_after,
			     callback, context);
	if (ret < 0)
		ret = errno_error(errno, "LIST", prefix, "readdir()");
	close(dfd);
	return ret;
}

/* ---- delete and copy ---- */

/* remove the now-empty parent directories of key, deepest first; a
   concurrent put may fill one again, which simply stops this */
static void remove_empty_parents(struct posix_store *ps, const char *key)
{
	char path[OBJSTORE_KEY_MAX + 1];
	const char *name;
	char *slash;
	int dfd;

	strcpy(path, key);
	while ((slash = strrchr(path, '/')) != NULL) {
		*slash = '\0';
		if (posix_open_parent(ps->root_fd, path, 0, &dfd,
				      &name) < 0)
			return;
		int ret = unlinkat(dfd, name, AT_REMOVEDIR);

		close(dfd);
		if (ret < 0)
			return;
	}
}

static int posix_delete(struct objstore *store, const char *key)
{
	struct posix_store *ps = (struct posix_store *)store;
	const char *name;
	int dfd, err;

	objstore_count_request(store, OBJSTORE_OP_DELETE);
	if (key_is_reserved(key))
		return reserved_error("DELETE", key);
	if (posix_open_parent(ps->root_fd, key, 0, &dfd, &name) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return errno_error(errno, "DELETE", key, "open(parent)");
	}
	if (unlinkat(dfd, name, 0) < 0) {
		err = errno;
		close(dfd);
		/* EISDIR: key is only a prefix, so no such object */
		if (err == ENOENT || err == EISDIR)
			return 0;
		return errno_error(err, "DELETE", key, "unlink()");
	}
	close(dfd);
	remove_empty_parents(ps, key);
	return 0;
}

static int posix_copy(struct objstore *store, const char *src_key,
		      const char *dst_key)
{
	struct posix_store *ps = (struct posix_store *)store;
	struct objstore_stat st;
	struct objstore_source src;
	char *json;
	int fd, ret;

	objstore_count_request(store, OBJSTORE_OP_COPY);
	if (key_is_reserved(dst_key))
		return reserved_error("COPY", dst_key);
	if ((fd = open_object(ps, "COPY", src_key)) < 0)
		return -1;
	if (stat_fd(fd, "COPY", src_key, &st) < 0) {
		close(fd);
		return -1;
	}
	json = posix_meta_encode(st.meta, st.meta_count);
	src = (struct objstore_source){ .fd = fd, .size = st.size };
	objstore_stat_free(&st);
	if (json == NULL) {
		close(fd);
		return objstore_set_error(OBJSTORE_ERR_PERMANENT,
			"COPY(%s) failed: cannot encode metadata", src_key);
	}
	ret = write_object(ps, "COPY", dst_key, &src, json);
	free(json);
	close(fd);
	return ret;
}

/* ---- init ---- */

static struct objstore *posix_alloc(void)
{
	struct posix_store *ps = calloc(1, sizeof(*ps));

	if (ps == NULL)
		return NULL;
	ps->root_fd = -1;
	ps->tmp_fd = -1;
	return &ps->store;
}

static int posix_init(struct objstore *store, const char *location,
		      const struct objstore_settings *set, const char **error_r)
{
	static _Thread_local char errbuf[1024];
	struct posix_store *ps = (struct posix_store *)store;
	char probe[128];
	int fd;

	ps->no_fsync = set->no_fsync;
	if (location[0] != '/') {
		snprintf(errbuf, sizeof(errbuf), "file:// store needs an "
			 "absolute path (file:///DIR), got 'file://%.200s'",
			 location);
		goto fail;
	}
	if ((ps->root = strdup(location)) == NULL) {
		snprintf(errbuf, sizeof(errbuf), "out of memory");
		goto fail;
	}
	ps->root_fd = open(location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ps->root_fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%.200s) failed: %s",
			 location, strerror(errno));
		goto fail;
	}
	if (faccessat(ps->root_fd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		snprintf(errbuf, sizeof(errbuf), "store directory %.200s is "
			 "not writable: %s", location, strerror(errno));
		goto fail;
	}
	if (mkdirat(ps->root_fd, TMP_DIR_NAME, 0700) < 0 && errno != EEXIST) {
		snprintf(errbuf, sizeof(errbuf), "mkdir(%.200s/" TMP_DIR_NAME
			 ") failed: %s", location, strerror(errno));
		goto fail;
	}
	ps->tmp_fd = openat(ps->root_fd, TMP_DIR_NAME, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
	if (ps->tmp_fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%.200s/" TMP_DIR_NAME
			 ") failed: %s", location, strerror(errno));
		goto fail;
	}
	/* leftovers of crashed writers; young files may be in use */
	(void)posix_tmp_clean(ps->tmp_fd, time(NULL) - POSIX_TMP_STALE_SECS);
	/* metadata lives in xattrs: check that they work here */
	fd = posix_tmp_create(ps->tmp_fd, &ps->tmp_counter, probe,
			      sizeof(probe));
	if (fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "creating a file in "
			 "%.200s/" TMP_DIR_NAME " failed: %s", location,
			 strerror(errno));
		goto fail;
	}
	int ret = fsetxattr(fd, META_XATTR, "{}", 2, 0);
	int err = errno;

	close(fd);
	(void)unlinkat(ps->tmp_fd, probe, 0);
	if (ret < 0) {
		snprintf(errbuf, sizeof(errbuf), "the filesystem of %.200s "
			 "does not support user xattrs (needed for object "
			 "metadata): fsetxattr() failed: %s", location,
			 strerror(err));
		goto fail;
	}
	return 0;
fail:
	*error_r = errbuf;
	return -1;
}

static void posix_deinit(struct objstore *store)
{
	struct posix_store *ps = (struct posix_store *)store;

	if (ps->tmp_fd >= 0)
		close(ps->tmp_fd);
	if (ps->root_fd >= 0)
		close(ps->root_fd);
	free(ps->root);
	free(ps);
}

const struct objstore_class objstore_class_posix = {
	.name = "posix",
	.alloc = posix_alloc,
	.init = posix_init,
	.deinit = posix_deinit,
	.v = {
		.put = posix_put,
		.get = posix_get,
		.head = posix_head,
		.list = posix_list,
		.delete_key = posix_delete,
		.copy = posix_copy,
	},
};
