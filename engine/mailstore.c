/* mailstore.c: uploading mails and keeping them as stubs (see mailstore.h). */
#include "mailstore.h"
#include "dovecotidx.h"
#include "ids.h"
#include "keys.h"
#include "inolock.h"
#include "mailcache.h"
#include "mailpath.h"
#include "objgc.h"
#include "objstore.h"
#include "stub.h"

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
#include <sys/xattr.h>
#include <unistd.h>

struct mailstore {
	struct objstore *store;
	struct mailcache *mc;
	struct objgc *gc;
	int meta_fd;
	pthread_mutex_t guid_lock;
	struct inolock_table *inode_locks;
	pthread_mutex_t stats_lock;
	struct mailstore_stats stats;	/* protected by stats_lock */
	mailstore_delivery_cb *delivery_cb;
	void *delivery_context;
};

struct mailstore *mailstore_init(struct objstore *store, struct mailcache *mc,
				 struct objgc *gc, int meta_fd)
{
	struct mailstore *ms = calloc(1, sizeof(*ms));

	if (ms == NULL)
		return NULL;
	ms->store = store;
	ms->mc = mc;
	ms->gc = gc;
	ms->meta_fd = meta_fd;
	ms->inode_locks = inolock_init();
	if (ms->inode_locks == NULL) {
		free(ms);
		return NULL;
	}
	pthread_mutex_init(&ms->guid_lock, NULL);
	pthread_mutex_init(&ms->stats_lock, NULL);
	return ms;
}

void mailstore_deinit(struct mailstore **_ms)
{
	struct mailstore *ms = *_ms;

	if (ms == NULL)
		return;
	*_ms = NULL;
	pthread_mutex_destroy(&ms->guid_lock);
	pthread_mutex_destroy(&ms->stats_lock);
	inolock_deinit(&ms->inode_locks);
	free(ms);
}

void mailstore_lock_inode(struct mailstore *ms, ino_t ino)
{
	inolock_lock(ms->inode_locks, ino, true);
}

void mailstore_lock_inode_shared(struct mailstore *ms, ino_t ino)
{
	inolock_lock(ms->inode_locks, ino, false);
}

void mailstore_unlock_inode(struct mailstore *ms, ino_t ino)
{
	inolock_unlock(ms->inode_locks, ino);
}

static int read_guid(int dir_fd, char guid_r[33])
{
	ssize_t len = fgetxattr(dir_fd, BUNDLE_XATTR_GUID, guid_r, 32);

	if (len < 0)
		return errno == ENODATA ? 0 : -1;
	guid_r[len] = '\0';
	if (!ids_is_hex_id(guid_r)) {
		obox_log(OBOX_LOG_ERR, "folder has a damaged %s xattr\n",
			 BUNDLE_XATTR_GUID);
		errno = EIO;
		return -1;
	}
	return 1;
}

/* how deep sdbox folders are looked for below "mailboxes" (a GUID taken) */
#define SDBOX_FOLDER_DEPTH_MAX 16

/* guid is the GUID of a folder of the maildir++ tree folder belongs to
   other than folder: its root (the INBOX) or a ".Name" directory in it.
   Errors count as taken (a new GUID is always safe). */
static bool guid_taken(int meta_fd, const char *folder, const char *guid)
{
	char root[PATH_MAX], other[33];
	const char *slash = strrchr(folder, '/');
	const char *base = slash == NULL ? folder : slash + 1;
	struct dirent *de;
	bool taken = false;
	DIR *dir;
	int fd;

	/* a ".Name" folder's root is its parent, the INBOX is its own */
	if (base[0] == '.' && slash != NULL)
		snprintf(root, sizeof(root), "%.*s", (int)(slash - folder),
			 folder);
	else
		snprintf(root, sizeof(root), "%s", folder);
	fd = openat(meta_fd, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0)
		return true;
	if (strcmp(root, folder) != 0 && read_guid(fd, other) > 0 &&
	    strcmp(other, guid) == 0)
		taken = true;
	if (taken || (dir = fdopendir(fd)) == NULL) {
		close(fd);
		return true;
	}
	while (!taken && (de = readdir(dir)) != NULL) {
		int sub;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
		    (strcmp(root, folder) != 0 &&
		     strcmp(de->d_name, base) == 0))
			continue;	/* not a folder, or folder itself */
		sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY |
			     O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		taken = read_guid(sub, other) > 0 && strcmp(other, guid) == 0;
		close(sub);
	}
	closedir(dir);
	return taken;
}

