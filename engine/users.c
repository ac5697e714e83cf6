/* users.c: the registry of users and their change tracking (users.h). */
#include "monotime.h"
#include "users.h"
#include "cachestate.h"
#include "ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS_BUCKETS 1024U

struct user_folder_count {
	char guid[IDS_HEX_LEN + 1];
	unsigned int count;
};

struct users {
	struct cachestate *cs;
	pthread_mutex_t lock;
	struct ouser *buckets[USERS_BUCKETS];	/* protected by lock */
	unsigned int count;			/* protected by lock */
};

static unsigned int name_hash(const char *name)
{
	unsigned int h = 5381;

	for (; *name != '\0'; name++)
		h = h * 33 + (unsigned char)*name;
	return h % USERS_BUCKETS;
}

struct users *users_init(struct cachestate *cs)
{
	struct users *users = calloc(1, sizeof(*users));

	if (users == NULL)
		return NULL;
	users->cs = cs;
	pthread_mutex_init(&users->lock, NULL);
	return users;
}

static void user_free(struct ouser *user)
{
	roots_forget(&user->roots);
	touched_deinit(&user->touched);
	pthread_rwlock_destroy(&user->tree_lock);
	pthread_mutex_destroy(&user->upload_lock);
	free(user->folder_counts);
	free(user->name);
	free(user);
}

void users_deinit(struct users **_users)
{
	struct users *users = *_users;

	if (users == NULL)
		return;
	*_users = NULL;
	for (unsigned int i = 0; i < USERS_BUCKETS; i++) {
		struct ouser *user, *next;

		for (user = users->buckets[i]; user != NULL; user = next) {
			next = user->next;
			user_free(user);
		}
	}
	pthread_mutex_destroy(&users->lock);
	free(users);
}

static struct ouser *user_new(const char *name)
{
	struct ouser *user = calloc(1, sizeof(*user));
	pthread_rwlockattr_t attr;

	if (user == NULL)
		return NULL;
	user->name = strdup(name);
	if (user->name == NULL) {
		free(user);
		return NULL;
	}
	if (keys_user_prefix(name, user->prefix, sizeof(user->prefix)) < 0) {
		free(user->name);
		free(user);
		return NULL;
	}
	pthread_rwlockattr_init(&attr);
	/* an upload's snapshot must not wait behind a stream of
	   operations */
	pthread_rwlockattr_setkind_np(&attr,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&user->tree_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&user->upload_lock, NULL);
	touched_init(&user->touched);
	atomic_init(&user->gen, 0);
	atomic_init(&user->uploaded_gen, 0);
	atomic_init(&user->marked, false);
	atomic_init(&user->last_access, monotime_secs());
	atomic_init(&user->open_count, 0);
	atomic_init(&user->disk_bytes, 0);
	atomic_init(&user->measured_gen, 0);
	atomic_init(&user->measured, false);
	return user;
}

struct ouser *users_get(struct users *users, const char *name)
{
	unsigned int bucket = name_hash(name);
	struct ouser *user;

	pthread_mutex_lock(&users->lock);
	for (user = users->buckets[bucket]; user != NULL; user = user->next) {
		if (strcmp(user->name, name) == 0)
			break;
	}
	if (user == NULL) {
		user = user_new(name);
		if (user != NULL) {
			user->next = users->buckets[bucket];
			users->buckets[bucket] = user;
			users->count++;
		}
	}
	pthread_mutex_unlock(&users->lock);
	return user;
}

void users_change_begin(struct users *users, struct ouser *user)
{
	if (user == NULL)
		return;
	pthread_rwlock_rdlock(&user->tree_lock);
	atomic_fetch_add(&user->gen, 1);
	atomic_store(&user->last_access, monotime_secs());
	/* the marker is there before the change is: a kill right after
	   the change still finds it */
	if (!atomic_load(&user->marked)) {
		if (cachestate_mark_dirty(users->cs, user->name) == 0)
			atomic_store(&user->marked, true);
	}
}

