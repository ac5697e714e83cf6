/* splitbrain.c: noticing that another machine serves a user too, and
 * merging its mails (see upload-private.h, CONTRACT.md section 6).
 *
 * Two machines serving one user (a failover that did not stop the old
 * one) each write their own bundle names.  A full upload pass lists a
 * root's bundles at most every split_check_interval; names this machine
 * neither wrote nor condemned are the other writer's.  Its maildir flags
 * and expunges are merged (splitmerge.h: both sides' system flags; its
 * expunges of mails untouched here, three-way); its other index changes
 * are not, but no mail is lost: the folder's mail objects that no
 * local stub references (and that are not this machine's own garbage) are
 * put back as stubs by putback.c, with the load's rescan's rules, and the
 * next base of the root (forced) holds them; the other writer's bundles
 * are condemned with it.  Local stubs whose objects the other writer
 * deleted (it expunged the mail; objgc.h keeps them a grace period and
 * never deletes one another writer's bundle lists) are removed, so the
 * merged base never points at a deleted object.  Folders created,
 * renamed or deleted by the other writer: splitfolders.h.  sdbox mails
 * come back as u.N stubs (a name another mail has here, or a UID given
 * here before: the next free one, putback.h) and the folder's index is
 * marked for Dovecot to rebuild it from its files; the flags and
 * keywords of the sdbox mails both have are merged (sdboxmerge.h), those
 * of a mail put back at a later check, once Dovecot has rebuilt the
 * index.
 */
#include "ids.h"
#include "lazydir.h"
#include "monotime.h"
#include "upload-private.h"
#include "pathopen.h"
#include "log.h"
#include "roots.h"
#include "keylist.h"
#include "keys.h"
#include "objgc.h"
#include "objstore.h"
#include "putback.h"
#include "sdboxmerge.h"
#include "splitfolders.h"
#include "splitmerge.h"
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

struct list_ctx {
	const char *user_prefix;
	const char *guid;	/* the root listed ("" = the user root) */
	struct keylist bundles, mails;
	unsigned int keys;	/* keys the listings gave */
	bool mails_listing;	/* the listing of a folder's mails */
};

static int list_cb(const struct objstore_list_entry *entry, void *context)
{
	struct list_ctx *ctx = context;
	struct keys_parsed parsed;
	struct bundle_name name;
	const char *error;

	if (entry->is_prefix)
		return 0;
	ctx->keys++;
	switch (keys_parse(ctx->user_prefix, entry->key, &parsed)) {
	case KEYS_ROOT_BUNDLE:
	case KEYS_FOLDER_BUNDLE:
		/* a folder's mails and bundles are listed apart */
		if (ctx->mails_listing)
			break;
		if (strcmp(parsed.guid, ctx->guid) == 0 &&
		    bundle_name_parse(parsed.name, &name, &error) == 0)
			(void)keylist_add(&ctx->bundles, entry->key);
		break;
	case KEYS_MAIL:
		if (strcmp(parsed.guid, ctx->guid) == 0)
			(void)keylist_add(&ctx->mails, entry->key);
		break;
	case KEYS_OTHER:
		break;
	}
	return 0;
}

/* the stubs below the folder's subdirs[first .. end) of cur, new, tmp,
   dbox-Mails: keys[i] is at paths[i] ("cur/<name>") */
static void local_stubs(int folder_fd, unsigned int first, unsigned int end,
			struct keylist *keys, struct keylist *paths)
{
	static const char *const subdirs[] = {
		"cur", "new", "tmp", MAILPATH_DBOX_MAILS
	};

	for (unsigned int i = first; i < end; i++) {
		struct bundle_tree *tree;
		const char *error;
		int fd = openat(folder_fd, subdirs[i], O_RDONLY | O_DIRECTORY |
				O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			continue;
		if (bundle_tree_scan(fd, &tree, &error) == 0) {
			for (size_t e = 0; e < tree->count; e++) {
				const struct bundle_entry *be =
					&tree->entries[e];
				char path[PATH_MAX];

				if (be->type != BUNDLE_ENTRY_STUB)
					continue;
				snprintf(path, sizeof(path), "%s/%s",
					 subdirs[i], be->path);
				if (keylist_add(keys, be->key) < 0)
					continue;
				if (keylist_add(paths, path) < 0) {
					free(keys->keys[--keys->count]);
					continue;
				}
			}
			bundle_tree_free(&tree);
		}
		close(fd);
	}
}

/* The local stubs whose objects are gone from the store (the folder's
   listing lacks them and a HEAD says 404): the other writer expunged the
   mail and deleted its object; a stub of it would be an index pointing
   at a deleted object (CONTRACT section 5), so it goes, as the expunge
   does on that side.  A stub made after the listing has its object
   stored already (a mail is stored before it gets its name): the HEAD
   finds it.  Returns the count removed; sets changed[] for cur/new and
   adds the names removed to names_r. */
static unsigned int drop_gone(struct upload_ctx *ctx, int folder_fd,
			      const struct keylist *keys,
			      const struct keylist *paths,
			      const struct keylist *listed,
			      bool changed[SPLITMERGE_CHANGED_COUNT],
			      struct keylist *names_r)
{
	unsigned int dropped = 0;

