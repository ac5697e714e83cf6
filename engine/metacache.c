/* metacache.c: measuring user trees and evicting idle users (see
 * metacache.h). */
#include "monotime.h"
#include "metacache.h"
#include "rmtree.h"
#include "ids.h"
#include "roots.h"
#include "upload.h"
#include "users.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct metacache {
	int meta_fd;
	char *trash_dir;
	uint64_t cap;
	unsigned int idle_secs;
	metacache_evicted_cb *evicted;
	void *context;

	pthread_mutex_t lock;
	uint64_t evictions, evicted_bytes, over_cap_busy; /* protected by lock */
	uint64_t walks;		/* protected by lock: du() of a user's tree */
	bool warned;		/* protected by lock */
};

struct metacache *metacache_init(int meta_fd, const char *trash_dir,
				 uint64_t cap, unsigned int idle_secs,
				 metacache_evicted_cb *evicted, void *context)
{
	struct metacache *meta = calloc(1, sizeof(*meta));

	if (meta == NULL)
		return NULL;
	meta->trash_dir = strdup(trash_dir);
	if (meta->trash_dir == NULL) {
		free(meta);
		return NULL;
	}
	meta->meta_fd = meta_fd;
	meta->cap = cap;
	meta->idle_secs = idle_secs;
	meta->evicted = evicted;
	meta->context = context;
	pthread_mutex_init(&meta->lock, NULL);
	return meta;
}

void metacache_deinit(struct metacache **_mc)
{
	struct metacache *meta = *_mc;

	if (meta == NULL)
		return;
	*_mc = NULL;
	pthread_mutex_destroy(&meta->lock);
	free(meta->trash_dir);
	free(meta);
}

/* allocated bytes below dir_fd (not following symlinks) */
static uint64_t du(int dir_fd)
{
	uint64_t total = 0;
	struct dirent *d;
	DIR *dir;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return 0;
	}
	while ((d = readdir(dir)) != NULL) {
		struct stat st;

		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(dir), d->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		total += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(dir), d->d_name, O_RDONLY |
					 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				total += du(sub);
				close(sub);
			}
		}
	}
	closedir(dir);
	return total;
}

/* Measure user: from its last scan (no walk) unless precise; a user
   never scanned keeps the size of its last walk.  Walked: a user never
   measured, and when precise, one that changed since its last
   measurement.  Nothing to do when the last measurement is of the current
   change generation. */