/* an sdbox folder's "mailboxes" directory (the prefix of folder, a
   path below its user directory, up to and with its first "mailboxes"
   segment after the user's: a folder may be named so too) into root:
   false if none */
static bool sdbox_mailboxes_root(const char *folder, char root[PATH_MAX])
{
	const char *p = NULL, *next = strchr(folder, '/');

	while (next != NULL && p == NULL &&
	       (next = strstr(next, "/mailboxes")) != NULL) {
		next++;
		if (next[9] == '/' || next[9] == '\0')
			p = next;
	}
	if (p == NULL || (size_t)(p - folder) + 9 >= PATH_MAX)
		return false;
	snprintf(root, PATH_MAX, "%.*s", (int)(p - folder) + 9, folder);
	return true;
}

/* guid is the GUID of a directory below dir_fd (depth levels at most)
   other than the one at path skip (relative to the walk's start) */
static bool sdbox_guid_below(int dir_fd, const char *rel, const char *skip,
			     const char *guid, unsigned int depth)
{
	struct dirent *de;
	bool taken = false;
	DIR *dir;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return true;	/* errors count as taken */
	}
	while (!taken && (de = readdir(dir)) != NULL) {
		char path[PATH_MAX], other[33];
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, MAILPATH_DBOX_MAILS) == 0 ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		snprintf(path, sizeof(path), "%s%s%s", rel,
			 rel[0] == '\0' ? "" : "/", de->d_name);
		sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY |
			     O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		if (strcmp(path, skip) != 0 && read_guid(sub, other) > 0 &&
		    strcmp(other, guid) == 0)
			taken = true;
		else if (depth > 1)
			taken = sdbox_guid_below(sub, path, skip, guid,
						 depth - 1);
		close(sub);
	}
	closedir(dir);
	return taken;
}

/* guid is the GUID of another sdbox folder of folder's user (below its
   "mailboxes" directory); errors count as taken */
static bool sdbox_guid_taken(int meta_fd, const char *folder,
			     const char *guid)
{
	char root[PATH_MAX];
	bool taken;
	int fd;

	if (!sdbox_mailboxes_root(folder, root))
		return true;
	fd = openat(meta_fd, root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0)
		return true;
	taken = sdbox_guid_below(fd, "", folder + strlen(root) +
				 (folder[strlen(root)] == '/' ? 1 : 0), guid,
				 SDBOX_FOLDER_DEPTH_MAX);
	close(fd);
	return taken;
}

/* the Dovecot mailbox GUID of the folder at dir_fd (folder, relative to
   meta_fd) that no other folder of its user has: 1 with guid_r, 0 if
   there is none such */