	for (size_t i = 0; i < keys->count; i++) {
		struct objstore_stat st;

		if (keylist_sorted_has(listed, keys->keys[i]) ||
		    objgc_is_garbage(ctx->gc, keys->keys[i]))
			continue;
		if (objstore_head(ctx->store, keys->keys[i], &st) == 0) {
			objstore_stat_free(&st);
			continue;
		}
		if (errno != ENOENT) {
			obox_log(OBOX_LOG_WARNING, "split brain: HEAD %s "
				 "failed: %s\n", keys->keys[i],
				 objstore_error());
			continue;
		}
		if (unlinkat(folder_fd, paths->keys[i], 0) < 0) {
			obox_log(OBOX_LOG_ERR, "split brain: unlink(%s) "
				 "failed: %s\n", paths->keys[i],
				 strerror(errno));
			continue;
		}
		obox_log(OBOX_LOG_WARNING, "split brain: %s was expunged by "
			 "the other writer (its object %s is gone): removed "
			 "here too\n", paths->keys[i], keys->keys[i]);
		changed[paths->keys[i][0] == 'c' ? SPLITMERGE_CUR :
			SPLITMERGE_NEW] = true;
		(void)keylist_add(names_r, paths->keys[i]);
		dropped++;
	}
	return dropped;
}

/* put the mail key back into folder_fd (putback.h): returns its mail
   directory (static: "cur", "new", "dbox-Mails") or NULL; the name made
   is added to names_r ("<subdir>/<name>") */
static const char *put_back(struct upload_ctx *ctx, int folder_fd,
			    const char *key, struct keylist *names_r,
			    bool *failed_r)
{
	char renamed[MAILPATH_NAME_MAX + 1];
	struct putback_mail mail;
	enum putback_stage stage;
	const char *ret = NULL;
	char made[PATH_MAX];

	switch (putback_head(ctx->store, key, "split brain", &mail)) {
	case -1:
		obox_log(OBOX_LOG_WARNING, "split brain: HEAD %s failed: %s\n",
			 key, objstore_error());
		*failed_r = true;
		return NULL;
	case 0:
		return NULL;	/* logged: never put back */
	}
	switch (putback_create(folder_fd, &mail, key, &stage, renamed)) {
	case -1:
		obox_log(OBOX_LOG_ERR, "split brain: putting back %s failed: "
			 "%s\n", key, strerror(errno));
		*failed_r = true;
		break;
	case 1:
		ret = mail.dir == MAILPATH_DIR_CUR ? "cur" :
			mail.dir == MAILPATH_DIR_NEW ? "new" :
			MAILPATH_DBOX_MAILS;
		if (renamed[0] != '\0')
			obox_log(OBOX_LOG_WARNING, "split brain: mail %s put "
				 "back as %s/%s: %s is another mail's\n", key,
				 ret, renamed, mail.name);
		if (snprintf(made, sizeof(made), "%s/%s", ret,
			     renamed[0] != '\0' ? renamed : mail.name) <
		    (int)sizeof(made))
			(void)keylist_add(names_r, made);
		break;
	}
	putback_mail_free(&mail);
	return ret;
}

/* key is a mail the other writer expunged: its tree (a bundle with a
   mail watermark) does not reference it though the object was made
   before that mark (bundle-format.md): its object waits out the other
   writer's grace, not to be put back here */
static bool expunged_there(const struct splitmerge_trees *trees,
			   const struct keylist *other_keys, const char *key)
{
	const char *oid = keys_key_oid(key);
	uint64_t us;

	return trees->other != NULL && trees->other_mark_us != 0 &&
		oid != NULL && ids_timed_us(oid, &us) &&
		us < trees->other_mark_us &&
		!keylist_sorted_has(other_keys, key);
}

/* The records of an sdbox flags merge (sdboxmerge.h) appended to the
   dovecot.index.log of the folder at path: through the front end, under
   Dovecot's lock, as sdbox_rebuild() appends its mark; without a front
   end (no Dovecot on a mount) to the file here, under the snapshot lock.
   Not at all without a log (nothing for Dovecot to read them from: the
   next check tries again).  Returns 0, or -1 (logged). */
static int sdbox_flags_append(struct upload_ctx *ctx, struct ouser *user,
			      const char *path,
			      const struct sdboxmerge_result *flags)
{
	char log_path[PATH_MAX];
	int user_fd, fd = -1, ret = -1;

	snprintf(log_path, sizeof(log_path), "%s%s%s/dovecot.index.log", path,
		 path[0] == '\0' ? "" : "/", MAILPATH_DBOX_MAILS);
	if (ctx->file_append != NULL) {
		ret = ctx->file_append(user, log_path, flags->records,
				       flags->size, ctx->dir_changed_context);
		if (ret == 0 || errno != ENOTSUP) {
			if (ret < 0)
				obox_log(OBOX_LOG_WARNING, "split brain: "
					 "appending the other writer's flags "
					 "to %s failed: %s: merged at the next "
					 "check\n", log_path, strerror(errno));
			return ret;
		}
	}
	users_snapshot_lock(user);
	user_fd = openat(ctx->meta_fd, user->name, O_RDONLY | O_DIRECTORY |
			 O_NOFOLLOW | O_CLOEXEC);
	if (user_fd >= 0) {
		int folder_fd = path[0] == '\0' ? dup(user_fd) :
			pathopen(user_fd, path, O_RDONLY | O_DIRECTORY);
		int dbox_fd = folder_fd < 0 ? -1 :
			openat(folder_fd, MAILPATH_DBOX_MAILS, O_RDONLY |
			       O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (dbox_fd >= 0) {
			fd = openat(dbox_fd, "dovecot.index.log", O_WRONLY |
				    O_APPEND | O_NOFOLLOW | O_CLOEXEC);
			close(dbox_fd);
		}
		if (folder_fd >= 0)
			close(folder_fd);
		close(user_fd);
	}
	if (fd >= 0) {
		ssize_t n = write(fd, flags->records, flags->size);

		if (n == (ssize_t)flags->size)
			ret = 0;
		else if (n >= 0)
			errno = EIO;	/* short: no space */
		close(fd);
	}
	users_snapshot_unlock(user);
	if (ret < 0)
		obox_log(OBOX_LOG_WARNING, "split brain: appending the other "
			 "writer's flags to %s failed: %s: merged at the next "
			 "check\n", log_path, strerror(errno));
	else if (ctx->dir_changed != NULL)
		ctx->dir_changed(user, log_path, ctx->dir_changed_context);
	return ret;
}

/* sdbox mails were put back into the dbox-Mails of the folder at path:
   Dovecot rebuilds its index from the u.N files (putback.h).  Called
   without the snapshot lock: the mark is appended to dovecot.index.log
   through the front end, as Dovecot's own processes append to it (under
   its lock, at the end of the file they see: a Dovecot appending at the
   same moment neither overwrites it nor is moved by it); only without a
   front end, or without a log, is the file written here. */
static void sdbox_rebuild(struct upload_ctx *ctx, struct ouser *user,
			  const char *path)
{
	char log_path[PATH_MAX];
	int user_fd, fd, ret = -1;

	snprintf(log_path, sizeof(log_path), "%s%s%s/dovecot.index.log", path,
		 path[0] == '\0' ? "" : "/", MAILPATH_DBOX_MAILS);
	if (ctx->file_append != NULL &&
	    ctx->file_append(user, log_path, putback_sdbox_fsckd,
			     sizeof(putback_sdbox_fsckd),
			     ctx->dir_changed_context) == 0)
		return;
	if (ctx->file_append != NULL && errno != ENOENT &&
	    errno != ENOTSUP) {
		obox_log(OBOX_LOG_ERR, "split brain: appending to %s failed: "
			 "%s: Dovecot finds the mails put back at its next "
			 "rebuild of the folder's index\n", log_path,
			 strerror(errno));
		return;
	}
	/* no log (or no front end): marked here, under the snapshot lock */
	users_snapshot_lock(user);
	user_fd = openat(ctx->meta_fd, user->name, O_RDONLY | O_DIRECTORY |
			 O_NOFOLLOW | O_CLOEXEC);
	fd = user_fd < 0 ? -1 : pathopen(user_fd, path[0] == '\0' ?
					  MAILPATH_DBOX_MAILS : path,
					  O_RDONLY | O_DIRECTORY);
	if (fd >= 0 && path[0] != '\0') {
		int dfd = openat(fd, MAILPATH_DBOX_MAILS, O_RDONLY |
				 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		close(fd);
		fd = dfd;
	}
	if (fd >= 0)
		ret = putback_sdbox_force_rebuild(fd);
	if (ret < 0)
		obox_log(OBOX_LOG_ERR, "split brain: marking the index of "
			 "%s/%s for a rebuild failed: %s: Dovecot finds the "
			 "mails put back at its next rebuild\n", path,
			 MAILPATH_DBOX_MAILS, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (user_fd >= 0)
		close(user_fd);
	users_snapshot_unlock(user);
	if (ret > 0 && ctx->dir_changed != NULL) {
		char file[PATH_MAX];

		snprintf(file, sizeof(file), "%s%s%s/dovecot.index", path,
			 path[0] == '\0' ? "" : "/", MAILPATH_DBOX_MAILS);
		ctx->dir_changed(user, log_path, ctx->dir_changed_context);
		ctx->dir_changed(user, file, ctx->dir_changed_context);
	}
}

/* the mails of the folder at path no local stub knows: back as stubs;
   local stubs whose objects the other writer deleted: gone.  listed is
   the folder's mail keys, sorted. */
static void lazy_expand_mail_dirs(struct upload_ctx *ctx, int folder_fd)
{
	static const char *const subdirs[] = { "cur", "new" };

	for (unsigned int i = 0; ctx->lazy != NULL && i < 2; i++) {
		int fd = openat(folder_fd, subdirs[i], O_RDONLY | O_DIRECTORY |
				O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			continue;
		(void)lazydir_expand(ctx->lazy, fd);	/* logged */
		close(fd);
	}
}

/* tell the front end that directory sub (relative to the root at path)
   changed behind the kernel */
static void tell_changed(struct upload_ctx *ctx, struct ouser *user,
			 const char *path, const char *sub)
{
	char full[PATH_MAX];

	if (ctx->dir_changed == NULL)
		return;
	snprintf(full, sizeof(full), "%s%s%s", path,
		 path[0] == '\0' || sub[0] == '\0' ? "" : "/", sub);
	ctx->dir_changed(user, full, ctx->dir_changed_context);
}

/* Tell the front end of the names the merge of the folder at path
   changed (names: relative to it, e.g. "cur/<name>", ".Folder"), and of
   the files of changed[] it may have created (a name the kernel was told
   is missing must not stay missing).  The front end only queues: called
   under the snapshot lock, before any change of Dovecot's can follow the
   merge. */
static void names_changed(struct upload_ctx *ctx, struct ouser *user,
			  const char *path, const struct keylist *names,
			  const bool changed[SPLITMERGE_CHANGED_COUNT])
{
	static const enum splitmerge_changed files[] = {
		SPLITMERGE_KEYWORDS, SPLITMERGE_SUBSCRIPTIONS,
	};
	const char *sep = path[0] == '\0' ? "" : "/";
	char dir[PATH_MAX];

	if (ctx->name_changed == NULL)
		return;
	for (size_t i = 0; i < names->count; i++) {
		const char *slash = strrchr(names->keys[i], '/');

		if (slash == NULL) {
			ctx->name_changed(user, path, names->keys[i],
					  ctx->dir_changed_context);
			continue;
		}
		if (snprintf(dir, sizeof(dir), "%s%s%.*s", path, sep,
			     (int)(slash - names->keys[i]), names->keys[i]) >=
		    (int)sizeof(dir))
			continue;
		ctx->name_changed(user, dir, slash + 1,
				  ctx->dir_changed_context);
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (changed[files[i]]) {
			ctx->name_changed(user, path,
					  splitmerge_changed_names[files[i]],
					  ctx->dir_changed_context);
		}
	}
}

/* Returns true if the merge is complete: the folder was there and every
   mail of the other writer this machine lacks was put back (or can never
   be); false if it is to be tried again (the other writer's bundles are
   not taken in: its next base must not claim them as parent). */
static bool merge_mails(struct upload_ctx *ctx, struct ouser *user,
			const char *path, const struct keylist *listed,
			struct splitmerge_trees *trees,
			const struct splitfolders_plan *folders,
			struct splitfolders_counts *folder_counts,
			unsigned int *merged_r, unsigned int *dropped_r,
			unsigned int *expunged_r, unsigned int *flagged_r)
{
	bool failed = false;
	struct keylist local = { 0 }, local_paths = { 0 }, local_sorted = { 0 };
	struct keylist changed_dirs = { 0 }, other_keys = { 0 };
	/* the names changed (relative to the folder: "cur/<name>", a
	   folder's ".Name"): the kernel's entries of them go */
	struct keylist names = { 0 };
	unsigned int merged = 0, dropped = 0, expunged = 0, flagged = 0;
	bool changed[SPLITMERGE_CHANGED_COUNT] = { false };
	bool sdbox_put_back = false, folder_fd_ok;
	struct sdboxmerge_result sdbox_flags = { 0 };
	int user_fd, folder_fd;

	users_snapshot_lock(user);
	user_fd = openat(ctx->meta_fd, user->name, O_RDONLY | O_DIRECTORY |
			 O_NOFOLLOW | O_CLOEXEC);
	folder_fd = user_fd < 0 ? -1 : path[0] == '\0' ? dup(user_fd) :
		pathopen(user_fd, path, O_RDONLY | O_DIRECTORY);
	folder_fd_ok = folder_fd >= 0;
	if (folder_fd >= 0 && folders != NULL) {
		/* the folders below this root first: nothing of cur/ and
		   new/ below */
		splitfolders_apply(folders, folder_fd, &changed_dirs, &names,
				   folder_counts);
	}
	if (folder_fd >= 0) {
		struct keylist tmp = { 0 }, tmp_paths = { 0 };

		/* the merge reads, creates, renames and removes stubs in cur/
		   and new/ by name: lazy ones are made first (lazydir.h) */
		lazy_expand_mail_dirs(ctx, folder_fd);
		local_stubs(folder_fd, 0, 2, &local, &local_paths);
		for (size_t i = 0; i < local.count; i++)
			(void)keylist_add(&local_sorted, local.keys[i]);
		/* stubs stored at their fsync in tmp/ and not renamed yet
		   (store_on_fsync) are mails of this folder too: put back,
		   they would be duplicated by their rename (and released by
		   it: the put-back stub would be the rename's victim); so
		   are sdbox mails (not merged otherwise) */
		local_stubs(folder_fd, 2, 4, &tmp, &tmp_paths);
		for (size_t i = 0; i < tmp.count; i++)
			(void)keylist_add(&local_sorted, tmp.keys[i]);
		keylist_sort(&local_sorted);
		keylist_clear(&tmp);
		keylist_clear(&tmp_paths);
	}
	for (size_t i = 0; trees->other != NULL && i < trees->other->count;
	     i++) {
		if (trees->other->entries[i].type == BUNDLE_ENTRY_STUB)
			(void)keylist_add(&other_keys,
					  trees->other->entries[i].key);
	}
	keylist_sort(&other_keys);
	for (size_t i = 0; folder_fd >= 0 && i < listed->count; i++) {
		const char *key = listed->keys[i], *sub;

		if (keylist_sorted_has(&local_sorted, key) ||
		    expunged_there(trees, &other_keys, key))
			continue;
		if (objgc_is_garbage(ctx->gc, key) &&
		    (!keylist_sorted_has(&other_keys, key) ||
		     !splitmerge_changed_there(trees, key) ||
		     objgc_revive(ctx->gc, key) < 0))
			continue;	/* expunged here (the walk of
					   changed_there() only for a mail
					   the other writer has) */
		sub = put_back(ctx, folder_fd, key, &names, &failed);
		if (sub == NULL)
			continue;
		merged++;
		if (strcmp(sub, MAILPATH_DBOX_MAILS) == 0) {
			sdbox_put_back = true;
			if (!keylist_has(&changed_dirs, sub))
				(void)keylist_add(&changed_dirs, sub);
		} else {
			changed[sub[0] == 'c' ? SPLITMERGE_CUR :
				SPLITMERGE_NEW] = true;
		}
	}
	if (merged > 0) {
		/* a put-back may have made the mail directories (putback.h):
		   a missing one the kernel knows of must not stay missing */
		static const char *const mail_dirs[] = {
			"cur", "new", "tmp", MAILPATH_DBOX_MAILS
		};

		for (unsigned int i = 0; i < 4; i++)
			(void)keylist_add(&names, mail_dirs[i]);
	}
	if (folder_fd >= 0 && merged > 0) {
		/* the mails put back are the other writer's: its flags for
		   them are merged below too */
		keylist_clear(&local);
		keylist_clear(&local_paths);
		local_stubs(folder_fd, 0, 2, &local, &local_paths);
	}
	if (folder_fd >= 0) {
		dropped = drop_gone(ctx, folder_fd, &local, &local_paths,
				    listed, changed, &names);
		/* after drop_gone(), in this order: each removes or renames
		   stubs by these paths */
		expunged = splitmerge_expunges(folder_fd, ctx->gc, &local,
					       &local_paths, trees, changed,
					       &names);
		flagged = splitmerge_flags(folder_fd, &local, &local_paths,
					   trees->other, changed, &names);
		if (trees->other != NULL &&
		    sdboxmerge_flags(folder_fd, trees->other, &sdbox_flags) < 0) {
			obox_log(OBOX_LOG_WARNING, "split brain: reading the "
				 "sdbox index of %s failed: %s: its flags are "
				 "merged at the next check\n",
				 path[0] == '\0' ? "." : path, strerror(errno));
			failed = true;
		} else if (sdbox_flags.incomplete) {
			obox_log(OBOX_LOG_WARNING, "split brain: the sdbox "
				 "index files of %s (here or the other "
				 "writer's) are damaged: its flags are not "
				 "merged\n", path[0] == '\0' ? "." : path);
		}
		flagged += sdbox_flags.mails;
		(void)splitmerge_lines(folder_fd, trees->other, changed);
	}
	if (merged > 0 || dropped > 0 || expunged > 0 || flagged > 0 ||
	    changed_dirs.count > 0)
		users_changed_behind(user);
	names_changed(ctx, user, path, &names, changed);
	keylist_clear(&names);
	if (folder_fd >= 0)
		close(folder_fd);
	if (user_fd >= 0)
		close(user_fd);
	users_snapshot_unlock(user);
	keylist_clear(&local);
	keylist_clear(&local_paths);
	keylist_clear(&local_sorted);
	keylist_clear(&other_keys);
	for (unsigned int i = 0; i < SPLITMERGE_CHANGED_COUNT; i++) {
		if (changed[i])
			tell_changed(ctx, user, path,
				     splitmerge_changed_names[i]);
	}
	for (size_t i = 0; i < changed_dirs.count; i++)
		tell_changed(ctx, user, path, changed_dirs.keys[i]);
	keylist_clear(&changed_dirs);
	if (sdbox_flags.records != NULL &&
	    sdbox_flags_append(ctx, user, path, &sdbox_flags) < 0)
		failed = true;	/* the other writer's bundles wait */
	sdboxmerge_result_free(&sdbox_flags);
	if (sdbox_put_back)
		sdbox_rebuild(ctx, user, path);
	*merged_r = merged;
	*dropped_r = dropped;
	*expunged_r = expunged;
	*flagged_r = flagged;
	return folder_fd_ok && !failed;
}

/* a folder GUID some root of user's has (splitfolders.h: not made
   twice); under the user's upload lock */
static bool known_guid(const char *guid, void *context)
{
	struct ouser *user = context;

	return roots_find(&user->roots, guid) != NULL;
}

/* The base this machine's chain of root builds on is not in listed (the
   root's bundles): another machine deleted it (it stored that base, this
   one loaded it, and it condemned it at a rebase or a folder delete
   before it knew).  Diffs of it cannot be read by anyone: the root's next
   upload is a new base (whose parent is that base: a merge still finds
   the common base by it). */
static void base_gone_check(struct ouser *user, struct upload_root *root,
			    const struct keylist *listed, const char *prefix)
{
	const char *slash, *error;
	struct bundle_name name;

	if (root->base == NULL || root->key_count == 0 ||
	    keylist_has(listed, root->keys[0]) ||
	    (slash = strrchr(root->keys[0], '/')) == NULL ||
	    bundle_name_parse(slash + 1, &name, &error) < 0 || name.is_diff)
		return;
	obox_log(OBOX_LOG_WARNING, "split brain: the base %s this machine's "
		 "bundles of %s build on is gone (another machine deleted "
		 "it): storing a new base\n", root->keys[0], prefix);
	bundle_tree_free(&root->base);
	bundle_tree_free(&root->last);
	users_changed_behind(user);
}

bool splitbrain_check(struct upload_ctx *ctx, struct ouser *user,
		      const char *guid, const char *path)
{
	struct upload_root *root = roots_get(&user->roots, guid);
	char prefix[KEYS_PREFIX_MAX], list[KEYS_PREFIX_MAX];
	struct list_ctx lctx = { .user_prefix = user->prefix, .guid = guid };
	struct keylist foreign_keys = { 0 };
	unsigned int foreign = 0, merged = 0, dropped = 0, flagged = 0;
	unsigned int expunged = 0, gets = 0;
	struct splitfolders_counts folder_counts = { 0 };
	struct splitfolders_plan *folders;
	struct splitmerge_trees trees = { 0 };
	struct splitmerge_local local;
	int64_t now = monotime_secs();

	if (root == NULL || ctx->split_check_interval == 0 ||
	    (root->split_checked != 0 &&
	     now - root->split_checked < (int64_t)ctx->split_check_interval))
		return false;
	root->split_checked = now;
	/* the root's bundles: a listing of its idx/, whatever the size
	   of the folder; its mails only once another writer is seen */
	if (keys_idx_prefix(user->prefix, guid, list, sizeof(list)) < 0 ||
	    keys_root_list_prefix(user->prefix, guid, prefix,
				  sizeof(prefix)) < 0)
		return false;	/* not of a valid user: cannot be */
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.split_checks++;
	pthread_mutex_unlock(&ctx->stats_lock);
	if (objstore_list(ctx->store, list, NULL, list_cb, &lctx) < 0) {
		obox_log(OBOX_LOG_WARNING, "split-brain check of %s failed: "
			 "%s\n", prefix, objstore_error());
		goto out;
	}
	for (size_t i = 0; i < lctx.bundles.count; i++) {
		const char *key = lctx.bundles.keys[i];
		bool ours = false;

		for (size_t k = 0; k < root->key_count && !ours; k++)
			ours = strcmp(root->keys[k], key) == 0;
		if (ours || objgc_is_garbage(ctx->gc, key))
			continue;
		(void)keylist_add(&foreign_keys, key);
		foreign++;
	}
	if (foreign == 0) {
		/* (with foreign bundles, the merge stores a new base) */
		base_gone_check(user, root, &lctx.bundles, prefix);
		goto out;
	}
	obox_log(OBOX_LOG_WARNING, "split brain: another machine wrote %u "
		 "bundles of %s (user %s, %s): merging its mails, folders, "
		 "maildir flags and expunges\n", foreign, prefix, user->name,
		 path[0] == '\0' ? "the user directory" : path);
	/* a folder's mail objects: the merge puts back those the other
	   machine stored (the user root has none) */
	lctx.mails_listing = true;
	if (guid[0] != '\0' &&
	    objstore_list(ctx->store, prefix, NULL, list_cb, &lctx) < 0) {
		/* checked again at the user's next pass (not at once: the
		   store may be down) */
		obox_log(OBOX_LOG_WARNING, "split brain: listing the mails of "
			 "%s failed: %s: the merge is tried again at the next "
			 "upload\n", prefix, objstore_error());
		root->split_checked = 0;
		foreign = 0;
		goto out;
	}
	/* fetched before the tree is locked: GETs take time */
	local.base_name = &root->base_name;
	local.base = root->base;
	splitmerge_fetch(ctx->store, &foreign_keys, &local, &trees);
	folders = splitfolders_plan(ctx->store, ctx->gc, user->prefix,
				    root->last != NULL ? root->last :
				    root->base, &trees, known_guid, user,
				    &folder_counts);
	gets = trees.gets + folder_counts.gets;
	keylist_sort(&lctx.mails);
	if (!merge_mails(ctx, user, path, &lctx.mails, &trees, folders,
			 &folder_counts, &merged, &dropped, &expunged,
			 &flagged)) {
		/* its bundles stay foreign: merged again at the next check
		   (a pass sees the folder where a merge just moved it) */
		obox_log(OBOX_LOG_WARNING, "split brain: the merge of %s (%s) "
			 "is not complete: it is tried again at the next "
			 "check\n", prefix, path);
	} else {
		/* condemned with this root's next base, which holds the
		   merge and names the other writer's newest bundle as its
		   parent */
		for (size_t i = 0; i < foreign_keys.count; i++)
			(void)roots_add_key(root, foreign_keys.keys[i]);
		if (trees.other != NULL) {
			root->merge_parent = trees.other_name;
			root->has_merge_parent = true;
		}
		bundle_tree_free(&root->base);
		bundle_tree_free(&root->last);
	}
	splitfolders_plan_free(&folders);
	splitmerge_trees_free(&trees);
	users_changed_behind(user);
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.split_brains++;
	ctx->stats.split_mails_merged += merged + folder_counts.revived;
	ctx->stats.split_mails_dropped += dropped;
	ctx->stats.split_flags_merged += flagged;
	ctx->stats.split_mails_expunged += expunged;
	ctx->stats.split_bundles_read += gets;
	ctx->stats.split_folders_merged += folder_counts.created +
		folder_counts.renamed + folder_counts.claimed +
		folder_counts.removed;
	pthread_mutex_unlock(&ctx->stats_lock);
out:
	pthread_mutex_lock(&ctx->stats_lock);
	ctx->stats.split_check_keys += lctx.keys;
	pthread_mutex_unlock(&ctx->stats_lock);
	keylist_clear(&lctx.bundles);
	keylist_clear(&lctx.mails);
	keylist_clear(&foreign_keys);
	return foreign > 0;
}

/* the folder at path (relative to the user dir) is there */
static bool folder_there(struct upload_ctx *ctx, struct ouser *user,
			 const char *path)
{
	int user_fd = openat(ctx->meta_fd, user->name, O_RDONLY | O_DIRECTORY |
			     O_NOFOLLOW | O_CLOEXEC);
	int fd = user_fd < 0 ? -1 : pathopen(user_fd, path,
					     O_RDONLY | O_DIRECTORY);

	if (fd >= 0)
		close(fd);
	if (user_fd >= 0)
		close(user_fd);
	return fd >= 0;
}

bool splitbrain_check_gone(struct upload_ctx *ctx, struct ouser *user)
{
	int64_t now = monotime_secs();
	struct gone_root *g, *next;
	bool made = false;

	if (ctx->split_check_interval == 0)
		return false;
	for (g = user->roots.gone; g != NULL; g = next) {
		bool changed[SPLITMERGE_CHANGED_COUNT] = { false };
		struct keylist changed_dirs = { 0 }, names = { 0 };
		struct splitfolders_counts counts = { 0 };
		struct splitfolders_plan *plan;
		char prefix[KEYS_PREFIX_MAX];
		int user_fd;

		next = g->next;
		if (g->checked != 0 &&
		    now - g->checked < (int64_t)ctx->split_check_interval)
			continue;
		g->checked = now;
		if (keys_root_list_prefix(user->prefix, g->guid, prefix,
					  sizeof(prefix)) < 0 ||
		    !objgc_has_garbage_below(ctx->gc, prefix) ||
		    roots_find(&user->roots, g->guid) != NULL ||
		    folder_there(ctx, user, g->path)) {
			/* its objects are deleted (nothing left for another
			   writer to build on), or it is here again (one GUID,
			   one folder), or its name is taken */
			roots_remove_gone(&user->roots, g);
			continue;
		}
		pthread_mutex_lock(&ctx->stats_lock);
		ctx->stats.split_checks++;
		pthread_mutex_unlock(&ctx->stats_lock);
		struct splitfolders_digest had = {
			.hashes = g->mail_hashes, .count = g->mail_count
		};

		plan = splitfolders_plan_gone(ctx->store, ctx->gc, user->prefix,
					      g->guid, g->path, &had, &counts);
		if (plan == NULL) {
			pthread_mutex_lock(&ctx->stats_lock);
			ctx->stats.split_bundles_read += counts.gets;
			pthread_mutex_unlock(&ctx->stats_lock);
			continue;
		}
		obox_log(OBOX_LOG_WARNING, "split brain: another machine "
			 "changed folder %s (user %s, %s), which this machine "
			 "deleted: made again with its mails\n", prefix,
			 user->name, g->path);
		users_snapshot_lock(user);
		user_fd = openat(ctx->meta_fd, user->name, O_RDONLY |
				 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (user_fd >= 0) {
			splitfolders_apply(plan, user_fd, &changed_dirs, &names,
					   &counts);
			close(user_fd);
		}
		if (counts.created > 0)
			users_changed_behind(user);
		names_changed(ctx, user, "", &names, changed);
		users_snapshot_unlock(user);
		for (size_t i = 0; i < changed_dirs.count; i++)
			tell_changed(ctx, user, "", changed_dirs.keys[i]);
		keylist_clear(&changed_dirs);
		keylist_clear(&names);
		splitfolders_plan_free(&plan);
		pthread_mutex_lock(&ctx->stats_lock);
		ctx->stats.split_brains += counts.created > 0 ? 1 : 0;
		ctx->stats.split_folders_merged += counts.created;
		ctx->stats.split_mails_merged += counts.revived;
		ctx->stats.split_bundles_read += counts.gets;
		pthread_mutex_unlock(&ctx->stats_lock);
		if (counts.created > 0) {
			roots_remove_gone(&user->roots, g);
			made = true;
		}
	}
	return made;
}
