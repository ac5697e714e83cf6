/* fsops-load.c: users come from the store when this machine does not have
 * them (CONTRACT.md section 6), and deliveries trigger folder uploads
 * (section 5).
 */
#include "fs.h"
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
#include <fuse_log.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* how long "the store has no such user" is believed: as long as the
   kernel keeps a missing user's negative entry (fsops.c), and a bit */
#define FS_STORE_ABSENT_MS 2000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_garbage(const char *key, void *context)
{
	struct oboxfs *fs = context;

	return objgc_is_garbage(fs->gc, key);
}

/* load into CACHE_DIR/load/<tmp>, then rename into meta/<name> */
static int load_locked(struct oboxfs *fs, struct ouser *user)
{
	char tmp[NAME_MAX + 1], rnd[IDS_HEX_LEN + 1];
	struct userload_roots *result = NULL;
	struct userload_stats stats;
	const char *error;
	int dir_fd, ret;

	if (ids_generate(rnd) < 0)
		return EIO;
	snprintf(tmp, sizeof(tmp), "%.16s", rnd);
	if (mkdirat(fs->load_fd, tmp, 0700) < 0)
		return errno;
	dir_fd = openat(fs->load_fd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		ret = errno;
		(void)unlinkat(fs->load_fd, tmp, AT_REMOVEDIR);
		return ret;
	}
	ret = userload_load_filtered(fs->store, user->name, dir_fd,
				     is_garbage, fs, &stats, &result, &error);
	close(dir_fd);
	if (ret <= 0) {
		rmtree_at(fs->load_fd, tmp, false);
		userload_roots_free(&result);
		if (ret == 0)
			return ENOENT;
		fuse_log(FUSE_LOG_ERR, "loading user %s from the store "
			 "failed: %s\n", user->name, error);
		return EIO;
	}
	if (renameat(fs->load_fd, tmp, fs->meta_fd, user->name) < 0) {
		ret = errno;
		rmtree_at(fs->load_fd, tmp, false);
		userload_roots_free(&result);
		/* created meanwhile (not through this mount) */
		return ret == EEXIST || ret == ENOTEMPTY ? 0 : ret;
	}
	for (size_t i = 0; result != NULL && i < result->count; i++) {
		const struct userload_root *root = &result->roots[i];

		(void)upload_roots_add_loaded(user, root->guid,
					      root->bundle_keys,
					      root->bundle_key_count);
	}
	user->roots_read = true;
	atomic_fetch_add(&fs->users_loaded, 1);
	atomic_fetch_add(&fs->mails_put_back, stats.mails_put_back);
	userload_roots_free(&result);
	fuse_log(FUSE_LOG_INFO, "user %s loaded from the store: %u bundle "
		 "roots, %u mails put back\n", user->name, stats.roots_loaded,
		 stats.mails_put_back);
	return 0;
}

int fs_user_load(struct oboxfs *fs, const char *name)
{
	struct ouser *user = users_get(fs->users, name);
	int ret;

	if (user == NULL)
		return ENOMEM;
	pthread_mutex_lock(&user->upload_lock);
	if (faccessat(fs->meta_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		ret = 0;	/* another lookup loaded it */
	else if (user->store_absent_ms != 0 &&
		 now_ms() - user->store_absent_ms < FS_STORE_ABSENT_MS)
		ret = ENOENT;
	else {
		ret = load_locked(fs, user);
		user->store_absent_ms = ret == ENOENT ? now_ms() : 0;
	}
	pthread_mutex_unlock(&user->upload_lock);
	if (ret == 0)
		metacache_measure(fs->metacache, user);
	return ret;
}

void fs_delivery_noted(const char *dir, const char *key, void *context)
{
	struct oboxfs *fs = context;
	const char *slash = strchr(dir, '/'), *last = strrchr(dir, '/');
	const char *mb = strstr(key, "/mailboxes/");
	char user_name[NAME_MAX + 1], folder[PATH_MAX];
	char guid[IDS_HEX_LEN + 1];
	struct ouser *user;

	if (fs->uploader == NULL || fs->upload_deliveries == 0 ||
	    slash == NULL || mb == NULL || (size_t)(slash - dir) > NAME_MAX)
		return;
	snprintf(user_name, sizeof(user_name), "%.*s", (int)(slash - dir),
		 dir);
	snprintf(folder, sizeof(folder), "%.*s", (int)(last - slash - 1),
		 slash + 1);
	if (last == slash)
		folder[0] = '\0';
	snprintf(guid, sizeof(guid), "%.32s", mb + strlen("/mailboxes/"));
	user = users_get(fs->users, user_name);
	if (user != NULL &&
	    users_count_delivery(fs->users, user, guid, fs->upload_deliveries))
		uploader_request_folder(fs->uploader, user, folder);
}