void users_change_end(struct ouser *user)
{
	if (user != NULL)
		pthread_rwlock_unlock(&user->tree_lock);
}

void users_touched(struct ouser *user, uint64_t ino)
{
	/* gen + 1: later than every snapshot taken so far (one taken at
	   gen now may or may not have seen the change), so a change told
	   outside users_change_begin/end() is never missed; at worst the
	   file is read once more than needed */
	if (user != NULL) {
		touched_note(&user->touched, ino,
			     atomic_load(&user->gen) + 1);
	}
}

void users_changed_behind(struct ouser *user)
{
	atomic_fetch_add(&user->gen, 1);
}

void users_mark_left_dirty(struct ouser *user)
{
	atomic_store(&user->gen, 1);
	atomic_store(&user->marked, true);
}

void users_set_tree_bytes(struct ouser *user, bool known, uint64_t bytes,
			  uint64_t gen)
{
	atomic_store(&user->tree_bytes, bytes);
	atomic_store(&user->tree_bytes_gen, gen);
	atomic_store(&user->tree_bytes_known, known);
}

void users_touch(struct ouser *user)
{
	if (user != NULL)
		atomic_store(&user->last_access, monotime_secs());
}

void users_opened(struct ouser *user)
{
	if (user != NULL) {
		atomic_fetch_add(&user->open_count, 1);
		atomic_store(&user->last_access, monotime_secs());
	}
}

void users_closed(struct ouser *user)
{
	if (user != NULL) {
		atomic_fetch_sub(&user->open_count, 1);
		atomic_store(&user->last_access, monotime_secs());
	}
}

void users_snapshot_lock(struct ouser *user)
{
	pthread_rwlock_wrlock(&user->tree_lock);
}

void users_snapshot_unlock(struct ouser *user)
{
	pthread_rwlock_unlock(&user->tree_lock);
}

bool users_is_dirty(struct ouser *user)
{
	return atomic_load(&user->uploaded_gen) != atomic_load(&user->gen);
}

bool users_count_delivery(struct users *users, struct ouser *user,
			  const char *guid, unsigned int limit)
{
	struct user_folder_count *fc = NULL;
	bool reached = false;

	pthread_mutex_lock(&users->lock);
	for (unsigned int i = 0; i < user->folder_count_len; i++) {
		if (strcmp(user->folder_counts[i].guid, guid) == 0) {
			fc = &user->folder_counts[i];
			break;
		}
	}
	if (fc == NULL) {
		struct user_folder_count *n =
			realloc(user->folder_counts,
				(user->folder_count_len + 1) * sizeof(*n));

		if (n != NULL) {
			user->folder_counts = n;
			fc = &n[user->folder_count_len++];
			memset(fc, 0, sizeof(*fc));
			snprintf(fc->guid, sizeof(fc->guid), "%s", guid);
		}
	}
	if (fc != NULL && ++fc->count >= limit) {
		fc->count = 0;
		reached = true;
	}
	pthread_mutex_unlock(&users->lock);
	return reached;
}

int users_list(struct users *users, struct ouser ***users_r,
	       unsigned int *count_r)
{
	struct ouser **list;
	unsigned int n = 0;

	pthread_mutex_lock(&users->lock);
	list = calloc(users->count + 1, sizeof(*list));
	if (list == NULL) {
		pthread_mutex_unlock(&users->lock);
		return -1;
	}
	for (unsigned int i = 0; i < USERS_BUCKETS; i++) {
		for (struct ouser *u = users->buckets[i]; u != NULL;
		     u = u->next)
			list[n++] = u;
	}
	pthread_mutex_unlock(&users->lock);
	*users_r = list;
	*count_r = n;
	return 0;
}

unsigned int users_count(struct users *users)
{
	unsigned int count;

	pthread_mutex_lock(&users->lock);
	count = users->count;
	pthread_mutex_unlock(&users->lock);
	return count;
}
