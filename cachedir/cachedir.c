/* cachedir.c: the size-capped LRU mail cache (see cachedir.h): lookups,
 * single-flight fetches, adds, space reservation and eviction. */
#include "cachedir-private.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fetch or add in progress.  Threads missing the same object wait for it
   and share its result. */
struct cachedir_flight {
	struct cachedir_flight *next;
	uint8_t id[CACHEDIR_ID_LEN];
	unsigned int refs;	/* the writer and its waiters */
	bool is_add;		/* an add: waiters fetch if it fails */
	bool done;
	bool discard;		/* removed meanwhile: drop what was written */
	int ret, err;
	char error[256];
};

int cachedir_init(const char *dir, uint64_t cap, struct objstore *store,
		  struct cachedir **cd_r, const char **error_r)
{
	static __thread char errbuf[512];
	struct cachedir *cd;

	if (cap == 0) {
		*error_r = "cache size must be larger than 0";
		return -1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(errbuf, sizeof(errbuf), "mkdir(%s) failed: %s",
			 dir, strerror(errno));
		*error_r = errbuf;
		return -1;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL || cachedir_index_init(&cd->idx) < 0) {
		free(cd);
		*error_r = "out of memory";
		return -1;
	}
	cd->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cd->dir_fd < 0) {
		snprintf(errbuf, sizeof(errbuf), "open(%s) failed: %s",
			 dir, strerror(errno));
		*error_r = errbuf;
		cachedir_index_deinit(&cd->idx);
		free(cd);
		return -1;
	}
	cd->store = store;
	cd->cap = cap;
	cd->disk_cap = UINT64_MAX;
	cd->stats.cap = cap;
	pthread_mutex_init(&cd->lock, NULL);
	pthread_cond_init(&cd->cond, NULL);
	if (cachedir_scan(cd) < 0) {
		snprintf(errbuf, sizeof(errbuf), "scanning %s failed: %s",
			 dir, cachedir_error());
		*error_r = errbuf;
		cachedir_deinit(&cd);
		return -1;
	}
	*cd_r = cd;
	return 0;
}

void cachedir_deinit(struct cachedir **_cd)
{
	struct cachedir *cd = *_cd;

	if (cd == NULL)
		return;
	*_cd = NULL;
	close(cd->dir_fd);
	cachedir_index_deinit(&cd->idx);
	pthread_mutex_destroy(&cd->lock);
	pthread_cond_destroy(&cd->cond);
	free(cd);
}

/* Evict least recently used entries until size more bytes fit under the
   cap, then reserve them.  size <= cap. */
static void reserve_locked(struct cachedir *cd, uint64_t size)
{
	uint64_t limit = cd->disk_cap < cd->cap ? cd->disk_cap : cd->cap;

	while (cd->idx.bytes + cd->reserved + cd->unlinking + size > limit) {
		struct cachedir_entry *e = cachedir_index_lru(&cd->idx);

		if (e != NULL)
			cachedir_drop_locked(cd, e, true);
		else if (cd->reserved + cd->unlinking == 0)
			break;	/* over disk_cap alone: the write finds out */
		else
			pthread_cond_wait(&cd->cond, &cd->lock);
	}
	cd->reserved += size;
}

static struct cachedir_flight *
flight_find(struct cachedir *cd, const uint8_t id[CACHEDIR_ID_LEN])
{
	struct cachedir_flight *f;

	for (f = cd->flights; f != NULL; f = f->next) {
		if (memcmp(f->id, id, CACHEDIR_ID_LEN) == 0)
			return f;
	}
	return NULL;
}

static struct cachedir_flight *
flight_start_locked(struct cachedir *cd, const uint8_t id[CACHEDIR_ID_LEN],
		    bool is_add)
{
	struct cachedir_flight *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	memcpy(f->id, id, CACHEDIR_ID_LEN);
	f->refs = 1;
	f->is_add = is_add;
	f->next = cd->flights;
	cd->flights = f;
	return f;
}

static void flight_unref_locked(struct cachedir_flight *f)
{
	if (--f->refs == 0)
		free(f);
}

/* Put the filled temporary file tmp in place as id's entry and release the
   reservation; with fd_r, open it for reading too.  A flight marked
   discard drops it instead (ENOENT). */
