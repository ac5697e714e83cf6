/* mailcache.c: unbounded mail object cache (see mailcache.h). */
#include "mailcache.h"
#include "ids.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A GET in progress; the threads missing the same object wait for it and
   share its result (a failure is not retried by each of them in turn). */
struct fetch {
	struct fetch *next;	/* in mc->fetches while in progress */
	char oid[IDS_HEX_LEN + 1];
	unsigned int refs;	/* the fetching thread and its waiters */
	bool done;
	bool discard;		/* the object was released meanwhile: drop
				   what was fetched */
	int ret, err;		/* the result once done */
};

struct mailcache {
	int dir_fd;
	struct objstore *store;
	pthread_mutex_t lock;
	pthread_cond_t fetch_done;
	struct fetch *fetches;		/* protected by lock */
	struct mailcache_stats stats;	/* protected by lock */
};

int mailcache_init(const char *dir, struct objstore *store,
		   struct mailcache **mc_r, const char **error_r)
{
	static __thread char errbuf[512];
	struct mailcache *mc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(errbuf, sizeof(errbuf), "mkdir(%s) failed: %s",
			 dir, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	mc = calloc(1, sizeof(*mc));
	if (mc == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	mc->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mc->dir_fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%s) failed: %s",
			 dir, strerror(errno));
		*error_r = errbuf;
		free(mc);
		return -1;
	}
	mc->store = store;
	pthread_mutex_init(&mc->lock, NULL);
	pthread_cond_init(&mc->fetch_done, NULL);
	*mc_r = mc;
	return 0;
}

void mailcache_deinit(struct mailcache **_mc)
{
	struct mailcache *mc = *_mc;

	if (mc == NULL)
		return;
	*_mc = NULL;
	close(mc->dir_fd);
	pthread_mutex_destroy(&mc->lock);
	pthread_cond_destroy(&mc->fetch_done);
	free(mc);
}

/* "<2 hex>/<oid>" of key in buf, creating the subdirectory if mkdir_dir */
static int cache_name(struct mailcache *mc, const char *key, bool mkdir_dir,
		      char buf[IDS_HEX_LEN + 4])
{
	const char *oid = ids_key_oid(key);

	if (oid == NULL) {
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, oid, 2);
	buf[2] = '\0';
	if (mkdir_dir && mkdirat(mc->dir_fd, buf, 0700) < 0 && errno != EEXIST)
		return -1;
	buf[2] = '/';
	memcpy(buf + 3, oid, IDS_HEX_LEN + 1);
	return 0;
}

