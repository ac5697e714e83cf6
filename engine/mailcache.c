/* mailcache.c: the daemon's mail cache over cachedir/ (see mailcache.h). */
#include "mailcache.h"

#include <errno.h>
#include "log.h"
#include <stdlib.h>

struct mailcache {
	struct cachedir *cd;
};

int mailcache_init(const char *dir, uint64_t cap, struct objstore *store,
		   struct mailcache **mc_r, const char **error_r)
{
	struct mailcache *mc = calloc(1, sizeof(*mc));

	if (mc == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	if (cachedir_init(dir, cap, store, &mc->cd, error_r) < 0) {
		free(mc);
		return -1;
	}
	*mc_r = mc;
	return 0;
}

void mailcache_deinit(struct mailcache **_mc)
{
	struct mailcache *mc = *_mc;

	if (mc == NULL)
		return;
	*_mc = NULL;
	cachedir_deinit(&mc->cd);
	free(mc);
}

int mailcache_open(struct mailcache *mc, const char *key, uint64_t size,
		   int *fd_r)
{
	if (cachedir_open(mc->cd, key, size, fd_r) < 0) {
		int saved = errno;

		/* ENOENT: the object was released while fetched; missing
		   from the store: logged once by the caller (mailmissing.h) */
		if (saved != CACHEDIR_ERR_MISSING) {
			obox_log(saved == ENOENT ? OBOX_LOG_INFO :
				 OBOX_LOG_ERR, "mail cache: open(%s) failed: "
				 "%s\n", key, cachedir_error());
		}
		errno = saved;
		return -1;
	}
	return 0;
}

int mailcache_add_fd(struct mailcache *mc, const char *key, int fd,
		     uint64_t size)
{
	if (cachedir_add_fd(mc->cd, key, fd, size) < 0) {
		int saved = errno;

		/* not fatal for the callers: a miss fetches it again */
		obox_log(OBOX_LOG_WARNING, "mail cache: add(%s) failed: %s\n",
			 key, cachedir_error());
		errno = saved;
		return -1;
	}
	return 0;
}

void mailcache_remove(struct mailcache *mc, const char *key)
{
	cachedir_remove(mc->cd, key);
}

int mailcache_shrink(struct mailcache *mc, uint64_t bytes)
{
	return cachedir_shrink(mc->cd, bytes);
}

void mailcache_get_stats(struct mailcache *mc, struct cachedir_stats *stats_r)
{
	cachedir_get_stats(mc->cd, stats_r);
}