static int commit_locked(struct cachedir *cd, struct cachedir_flight *f,
			 const char *tmp, uint64_t size, uint64_t csum,
			 int *fd_r)
{
	char name[CACHEDIR_NAME_LEN + 1];
	struct cachedir_entry *e;

	cd->reserved -= size;
	if (f->discard) {
		(void)unlinkat(cd->dir_fd, tmp, 0);
		cachedir_set_error("removed while it was being cached");
		errno = ENOENT;
		return -1;
	}
	cachedir_file_name(f->id, csum, name);
	e = cachedir_index_lookup(&cd->idx, f->id);
	if (e != NULL) {
		/* replaced: the same name is overwritten by the rename */
		if (e->csum != csum) {
			char old[CACHEDIR_NAME_LEN + 1];

			cachedir_file_name(e->id, e->csum, old);
			(void)unlinkat(cd->dir_fd, old, 0);
		}
		cachedir_index_remove(&cd->idx, e);
		free(e);
	}
	if (renameat(cd->dir_fd, tmp, cd->dir_fd, name) < 0) {
		cachedir_set_error("rename(%s, %s) failed: %m", tmp, name);
		(void)unlinkat(cd->dir_fd, tmp, 0);
		return -1;
	}
	e = cachedir_index_insert(&cd->idx, f->id, size, csum);
	if (e == NULL) {
		(void)unlinkat(cd->dir_fd, name, 0);
		cachedir_set_error("out of memory");
		errno = ENOMEM;
		return -1;
	}
	e->verified = true;
	if (fd_r != NULL) {
		*fd_r = openat(cd->dir_fd, name, O_RDONLY | O_CLOEXEC);
		if (*fd_r < 0) {
			cachedir_set_error("open(%s) failed: %m", name);
			return -1;
		}
	}
	return 0;
}

/* Write key's bytes (from src_fd, or fetched if src_fd < 0) as flight f,
   whose size bytes are reserved; then end f.  Lock held on entry and
   exit, dropped meanwhile. */
static int write_flight_locked(struct cachedir *cd, struct cachedir_flight *f,
			       const char *key, int src_fd, uint64_t size,
			       int *fd_r)
{
	char tmp[CACHEDIR_NAME_LEN + 16];
	uint64_t csum = 0;
	int fd, ret;

	pthread_mutex_unlock(&cd->lock);
	fd = cachedir_tmp_create(cd->dir_fd, f->id, tmp);
	if (fd < 0) {
		cachedir_set_error("creating a temporary file failed: %m");
		ret = -1;
	} else {
		ret = cachedir_fill(cd, key, src_fd, fd, size, &csum);
		if (ret < 0) {
			int saved = errno;

			(void)unlinkat(cd->dir_fd, tmp, 0);
			errno = saved;
		}
	}
	int saved = errno;

	pthread_mutex_lock(&cd->lock);
	for (struct cachedir_flight **fp = &cd->flights;; fp = &(*fp)->next) {
		if (*fp == f) {
			*fp = f->next;
			break;
		}
	}
	if (ret == 0) {
		ret = commit_locked(cd, f, tmp, size, csum, fd_r);
		saved = errno;
	} else {
		cd->reserved -= size;
		pthread_cond_broadcast(&cd->cond);
	}
	if (fd >= 0)
		close(fd);
	if (ret < 0 && !f->discard)
		cd->stats.fetch_errors++;
	f->done = true;
	f->ret = ret;
	f->err = saved;
	if (ret < 0)
		snprintf(f->error, sizeof(f->error), "%s", cachedir_error());
	pthread_cond_broadcast(&cd->cond);
	flight_unref_locked(f);
	errno = saved;
	return ret;
}

/* Check an entry found on disk at startup before serving it: size and
   checksum.  A bad one is dropped (returns -1). */
static int verify(struct cachedir *cd, int fd, const uint8_t *id,
		  uint64_t size, uint64_t csum)
{
	struct cachedir_entry *e;
	struct stat st;
	uint64_t actual;
	bool ok;

	ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == size &&
		cachedir_file_csum(fd, size, &actual) == 0 && actual == csum;
	pthread_mutex_lock(&cd->lock);
	e = cachedir_index_lookup(&cd->idx, id);
	if (e != NULL && e->csum == csum) {
		/* (a verified e is a new copy written meanwhile) */
		if (ok)
			e->verified = true;
		else if (!e->verified)
			cachedir_drop_locked(cd, e, false);
	}
	pthread_mutex_unlock(&cd->lock);
	return ok ? 0 : -1;
}