static void measure(struct metacache *meta, struct ouser *user, bool precise)
{
	uint64_t gen = atomic_load(&user->gen), bytes = 0;

	if (atomic_load(&user->measured) &&
	    atomic_load(&user->measured_gen) == gen)
		return;
	if (!precise && atomic_load(&user->tree_bytes_known)) {
		atomic_store(&user->disk_bytes, atomic_load(&user->tree_bytes));
		atomic_store(&user->measured_gen,
			     atomic_load(&user->tree_bytes_gen));
		atomic_store(&user->measured, true);
		return;
	}
	if (!precise && atomic_load(&user->measured))
		return;	/* until its first upload, or the cap is near */
	pthread_mutex_lock(&meta->lock);
	meta->walks++;
	pthread_mutex_unlock(&meta->lock);
	int fd = openat(meta->meta_fd, user->name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	if (fd >= 0) {
		if (fstat(fd, &st) == 0)
			bytes = (uint64_t)st.st_blocks * 512;
		bytes += du(fd);
		close(fd);
	}
	atomic_store(&user->disk_bytes, bytes);
	atomic_store(&user->measured_gen, gen);
	atomic_store(&user->measured, true);
}

void metacache_measure(struct metacache *meta, struct ouser *user)
{
	measure(meta, user, false);
}

static bool is_idle(struct metacache *meta, struct ouser *user)
{
	return atomic_load(&user->open_count) == 0 &&
	       monotime_secs() - atomic_load(&user->last_access) >=
	       (int64_t)meta->idle_secs;
}

/* Evict user if it is idle and stored.  Returns 1 if evicted. */
static int evict(struct metacache *meta, struct ouser *user,
		 struct upload_ctx *upctx)
{
	char trash[PATH_MAX], rnd[IDS_HEX_LEN + 1];
	uint64_t bytes = atomic_load(&user->disk_bytes);
	bool stored, moved = false;

	pthread_mutex_lock(&user->upload_lock);
	stored = upload_user_root_stored(upctx, user) &&
		atomic_load(&user->uploaded_gen) == atomic_load(&user->gen);
	pthread_mutex_unlock(&user->upload_lock);
	if (!stored) {
		/* evicting a user with unstored changes uploads first */
		if (upload_user(upctx, user, NULL) < 0)
			return 0;
	}
	if (ids_generate(rnd) < 0)
		return 0;
	snprintf(trash, sizeof(trash), "%s/%s.%.8s", meta->trash_dir,
		 user->name, rnd);
	/* the kernel forgets the entry first, so that no new operation
	   finds the tree by it while it moves */
	meta->evicted(user->name, meta->context);

	pthread_mutex_lock(&user->upload_lock);
	users_snapshot_lock(user);
	if (is_idle(meta, user) && upload_user_root_stored(upctx, user) &&
	    atomic_load(&user->uploaded_gen) == atomic_load(&user->gen)) {
		if (renameat(meta->meta_fd, user->name, AT_FDCWD, trash) == 0)
			moved = true;
		else if (errno != ENOENT) {
			obox_log(OBOX_LOG_ERR, "metacache: evicting %s: "
				 "rename failed: %s\n", user->name,
				 strerror(errno));
		}
	}
	users_snapshot_unlock(user);
	if (moved) {
		roots_forget(&user->roots);
		atomic_store(&user->disk_bytes, 0);
		atomic_store(&user->measured, false);
		users_set_tree_bytes(user, false, 0, 0);
	}
	pthread_mutex_unlock(&user->upload_lock);
	if (!moved)
		return 0;
	/* and again: a lookup may have come in meanwhile */
	meta->evicted(user->name, meta->context);
	rmtree(trash, false);
	pthread_mutex_lock(&meta->lock);
	meta->evictions++;
	meta->evicted_bytes += bytes;
	pthread_mutex_unlock(&meta->lock);
	return 1;
}

static int cmp_access(const void *a, const void *b)
{
	const struct ouser *ua = *(struct ouser *const *)a;
	const struct ouser *ub = *(struct ouser *const *)b;
	int64_t ta = atomic_load(&ua->last_access);
	int64_t tb = atomic_load(&ub->last_access);

	return ta < tb ? -1 : ta > tb ? 1 : 0;
}

static bool user_present(struct metacache *meta, struct ouser *user)
{
	return faccessat(meta->meta_fd, user->name, F_OK,
			 AT_SYMLINK_NOFOLLOW) == 0;
}

void metacache_enforce(struct metacache *meta, struct users *users,
		       struct upload_ctx *upctx)
{
	struct ouser **list;
	unsigned int count;
	uint64_t used = 0;

	if (users_list(users, &list, &count) < 0)
		return;
	for (unsigned int i = 0; i < count; i++) {
		measure(meta, list[i], false);
		used += atomic_load(&list[i]->disk_bytes);
	}
	if (used > meta->cap / 10 * 9) {
		/* near the cap: what users changed since their last scan
		   counts, so those are walked */
		used = 0;
		for (unsigned int i = 0; i < count; i++) {
			measure(meta, list[i], true);
			used += atomic_load(&list[i]->disk_bytes);
		}
	}
	if (used > meta->cap) {
		qsort(list, count, sizeof(*list), cmp_access);
		for (unsigned int i = 0; i < count && used > meta->cap; i++) {
			struct ouser *u = list[i];
			uint64_t bytes = atomic_load(&u->disk_bytes);

			if (bytes == 0 || !is_idle(meta, u) ||
			    !user_present(meta, u))
				continue;
			if (evict(meta, u, upctx) > 0)
				used -= bytes < used ? bytes : used;
		}
		if (used > meta->cap) {
			pthread_mutex_lock(&meta->lock);
			meta->over_cap_busy++;
			bool warn = !meta->warned;

			meta->warned = true;
			pthread_mutex_unlock(&meta->lock);
			if (warn) {
				obox_log(OBOX_LOG_WARNING, "metacache: %llu "
					 "bytes used, above the %llu byte cap, "
					 "and no user is idle enough to evict "
					 "(metacache_size too small for the "
					 "active users?)\n",
					 (unsigned long long)used,
					 (unsigned long long)meta->cap);
			}
		}
	} else {
		pthread_mutex_lock(&meta->lock);
		meta->warned = false;
		pthread_mutex_unlock(&meta->lock);
	}
	free(list);
}

void metacache_get_stats(struct metacache *meta, struct users *users,
			 struct metacache_stats *stats_r)
{
	struct ouser **list;
	unsigned int count;

	memset(stats_r, 0, sizeof(*stats_r));
	stats_r->cap = meta->cap;
	if (users_list(users, &list, &count) == 0) {
		for (unsigned int i = 0; i < count; i++) {
			uint64_t b = atomic_load(&list[i]->disk_bytes);

			stats_r->used += b;
			if (b > 0)
				stats_r->users_cached++;
		}
		free(list);
	}
	pthread_mutex_lock(&meta->lock);
	stats_r->evictions = meta->evictions;
	stats_r->walks = meta->walks;
	stats_r->evicted_bytes = meta->evicted_bytes;
	stats_r->over_cap_busy = meta->over_cap_busy;
	pthread_mutex_unlock(&meta->lock);
}