/* write size bytes of fd into a new cache file name (temp + rename) */
static int copy_in(struct mailcache *mc, const char *name, int fd,
		   uint64_t size)
{
	char tmp[IDS_HEX_LEN + 32], rnd[IDS_HEX_LEN + 1];
	char buf[65536];
	uint64_t off = 0;
	int out;

	if (ids_generate(rnd) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%.2s/.tmp.%s", name, rnd);
	out = openat(mc->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		     0600);
	if (out < 0)
		return -1;
	while (off < size) {
		size_t want = size - off < sizeof(buf) ? size - off : sizeof(buf);
		ssize_t ret = pread(fd, buf, want, (off_t)off);

		if (ret <= 0) {
			if (ret == 0)
				errno = EIO;	/* file shrank */
			goto fail;
		}
		if (write(out, buf, (size_t)ret) != ret) {
			if (errno == 0)
				errno = ENOSPC;
			goto fail;
		}
		off += (uint64_t)ret;
	}
	if (close(out) < 0) {
		out = -1;
		goto fail;
	}
	if (renameat(mc->dir_fd, tmp, mc->dir_fd, name) < 0) {
		int saved = errno;

		unlinkat(mc->dir_fd, tmp, 0);
		errno = saved;
		return -1;
	}
	return 0;
fail:;
	int saved = errno;

	if (out >= 0)
		close(out);
	unlinkat(mc->dir_fd, tmp, 0);
	errno = saved;
	return -1;
}

int mailcache_add_fd(struct mailcache *mc, const char *key, int fd,
		     uint64_t size)
{
	char name[IDS_HEX_LEN + 4];

	if (cache_name(mc, key, true, name) < 0)
		return -1;
	return copy_in(mc, name, fd, size);
}

static int fetch(struct mailcache *mc, const char *key, const char *name,
		 uint64_t size)
{
	char tmp[IDS_HEX_LEN + 32], rnd[IDS_HEX_LEN + 1];
	uint64_t got;
	int fd;

	if (ids_generate(rnd) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%.2s/.tmp.%s", name, rnd);
	fd = openat(mc->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -1;
	if (objstore_get_fd(mc->store, key, 0, OBJSTORE_TO_END, fd, 0,
			    &got) < 0) {
		fuse_log(FUSE_LOG_ERR, "mail cache: %s\n", objstore_error());
		goto fail;
	}
	if (got != size) {
		fuse_log(FUSE_LOG_ERR, "mail cache: object %s has %" PRIu64
			 " bytes, its stub says %" PRIu64 "\n", key, got, size);
		goto fail;
	}
	close(fd);
	if (renameat(mc->dir_fd, tmp, mc->dir_fd, name) < 0) {
		unlinkat(mc->dir_fd, tmp, 0);
		errno = EIO;
		return -1;
	}
	return 0;
fail:
	close(fd);
	unlinkat(mc->dir_fd, tmp, 0);
	errno = EIO;
	return -1;
}

int mailcache_open(struct mailcache *mc, const char *key, uint64_t size,
		   int *fd_r)
{
	char name[IDS_HEX_LEN + 4];
	struct fetch *f, **fp;
	bool counted = false;
	int ret;

	if (cache_name(mc, key, true, name) < 0)
		return -1;
	for (;;) {
		int fd = openat(mc->dir_fd, name, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			if (!counted) {
				pthread_mutex_lock(&mc->lock);
				mc->stats.hits++;
				pthread_mutex_unlock(&mc->lock);
			}
			*fd_r = fd;
			return 0;
		}
		if (errno != ENOENT)
			return -1;

		/* miss: fetch it unless another thread already does */
		pthread_mutex_lock(&mc->lock);
		for (f = mc->fetches; f != NULL; f = f->next) {
			if (strcmp(f->oid, name + 3) == 0)
				break;
		}
		if (f != NULL) {
			f->refs++;
			while (!f->done)
				pthread_cond_wait(&mc->fetch_done, &mc->lock);
			ret = f->ret;
			int err = f->err;

			if (--f->refs == 0)
				free(f);
			pthread_mutex_unlock(&mc->lock);
			if (ret < 0) {
				errno = err;
				return -1;
			}
			continue;	/* fetched: open it */
		}
		f = calloc(1, sizeof(*f));
		if (f == NULL) {
			pthread_mutex_unlock(&mc->lock);
			errno = ENOMEM;
			return -1;
		}
		memcpy(f->oid, name + 3, IDS_HEX_LEN + 1);
		f->refs = 1;
		f->next = mc->fetches;
		mc->fetches = f;
		mc->stats.misses++;
		counted = true;
		pthread_mutex_unlock(&mc->lock);

		ret = fetch(mc, key, name, size);
		int saved = errno;

		pthread_mutex_lock(&mc->lock);
		for (fp = &mc->fetches; *fp != f; fp = &(*fp)->next) ;
		*fp = f->next;
		if (ret == 0 && f->discard) {
			/* released while we fetched (see mailcache_remove()) */
			(void)unlinkat(mc->dir_fd, name, 0);
			ret = -1;
			saved = ENOENT;
		}
		if (ret < 0)
			mc->stats.fetch_errors++;
		f->done = true;
		f->ret = ret;
		f->err = saved;
		pthread_cond_broadcast(&mc->fetch_done);
		if (--f->refs == 0)
			free(f);
		pthread_mutex_unlock(&mc->lock);
		if (ret < 0) {
			errno = saved;
			return -1;
		}
	}
}

void mailcache_remove(struct mailcache *mc, const char *key)
{
	char name[IDS_HEX_LEN + 4];

	if (cache_name(mc, key, false, name) < 0)
		return;
	/* a fetch in progress would put the file back after the unlink:
	   it drops it instead (it renames it into place before taking the
	   lock, so a fetch not found here has already done that) */
	pthread_mutex_lock(&mc->lock);
	for (struct fetch *f = mc->fetches; f != NULL; f = f->next) {
		if (strcmp(f->oid, name + 3) == 0)
			f->discard = true;
	}
	pthread_mutex_unlock(&mc->lock);
	if (unlinkat(mc->dir_fd, name, 0) < 0 && errno != ENOENT) {
		fuse_log(FUSE_LOG_WARNING, "mail cache: unlink(%s) failed: %s\n",
			 name, strerror(errno));
	}
}

void mailcache_get_stats(struct mailcache *mc, struct mailcache_stats *stats_r)
{
	pthread_mutex_lock(&mc->lock);
	*stats_r = mc->stats;
	pthread_mutex_unlock(&mc->lock);
}