int cachedir_open(struct cachedir *cd, const char *key, uint64_t size,
		  int *fd_r)
{
	uint8_t id[CACHEDIR_ID_LEN];
	char name[CACHEDIR_NAME_LEN + 1];
	struct cachedir_entry *e;
	struct cachedir_flight *f;
	bool counted = false;

	if (size > cd->cap)
		return cachedir_open_uncached(cd, key, size, true, fd_r);
	cachedir_key_id(key, id);
	pthread_mutex_lock(&cd->lock);
	for (;;) {
		e = cachedir_index_lookup(&cd->idx, id);
		if (e != NULL && e->size != size) {
			/* stale: the object is not what we have */
			cachedir_drop_locked(cd, e, false);
			continue;
		}
		if (e != NULL) {
			uint64_t csum = e->csum;
			bool verified = e->verified;
			int fd;

			cachedir_index_touch(&cd->idx, e);
			pthread_mutex_unlock(&cd->lock);
			cachedir_file_name(id, csum, name);
			fd = openat(cd->dir_fd, name, O_RDONLY | O_CLOEXEC);
			if (fd < 0 && errno != ENOENT) {
				cachedir_set_error("open(%s) failed: %m", name);
				return -1;
			}
			if (fd >= 0 && !verified &&
			    verify(cd, fd, id, size, csum) < 0) {
				close(fd);
				fd = -1;
			}
			pthread_mutex_lock(&cd->lock);
			if (fd < 0)
				continue;	/* evicted or bad meanwhile */
			if (!counted)
				cd->stats.hits++;
			pthread_mutex_unlock(&cd->lock);
			/* the mtime orders the LRU after a restart */
			(void)futimens(fd, NULL);
			*fd_r = fd;
			return 0;
		}
		if (!counted) {
			cd->stats.misses++;
			counted = true;
		}
		f = flight_find(cd, id);
		if (f != NULL) {
			f->refs++;
			while (!f->done)
				pthread_cond_wait(&cd->cond, &cd->lock);
			if (f->ret < 0 && !f->is_add) {
				int err = f->err;

				cachedir_set_error("%s", f->error);
				flight_unref_locked(f);
				pthread_mutex_unlock(&cd->lock);
				errno = err;
				return -1;
			}
			flight_unref_locked(f);
			continue;
		}
		f = flight_start_locked(cd, id, false);
		if (f == NULL) {
			pthread_mutex_unlock(&cd->lock);
			cachedir_set_error("out of memory");
			errno = ENOMEM;
			return -1;
		}
		reserve_locked(cd, size);
		int ret = write_flight_locked(cd, f, key, -1, size, fd_r);
		int saved = errno;

		pthread_mutex_unlock(&cd->lock);
		if (ret < 0 && saved == ENOSPC) {
			/* the disk is full of what cannot be evicted: the
			   mail is still served, from memory */
			return cachedir_open_uncached(cd, key, size, false,
						      fd_r);
		}
		errno = saved;
		return ret;
	}
}

int cachedir_add_fd(struct cachedir *cd, const char *key, int fd,
		    uint64_t size)
{
	uint8_t id[CACHEDIR_ID_LEN];
	struct cachedir_entry *e;
	struct cachedir_flight *f;
	int ret, saved;

	if (size > cd->cap)
		return 0;	/* not cached: a later open reads the store */
	cachedir_key_id(key, id);
	pthread_mutex_lock(&cd->lock);
	while ((e = cachedir_index_lookup(&cd->idx, id)) != NULL) {
		if (e->size == size) {
			cachedir_index_touch(&cd->idx, e);
			pthread_mutex_unlock(&cd->lock);
			return 0;
		}
		cachedir_drop_locked(cd, e, false);
	}
	if (flight_find(cd, id) != NULL) {
		/* being written already */
		pthread_mutex_unlock(&cd->lock);
		return 0;
	}
	f = flight_start_locked(cd, id, true);
	if (f == NULL) {
		pthread_mutex_unlock(&cd->lock);
		cachedir_set_error("out of memory");
		errno = ENOMEM;
		return -1;
	}
	reserve_locked(cd, size);
	ret = write_flight_locked(cd, f, key, fd, size, NULL);
	saved = errno;
	pthread_mutex_unlock(&cd->lock);
	errno = saved;
	return ret;
}

void cachedir_remove(struct cachedir *cd, const char *key)
{
	uint8_t id[CACHEDIR_ID_LEN];
	struct cachedir_entry *e;
	struct cachedir_flight *f;

	cachedir_key_id(key, id);
	pthread_mutex_lock(&cd->lock);
	for (f = cd->flights; f != NULL; f = f->next) {
		if (memcmp(f->id, id, CACHEDIR_ID_LEN) == 0)
			f->discard = true;
	}
	e = cachedir_index_lookup(&cd->idx, id);
	if (e != NULL)
		cachedir_drop_locked(cd, e, false);
	pthread_mutex_unlock(&cd->lock);
}

void cachedir_get_stats(struct cachedir *cd, struct cachedir_stats *stats_r)
{
	pthread_mutex_lock(&cd->lock);
	*stats_r = cd->stats;
	stats_r->entries = cd->idx.count;
	stats_r->bytes = cd->idx.bytes;
	stats_r->reserved = cd->reserved;
	stats_r->memory = cachedir_index_memory(&cd->idx);
	pthread_mutex_unlock(&cd->lock);
}
