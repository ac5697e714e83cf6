/* userget.c: users come from the store when this machine does not have
 * them (CONTRACT.md section 6), and deliveries trigger folder uploads
 * (section 5).
 */
#include "monotime.h"
#include "obox-private.h"
#include "lazydir.h"
#include "log.h"
#include "mailstore.h"
#include "rmtree.h"
#include "ids.h"
#include "metacache.h"
#include "objgc.h"
#include "upload.h"
#include "uploader.h"
#include "userload.h"
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* how long "the store has no such user" is believed: as long as the
   kernel keeps a missing user's negative entry (fs/fsops.c), and a bit */
#define FS_STORE_ABSENT_MS 2000

static bool is_garbage(const char *key, void *context)
{
	struct obox *obox = context;

	return objgc_is_garbage(obox->gc, key);
}

/* load into CACHE_DIR/load/<tmp>, then rename into meta/<name> */
static int load_locked(struct obox *obox, struct ouser *user)
{
	char tmp[NAME_MAX + 1], rnd[IDS_HEX_LEN + 1];
	struct userload_roots *result = NULL;
	struct userload_stats stats;
	const char *error;
	int64_t start = monotime_us();
	uint64_t usecs;
	int dir_fd, ret;

	if (ids_generate(rnd) < 0)
		return EIO;
	snprintf(tmp, sizeof(tmp), "%.16s", rnd);
	if (mkdirat(obox->load_fd, tmp, 0700) < 0)
		return errno;
	dir_fd = openat(obox->load_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		ret = errno;
		(void)unlinkat(obox->load_fd, tmp, AT_REMOVEDIR);
		return ret;
	}
	/* the mount root's owner until the tree says otherwise (the load
	   gives the user dir the owner of most of its entries): directories
	   made from mails alone (no bundle was stored before a crash) take
	   their parent's, so Dovecot, running as the mail user the root
	   belongs to, can enter them */
	struct stat root_st;

	if (geteuid() == 0 && fstat(obox->meta_fd, &root_st) == 0 &&
	    fchown(dir_fd, root_st.st_uid, root_st.st_gid) < 0) {
		ret = errno;
		close(dir_fd);
		(void)unlinkat(obox->load_fd, tmp, AT_REMOVEDIR);
		return ret;
	}
	/* tables of an earlier tree of the user are garbage */
	lazydir_user_drop(obox->lazy, user->name);
	ret = userload_load_lazy(obox->store, user->name, dir_fd, is_garbage,
				 obox, obox->lazy, &stats, &result, &error);
	close(dir_fd);
	if (ret <= 0) {
		rmtree_at(obox->load_fd, tmp, false);
		lazydir_user_drop(obox->lazy, user->name);
		userload_roots_free(&result);
		if (ret == 0)
			return ENOENT;
		obox_log(OBOX_LOG_ERR, "loading user %s from the store "
			 "failed: %s\n", user->name, error);
		return EIO;
	}
	if (renameat(obox->load_fd, tmp, obox->meta_fd, user->name) < 0) {
		ret = errno;
		rmtree_at(obox->load_fd, tmp, false);
		lazydir_user_drop(obox->lazy, user->name);
		userload_roots_free(&result);
		/* created meanwhile (not through this mount) */
		return ret == EEXIST || ret == ENOTEMPTY ? 0 : ret;
	}
	(void)upload_user_loaded(&obox->upctx, user, result);
	/* mails put back are in no bundle yet: the next pass stores one
	   with them (and its watermark), so the next cold load lists less */
	if (stats.mails_put_back > 0)
		users_changed_behind(user);
	/* the user dir itself, and what was written below it */
	users_set_tree_bytes(user, true, 4096 + stats.disk_bytes +
			     stats.stubs * obox->upctx.stub_disk_bytes,
			     atomic_load(&user->gen));
	atomic_fetch_add(&obox->users_loaded, 1);
	atomic_fetch_add(&obox->mails_put_back, stats.mails_put_back);
	atomic_fetch_add(&obox->load_mails_listed, stats.mails_listed);
	atomic_fetch_add(&obox->load_folders_list_skipped,
			 stats.folders_list_skipped);
	atomic_fetch_add(&obox->load_bundles_fetched_ahead,
			 stats.bundles_fetched_ahead);
	atomic_fetch_add(&obox->load_mails_before_mark,
			 stats.mails_before_mark);
	userload_roots_free(&result);
	usecs = (uint64_t)(monotime_us() - start);
	atomic_fetch_add(&obox->load_usecs, usecs);
	atomic_fetch_add(&obox->load_write_usecs, stats.write_usecs);
	obox_log(OBOX_LOG_INFO, "user %s loaded from the store in %" PRIu64
		 " ms (%" PRIu64 " ms writing %" PRIu64 " stubs, %" PRIu64
		 " of them in %" PRIu64 " lazy directories): %u bundle "
		 "roots, %u mails listed (%u folders listed from their "
		 "watermark), %u bundles fetched (%u ahead, at most %u at "
		 "once), %u mails put back\n", user->name, usecs / 1000,
		 stats.write_usecs / 1000, stats.stubs, stats.lazy_stubs,
		 stats.lazy_dirs, stats.roots_loaded,
		 stats.mails_listed, stats.folders_list_skipped,
		 stats.bundles_fetched, stats.bundles_fetched_ahead,
		 stats.bundles_fetched_parallel_max, stats.mails_put_back);
	return 0;
}

int obox_user_load(struct obox *obox, const char *name)
{
	struct ouser *user = users_get(obox->users, name);
	int ret;

	if (user == NULL)
		return ENOMEM;
	pthread_mutex_lock(&user->upload_lock);
	if (faccessat(obox->meta_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		ret = 0;	/* another lookup loaded it */
	else if (user->store_absent_ms != 0 &&
		 monotime_ms() - user->store_absent_ms < FS_STORE_ABSENT_MS)
		ret = ENOENT;
	else {
		ret = load_locked(obox, user);
		user->store_absent_ms = ret == ENOENT ? monotime_ms() : 0;
	}
	pthread_mutex_unlock(&user->upload_lock);
	if (ret == 0)
		metacache_measure(obox->metacache, user);
	return ret;
}

void obox_delivery_noted(const struct mail_place *place, void *context)
{
	struct obox *obox = context;
	struct ouser *user;

	if (obox->uploader == NULL || obox->set.upload_deliveries == 0)
		return;
	user = users_get(obox->users, place->user);
	if (user != NULL &&
	    users_count_delivery(obox->users, user, place->guid,
				 obox->set.upload_deliveries))
		uploader_request_folder(obox->uploader, user, place->folder);
}