static int dovecot_folder_guid(int meta_fd, const char *folder, int dir_fd,
			       char guid_r[33])
{
	int dbox_fd = openat(dir_fd, MAILPATH_DBOX_MAILS, O_RDONLY |
			     O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int ret;

	if (dbox_fd >= 0) {
		/* sdbox: its index's dbox-hdr */
		ret = dovecotidx_sdbox_guid(dbox_fd, guid_r) > 0 &&
			!sdbox_guid_taken(meta_fd, folder, guid_r);
		close(dbox_fd);
		return ret;
	}
	return dovecotidx_maildir_guid(dir_fd, guid_r) > 0 &&
		!guid_taken(meta_fd, folder, guid_r);
}

int mailstore_folder_guid(struct mailstore *ms, const char *folder,
			  char guid_r[33])
{
	int dir_fd, ret;

	dir_fd = openat(ms->meta_fd, folder,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0)
		return -1;
	ret = read_guid(dir_fd, guid_r);
	if (ret == 0) {
		pthread_mutex_lock(&ms->guid_lock);
		ret = read_guid(dir_fd, guid_r);
		if (ret == 0) {
			/* the folder's Dovecot mailbox GUID, which the
			   other writer of a split brain has too (dovecotidx.h),
			   unless another folder of the user has it (a copy of
			   the folder's files); else a new one */
			if (dovecot_folder_guid(ms->meta_fd, folder, dir_fd,
						guid_r) <= 0)
				ret = ids_generate(guid_r);
			if (ret == 0)
				ret = fsetxattr(dir_fd, BUNDLE_XATTR_GUID, guid_r,
						IDS_HEX_LEN, XATTR_CREATE);
		}
		pthread_mutex_unlock(&ms->guid_lock);
	}
	int saved = errno;

	close(dir_fd);
	errno = saved;
	return ret < 0 ? -1 : 0;
}

/* fill place_r for dir/name, classified as mp (a mail location or a
   maildir tmp/ entry): returns 1, or -1 with errno */
static int place_fill(struct mailstore *ms, const char *dir, const char *name,
		      const struct mailpath *mp, struct mail_place *place_r);

int mailstore_place(struct mailstore *ms, const char *dir, const char *name,
		    struct mail_place *place_r)
{
	struct mailpath mp;

	if (mailpath_classify(dir, name, &mp) < 0)
		return -1;
	if (!mp.is_mail)
		return 0;
	return place_fill(ms, dir, name, &mp, place_r);
}

int mailstore_tmp_place(struct mailstore *ms, const char *dir,
			const char *name, struct mail_place *place_r)
{
	struct mailpath mp;

	if (mailpath_classify(dir, name, &mp) < 0)
		return -1;
	if (!mp.is_maildir_tmp)
		return 0;
	return place_fill(ms, dir, name, &mp, place_r);
}

static int place_fill(struct mailstore *ms, const char *dir, const char *name,
		      const struct mailpath *mp_in, struct mail_place *place_r)
{
	const struct mailpath mp = *mp_in;
	char folder[PATH_MAX];

	if (mp.user_len > MAILPATH_NAME_MAX || mp.folder_len >= sizeof(folder)) {
		errno = EINVAL;
		return -1;
	}
	/* checked the way every backend will (S3 percent-encodes), so a
	   deep folder or a non-ASCII name fails here, clearly, on every
	   backend alike */
	if (!objstore_meta_value_fits(mp.user_dir) ||
	    !objstore_meta_value_fits(name)) {
		obox_log(OBOX_LOG_ERR, "cannot store mail %s/%s: its %s is "
			 "longer than %d bytes once encoded as object "
			 "metadata\n", dir, name,
			 objstore_meta_value_fits(name) ? "path" : "name",
			 OBJSTORE_META_ENCODED_VALUE_MAX);
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(place_r, 0, sizeof(*place_r));
	place_r->dir = dir;
	place_r->name = name;
	place_r->user_dir = mp.user_dir;
	place_r->is_delivery = mp.is_delivery;
	place_r->is_tmp = mp.is_maildir_tmp;
	memcpy(place_r->user, dir, mp.user_len);
	place_r->user[mp.user_len] = '\0';
	memcpy(folder, dir, mp.folder_len);
	folder[mp.folder_len] = '\0';
	/* the folder relative to the user dir */
	snprintf(place_r->folder, sizeof(place_r->folder), "%s",
		 mp.folder_len > mp.user_len ? folder + mp.user_len + 1 : "");

	if (mailstore_folder_guid(ms, folder, place_r->guid) < 0) {
		obox_log(OBOX_LOG_ERR, "folder GUID of %s: %s\n", folder,
			 strerror(errno));
		return -1;
	}
	return 1;
}

/* a new key (new oid) for a mail at place */
static int new_mail_key(const struct mail_place *place,
			char key_r[OBJSTORE_KEY_MAX + 1])
{
	char oid[IDS_HEX_LEN + 1];

	if (ids_generate_timed(oid) < 0)
		return -1;
	return keys_mail_key(place->user, place->guid, oid, key_r,
			    OBJSTORE_KEY_MAX + 1);
}

void mailstore_set_delivery_callback(struct mailstore *ms,
				     mailstore_delivery_cb *callback,
				     void *context)
{
	ms->delivery_cb = callback;
	ms->delivery_context = context;
}

/* a mail was stored at place: tell the delivery callback if that is a
   delivery */
static void note_delivery(struct mailstore *ms,
			  const struct mail_place *place)
{
	if (ms->delivery_cb != NULL && place->is_delivery)
		ms->delivery_cb(place, ms->delivery_context);
}

/* PUT size bytes of fd as key with the path/name/mtime metadata and cache
   them */
static int put_mail(struct mailstore *ms, const char *key, int fd,
		    uint64_t size, const char *path, const char *name,
		    time_t mtime)
{
	char mtime_str[32];
	const struct objstore_meta meta[] = {
		{ .name = "path", .value = path },
		{ .name = "name", .value = name },
		{ .name = "mtime", .value = mtime_str },
	};

	snprintf(mtime_str, sizeof(mtime_str), "%lld", (long long)mtime);
	if (objstore_put_fd(ms->store, key, fd, size, meta, 3) < 0) {
		obox_log(OBOX_LOG_ERR, "storing mail %s/%s failed: %s\n",
			 path, name, objstore_error());
		errno = EIO;
		return -1;
	}
	/* a failure is not fatal (a miss fetches it from the store) and
	   already logged */
	(void)mailcache_add_fd(ms->mc, key, fd, size);
	pthread_mutex_lock(&ms->stats_lock);
	ms->stats.mails_stored++;
	ms->stats.bytes_stored += size;
	pthread_mutex_unlock(&ms->stats_lock);
	return 0;
}

/* did the file change between the two fstat()s (a write slipped in)? */
static bool file_changed(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size ||
	       a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec ||
	       a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
	       a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
}

#define STORE_ATTEMPTS 3

void mailstore_drop(struct mailstore *ms, const char *key, bool unnamed)
{
	if (!unnamed) {
		(void)objgc_release(ms->gc, key);
		return;
	}
	(void)objgc_discard(ms->gc, key);
	pthread_mutex_lock(&ms->stats_lock);
	ms->stats.unnamed_discarded++;
	pthread_mutex_unlock(&ms->stats_lock);
}

/* The file was a stub before being rewritten: now that its new content is
   stored, the old object goes (at once if it never had a mail name). */
static void release_oldkey(struct mailstore *ms, int fd, bool unnamed)
{
	char oldkey[OBJSTORE_KEY_MAX + 1];

	if (stub_read_oldkey(fd, oldkey) <= 0)
		return;
	if (fd_removexattr(fd, STUB_XATTR_OLDKEY) < 0) {
		obox_log(OBOX_LOG_WARNING, "removing %s failed: %s\n",
			 STUB_XATTR_OLDKEY, strerror(errno));
	}
	mailstore_drop(ms, oldkey, unnamed);
}

/* mailstore_store() of a file whose previous object (STUB_XATTR_OLDKEY)
   never had a mail name if unnamed */
static int store_file(struct mailstore *ms, int fd,
		      const struct mail_place *place, bool unnamed)
{
	const char *dir = place->dir, *name = place->name;
	struct stat st, st2;
	struct stub stub;
	int ret;

	if (fstat(fd, &st) < 0)
		return -1;
	for (unsigned int attempt = 1;; attempt++) {
		if (!S_ISREG(st.st_mode)) {
			errno = EINVAL;
			return -1;
		}
		ret = stub_read(fd, &st, &stub);
		if (ret != 0)
			return ret < 0 ? -1 : 0;
		if (new_mail_key(place, stub.key) < 0)
			return -1;
		stub.size = (uint64_t)st.st_size;
		if (put_mail(ms, stub.key, fd, stub.size, place->user_dir, name,
			     st.st_mtim.tv_sec) < 0)
			return -1;
		/* callers hold the inode lock, which writes through this
		   mount respect; this catches anything else (and the lock
		   being forgotten) before bytes are thrown away */
		if (fstat(fd, &st2) < 0) {
			int saved = errno;

			(void)objgc_discard(ms->gc, stub.key);
			errno = saved;
			return -1;
		}
		if (!file_changed(&st, &st2))
			break;
		(void)objgc_discard(ms->gc, stub.key);
		if (attempt == STORE_ATTEMPTS) {
			obox_log(OBOX_LOG_ERR, "storing mail %s/%s failed: "
				 "it kept changing while being stored\n",
				 dir, name);
			errno = EIO;
			return -1;
		}
		st = st2;
	}
	if (stub_write(fd, &stub) < 0 || ftruncate(fd, 0) < 0) {
		int saved = errno;

		obox_log(OBOX_LOG_ERR, "making %s/%s a stub failed: %s\n",
			 dir, name, strerror(saved));
		(void)stub_clear(fd);
		(void)objgc_discard(ms->gc, stub.key);
		errno = saved;
		return -1;
	}
	/* the truncation must not show: a mail keeps its times (Dovecot's
	   maildir keeps the received date in the mtime) */
	struct timespec times[2] = { st.st_atim, st.st_mtim };

	if (futimens(fd, times) < 0) {
		obox_log(OBOX_LOG_WARNING, "keeping the times of %s/%s "
			 "failed: %s\n", dir, name, strerror(errno));
	}
	release_oldkey(ms, fd, unnamed);
	if (place->is_tmp) {
		/* no mail name yet: the rename into new/ or cur/ gives it
		   one (a lost mark only means a release instead of a
		   discard, later) */
		if (stub_set_unnamed(fd, true) < 0) {
			obox_log(OBOX_LOG_WARNING, "marking %s/%s %s failed: "
				 "%s\n", dir, name, STUB_XATTR_UNNAMED,
				 strerror(errno));
		}
		pthread_mutex_lock(&ms->stats_lock);
		ms->stats.mails_stored_at_fsync++;
		pthread_mutex_unlock(&ms->stats_lock);
	}
	note_delivery(ms, place);
	return 0;
}

int mailstore_store(struct mailstore *ms, int fd,
		    const struct mail_place *place)
{
	bool clear;
	int unnamed, ret;

	/* the object the file had (STUB_XATTR_OLDKEY) never had a name */
	unnamed = stub_read_unnamed(fd);
	if (unnamed < 0)
		return -1;
	/* stored for a mail location: the mark goes before anything is
	   stored, so that a named mail's object is never discarded */
	clear = unnamed > 0 && !place->is_tmp;
	if (clear && stub_set_unnamed(fd, false) < 0)
		return -1;
	ret = store_file(ms, fd, place, unnamed > 0);
	if (ret < 0 && clear) {
		int saved = errno;

		(void)stub_set_unnamed(fd, true);
		errno = saved;
	}
	return ret;
}

void mailstore_named(struct mailstore *ms, const struct mail_place *place)
{
	note_delivery(ms, place);
}

/* is key a mail of place's user and folder? */
static bool key_is_of_place(const char *key, const struct mail_place *place)
{
	char prefix[KEYS_PREFIX_MAX];
	struct keys_parsed parsed;

	return keys_user_prefix(place->user, prefix, sizeof(prefix)) == 0 &&
		keys_parse(prefix, key, &parsed) == KEYS_MAIL &&
		strcmp(parsed.guid, place->guid) == 0;
}

int mailstore_relocate(struct mailstore *ms, const struct stub *old,
		       const struct mail_place *place, struct stub *new_r)
{
	int fd, ret;

	if (key_is_of_place(old->key, place))
		return 0;	/* same user and folder */
	if (new_mail_key(place, new_r->key) < 0)
		return -1;

	new_r->size = old->size;
	if (mailcache_open(ms->mc, old->key, old->size, &fd) < 0)
		return -1;
	struct stat st;

	ret = fstat(fd, &st);
	if (ret == 0) {
		ret = put_mail(ms, new_r->key, fd, old->size, place->user_dir,
			       place->name, st.st_mtim.tv_sec);
	}
	int saved = errno;

	close(fd);
	errno = saved;
	if (ret < 0)
		return -1;
	pthread_mutex_lock(&ms->stats_lock);
	ms->stats.mails_relocated++;
	pthread_mutex_unlock(&ms->stats_lock);
	note_delivery(ms, place);
	return 1;
}

static int copy_fd(int in, int out, uint64_t size)
{
	char buf[65536];
	uint64_t off = 0;

	while (off < size) {
		size_t want = size - off < sizeof(buf) ? size - off : sizeof(buf);
		ssize_t ret = pread(in, buf, want, (off_t)off);

		if (ret <= 0) {
			if (ret == 0)
				errno = EIO;
			return -1;
		}
		ssize_t wret = pwrite(out, buf, (size_t)ret, (off_t)off);

		if (wret != ret) {
			if (wret >= 0)
				errno = ENOSPC;
			return -1;
		}
		off += (uint64_t)ret;
	}
	return 0;
}

int mailstore_unstub(struct mailstore *ms, int fd, bool keep_content)
{
	struct stat st;
	struct stub stub;
	int ret, cache_fd;

	if (fstat(fd, &st) < 0)
		return -1;
	ret = stub_read(fd, &st, &stub);
	if (ret <= 0)
		return ret;
	if (keep_content && stub.size > 0) {
		if (mailcache_open(ms->mc, stub.key, stub.size, &cache_fd) < 0)
			return -1;
		ret = copy_fd(cache_fd, fd, stub.size);
		int saved = errno;

		close(cache_fd);
		if (ret < 0) {
			(void)ftruncate(fd, 0);
			errno = saved;
			return -1;
		}
	}
	/* the object stays until the new content is stored (or the file's
	   last name goes): until then it is the only durable copy */
	if (fd_setxattr(fd, STUB_XATTR_OLDKEY, stub.key, strlen(stub.key),
			0) < 0 || stub_clear(fd) < 0) {
		int saved = errno;

		(void)ftruncate(fd, 0);
		(void)stub_write(fd, &stub);
		errno = saved;
		return -1;
	}
	pthread_mutex_lock(&ms->stats_lock);
	ms->stats.mails_unstubbed++;
	pthread_mutex_unlock(&ms->stats_lock);
	return 0;
}

void mailstore_get_stats(struct mailstore *ms, struct mailstore_stats *stats_r)
{
	pthread_mutex_lock(&ms->stats_lock);
	*stats_r = ms->stats;
	pthread_mutex_unlock(&ms->stats_lock);
}
