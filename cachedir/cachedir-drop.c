/* cachedir-drop.c: taking an entry out of the mail cache and deleting its
 * file (evictions, invalidations, failed fetches), for cachedir.c and
 * cachedir-fetch.c alike. */
#include "cachedir-private.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Take e out of the index and delete its file.  The file is renamed away
   under the lock (a new file of the same object gets the same name, which
   a late unlink would delete) and unlinked without it; its bytes stay
   counted (as unlinking) until it is gone, so that nobody writes in their
   place before that.  Drops the lock meanwhile. */
void cachedir_drop_locked(struct cachedir *cd, struct cachedir_entry *e,
			  bool evicted)
{
	char name[CACHEDIR_NAME_LEN + 1], del[CACHEDIR_NAME_LEN + 32];
	uint64_t size = e->size;

	cachedir_file_name(e->id, e->csum, name);
	snprintf(del, sizeof(del), "%.2s/.del.%" PRIx64, name, ++cd->del_seq);
	cachedir_index_remove(&cd->idx, e);
	free(e);
	if (evicted)
		cd->stats.evictions++;
	if (renameat(cd->dir_fd, name, cd->dir_fd, del) < 0) {
		pthread_cond_broadcast(&cd->cond);	/* already gone */
		return;
	}
	cd->unlinking += size;
	pthread_mutex_unlock(&cd->lock);
	(void)unlinkat(cd->dir_fd, del, 0);
	pthread_mutex_lock(&cd->lock);
	cd->unlinking -= size;
	pthread_cond_broadcast(&cd->cond);
}
