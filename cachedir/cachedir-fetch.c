/* cachedir-fetch.c: filling temporary cache files from the store or from a
 * caller's fd (evicting and retrying when the cache disk is full), and
 * serving objects larger than the cap from memory. */
#include "cachedir-private.h"
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* evict-and-retry rounds when the cache disk is full */
#define ENOSPC_RETRIES 16

/* The disk is full below the cap: evict at least size bytes (or all there
   is).  Returns 0 if something was freed, -1 if nothing could be. */
int cachedir_make_room(struct cachedir *cd, uint64_t size)
{
	uint64_t freed = 0;
	int ret;

	pthread_mutex_lock(&cd->lock);
	ret = cd->unlinking > 0 ? 0 : -1;
	while (freed < size || freed == 0) {
		struct cachedir_entry *e = cachedir_index_lru(&cd->idx);

		if (e == NULL)
			break;
		freed += e->size;
		ret = 0;
		cachedir_drop_locked(cd, e, true);
	}
	pthread_mutex_unlock(&cd->lock);
	return ret;
}

int cachedir_shrink(struct cachedir *cd, uint64_t bytes)
{
	int ret = cachedir_make_room(cd, bytes);

	/* the disk holds less than the cap: do not fill it up again */
	pthread_mutex_lock(&cd->lock);
	if (cd->idx.bytes < cd->disk_cap)
		cd->disk_cap = cd->idx.bytes;
	pthread_mutex_unlock(&cd->lock);
	return ret;
}

/* errno for a failed GET: CACHEDIR_ERR_MISSING when the store does not
   have the object, else EIO */
static int fetch_errno(void)
{
	return objstore_errcode() == OBJSTORE_ERR_NOT_FOUND ?
		CACHEDIR_ERR_MISSING : EIO;
}

static bool errno_is_disk_full(void)
{
	return errno == ENOSPC || errno == EDQUOT;
}

/* Fill the temporary file fd with size bytes: a copy of src_fd, or (src_fd
   < 0) the object key fetched from the store.  Evicts and retries when the
   disk is full. */
int cachedir_fill(struct cachedir *cd, const char *key, int src_fd, int fd,
		  uint64_t size, uint64_t *csum_r)
{
	uint64_t got;
	int ret;

	for (unsigned int try = 0;; try++) {
		if (ftruncate(fd, 0) < 0) {
			cachedir_set_error("ftruncate() failed: %m");
			return -1;
		}
		/* claim the blocks first: a full disk shows up before any
		   store I/O */
		ret = size == 0 ? 0 : fallocate(fd, 0, 0, (off_t)size);
		if (ret < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			ret = 0;
		if (ret == 0 && src_fd >= 0) {
			ret = cachedir_copy_fd(src_fd, fd, size, csum_r);
			if (ret < 0 && !errno_is_disk_full()) {
				cachedir_set_error("copying %s into the cache "
						   "failed: %m", key);
				return -1;
			}
		} else if (ret == 0) {
			ret = objstore_get_fd(cd->store, key, 0, size + 1,
					      fd, 0, &got);
			if (ret < 0 && !errno_is_disk_full()) {
				cachedir_set_error("%s", objstore_error());
				errno = fetch_errno();
				return -1;
			}
			if (ret == 0 && got != size) {
				cachedir_set_error("object %s has %s%" PRIu64
						   " bytes, expected %" PRIu64,
						   key, got > size ? "over " : "",
						   got > size ? size : got, size);
				errno = EIO;
				return -1;
			}
			if (ret == 0 && cachedir_file_csum(fd, size, csum_r) < 0) {
				cachedir_set_error("reading back %s failed: %m",
						   key);
				return -1;
			}
		}
		if (ret == 0)
			return 0;
		if (!errno_is_disk_full()) {
			cachedir_set_error("fallocate(%" PRIu64 ") for %s "
					   "failed: %m", size, key);
			return -1;
		}
		if (try >= ENOSPC_RETRIES || cachedir_make_room(cd, size) < 0) {
			cachedir_set_error("cache disk full: %" PRIu64 " bytes "
					   "for %s do not fit even after "
					   "evicting (cache_size larger than "
					   "the disk?)", size, key);
			errno = ENOSPC;
			return -1;
		}
	}
}

/* an object larger than the cap: fetched into memory, not cached */
int cachedir_open_uncached(struct cachedir *cd, const char *key,
			    uint64_t size, bool count_miss, int *fd_r)
{
	char path[64];
	uint64_t got;
	int fd, ret = -1;

	if (count_miss) {
		pthread_mutex_lock(&cd->lock);
		cd->stats.misses++;
		pthread_mutex_unlock(&cd->lock);
	}
	fd = memfd_create("oboxfs-mail", MFD_CLOEXEC);
	if (fd < 0) {
		cachedir_set_error("memfd_create() failed: %m");
		return -1;
	}
	if (objstore_get_fd(cd->store, key, 0, size + 1, fd, 0, &got) < 0) {
		cachedir_set_error("%s", objstore_error());
		errno = fetch_errno();
	} else if (got != size) {
		cachedir_set_error("object %s has %" PRIu64 " bytes, expected %"
				   PRIu64, key, got, size);
		errno = EIO;
	} else {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		*fd_r = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd_r < 0)
			cachedir_set_error("open(%s) failed: %m", path);
		else
			ret = 0;
	}
	int saved = errno;

	close(fd);
	if (ret < 0) {
		pthread_mutex_lock(&cd->lock);
		cd->stats.fetch_errors++;
		pthread_mutex_unlock(&cd->lock);
	}
	errno = saved;
	return ret;
}
