/* obox.h: the obox engine's public interface: a Dovecot mail tree whose
 * mail files live in an object store, one immutable object per mail, and
 * whose other files live in a local cache directory ("the metacache") and
 * are uploaded lazily as index bundles (CONTRACT.md).
 *
 * The engine knows no FUSE.  A front end (the FUSE daemon in fs/, a tool, a
 * test) passes the tree's operations through to the metacache below
 * obox_meta_fd() and calls the engine where a mail's fate is decided: a
 * name operation into or out of a mail location (obox_rename(),
 * obox_link(), obox_unlink()), an fsync or close of a mail file
 * (obox_fsync_mail(), obox_store_if_mail()), a write to or truncation of a stored mail
 * (obox_write_begin(), obox_truncate()), reading one (obox_read_fd()).
 * Every operation that changes a user's tree runs between
 * obox_change_begin() and obox_change_end() so that uploads see whole
 * operations.  What the engine changes behind the front end's back (a user
 * evicted, a directory merged) is told through the callbacks of
 * struct obox_settings; its log lines go to the sink of log.h.
 *
 * Paths ("dir" arguments) are relative to the tree root, without leading or
 * trailing '/': "" is the root, "user@example.com/Maildir/cur" a directory.
 * Functions returning int return 0 (or a count) on success and -1 with
 * errno set, unless they say they return an errno.
 */
#ifndef OBOXFS_OBOX_H
#define OBOXFS_OBOX_H

#include "objstore.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct obox;
struct ouser;

/* the name of a mail-location-free virtual file a front end may show in
   the root (never a valid user name) */
#define OBOX_STATS_NAME ".oboxfs-stats"
#define OBOX_NAME_MAX 255

/* user's tree was moved away (metacache eviction): forget it */
typedef void obox_user_evicted_cb(const char *user, void *context);
/* the directory path (relative to the tree root) got entries, or the
   file path new contents (a folder's dovecot-keywords), behind the front
   end's back (a split-brain merge): drop what is cached of it */
typedef void obox_dir_changed_cb(const char *path, void *context);
/* the name name in the directory dir_path (relative to the tree root)
   was removed, added, or came to name another file behind the front
   end's back (a split-brain merge): drop what is cached of that name.
   It may be called with engine locks held: it may not wait for a
   front-end request. */
typedef void obox_name_changed_cb(const char *dir_path, const char *name,
				  void *context);
/* append len bytes to the file path (relative to the tree root) as a
   process on the mount would: under the file's POSIX write lock (the one
   Dovecot takes before appending to its dovecot.index.log), at the end
   of the file as the front end's users see it.  Called with no engine
   lock but the user's upload lock: the front end may serve requests of
   its own meanwhile.  Returns 0, or -1 with errno (ENOLCK: the lock was
   not had in time). */
typedef int obox_file_append_cb(const char *path, const void *data,
				size_t len, void *context);

/* what opening a mail whose object the store does not have does
   (mailmissing.h) */
enum obox_missing_mails {
	OBOX_MISSING_MAILS_EIO = 0,	/* EIO for that mail */
	OBOX_MISSING_MAILS_DROP,	/* the mail is removed (expunged) */
};

struct obox_settings {
	const char *store_url;		/* file:///DIR or s3://BUCKET/PREFIX */
	struct objstore_settings store;
	const char *cache_dir;
	uint64_t cache_size;		/* mail cache cap, bytes */
	uint64_t metacache_size;	/* metacache cap, bytes */
	unsigned int metacache_idle;	/* seconds */
	unsigned int upload_interval;	/* seconds, 0: only on request */
	unsigned int upload_deliveries;	/* 0: never per folder */
	unsigned int split_check_interval;	/* seconds, 0: never */
	/* seconds a condemned mail object is kept (objgc.h); to be longer
	   than split_check_interval, or another machine serving the same
	   user may build on a deleted mail */
	unsigned int delete_grace;
	enum obox_missing_mails missing_mails;
	/* a maildir tmp/ file is stored at its fsync (obox_fsync_mail()),
	   so that its rename into new/ or cur/ needs no request */
	bool store_on_fsync;
	/* the tree root's owner and mode: when set, these instead of what
	   the store keeps (obox_root_attr_changed()) */
	bool root_uid_set, root_gid_set, root_mode_set;
	uint32_t root_uid, root_gid, root_mode;

	obox_user_evicted_cb *user_evicted;
	obox_dir_changed_cb *dir_changed;
	obox_name_changed_cb *name_changed;
	obox_file_append_cb *file_append;
	void *context;
};

/* Lock and set up the cache directory, open the store and the caches,
   read how the last run ended (distrusted trees are discarded).  Starts no
   thread (see obox_start()).  Returns 0, or -1 with a one-line *error_r
   (valid until the next obox_init() call). */
int obox_init(const struct obox_settings *set, struct obox **obox_r,
	      const char **error_r);
/* Start the upload threads (after any fork: a daemon's fork keeps only
   the calling thread).  Returns 0 or -1 with *error_r. */
int obox_start(struct obox *obox, const char **error_r);
/* Stop the upload threads; if started, upload every change and delete
   what became garbage first.  Nothing may call the engine meanwhile. */
void obox_stop(struct obox *obox);
/* obox_stop(), then free everything and mark the cache clean. */
void obox_deinit(struct obox **obox);

/* CACHE_DIR/meta: the tree root (an O_PATH fd) and its real path */
int obox_meta_fd(struct obox *obox);
const char *obox_meta_path(struct obox *obox);

/* A size option ("512M", "1G", K/M/G/T/P units) in bytes into *bytes_r.
   Returns 0, or -1 with a reason in *error_r. */
int obox_parse_size(const char *str, uint64_t *bytes_r, const char **error_r);

/* Upload every user's changes now (async-signal-safe: SIGUSR1). */
void obox_request_upload(struct obox *obox);
/* Upload every user with changes and delete what became garbage, in the
   calling thread, before returning (what an upload pass of obox_start()'s
   threads does, for a tool or a test; works without obox_start()).  Takes
   each user's upload and tree locks: call it holding none.  Returns 0 if
   every change was stored and every garbage object deleted, -1 if some
   upload or delete failed (logged; nothing is lost, the next pass tries
   again). */
int obox_upload_now(struct obox *obox);

/* The stats file's text, "name value" lines (malloc()ed), or NULL. */
char *obox_stats_text(struct obox *obox, size_t *len_r);

/* --- users --- */

/* 0 if name may be a user (top-level) directory, else -1 and *error_r */
int obox_user_name_check(const char *name, const char **error_r);
/* The user named name (valid), created on first use, never freed before
   obox_deinit(); NULL if out of memory. */
struct ouser *obox_user_get(struct obox *obox, const char *name);
/* The user name at the root is not in the metacache: load it from the
   store.  Returns 0 if it is there now, ENOENT if the store has no such
   user, else an errno (EIO: the store failed).  Call it holding no user's
   tree lock (obox_change_begin()): it takes the user's upload lock. */
int obox_user_load(struct obox *obox, const char *name);

/* Around an operation that changes user's tree (user may be NULL). */
void obox_change_begin(struct obox *obox, struct ouser *user);
void obox_change_end(struct ouser *user);
/* Inside obox_change_begin/end(): the file with inode number ino changed
   (its content, metadata or xattrs written, truncated, fsynced or closed
   after a write, linked, unlinked, renamed or replaced, created).  Every
   such change must be told: an upload reads again only the files told,
   and takes the others from its last scan (upload.c). */
void obox_touched(struct ouser *user, ino_t ino);
/* An access (lookup, read), a file or directory opened or closed. */
void obox_user_touch(struct ouser *user);
void obox_user_opened(struct ouser *user);
void obox_user_closed(struct ouser *user);

/* --- lazy directories (lazydir.h) --- */

/* name is not in the metacache directory dir_fd (any fd, O_PATH too) of
   user: if the directory is lazy and its table has name, its stub is
   created now (a change of user: takes its tree lock, call it holding
   none).  Returns 1 if the name is there now (look it up again), 0 if
   not, or -1 with errno. */
int obox_lazy_lookup(struct obox *obox, struct ouser *user, int dir_fd,
		     const char *name);
/* Before a name operation adds, replaces (removes false) or removes
   (removes true) name in directory dir_fd: in a lazy directory a name of
   its table is made first, and a removal materializes the whole
   directory (lazydir.h).  Call it inside obox_change_begin/end() of its
   user.  Returns 0 or an errno (EIO: the table cannot be read; logged). */
int obox_lazy_prepare(struct obox *obox, int dir_fd, const char *name,
		      bool removes);
/* Materialize the lazy directory dir_fd whole (inside a change). */
int obox_lazy_expand(struct obox *obox, int dir_fd);
/* A readdir of directory dir_fd: if it is lazy, cb with every name it
   has (on disk or in its table; type DT_REG and a made-up inode number
   for those not on disk) and 1; 0 if it is not lazy (read it from
   disk); -1 with errno. */
int obox_lazy_list(struct obox *obox, int dir_fd,
		   void (*cb)(const char *name, unsigned char type,
			      uint64_t ino, void *context),
		   void *context);
/* obox_lazy_expand() of dir_fd/name if that is a directory */
int obox_lazy_expand_at(struct obox *obox, int dir_fd, const char *name);

/* --- mail files: stubs --- */

/* If the metacache file fd (any fd, O_PATH too; st its stat) is a stub,
   set *size_r to the mail's size and return 1; 0 if not, -1 on error. */
int obox_stub_size(int fd, const struct stat *st, uint64_t *size_r);
/* fstatat(fd, "") with a stub's size and blocks fixed. */
int obox_stat(int fd, struct stat *st_r);

/* --- name operations (the front end has checked its own rules) --- */

/* rename(olddir/name, newdir/newname) with renameat2() flags
   RENAME_NOREPLACE/RENAME_EXCHANGE: a plain file moving into a mail
   location is stored first, a stub moving to another folder is stored
   again for it, a stub whose last name is replaced is released.  The
   *_fd are the directories' fds, the *_path their paths (olddir_path is
   used only with RENAME_EXCHANGE, when a file moves into olddir: NULL
   otherwise is fine).  Returns 0 or an errno. */
int obox_rename(struct obox *obox, int olddir_fd, const char *olddir_path,
		const char *name, int newdir_fd, const char *newdir_path,
		const char *newname, unsigned int flags);
/* link(fd, newdir/newname) of the file fd (O_PATH is enough), with the
   same rules.  Returns 0 or an errno. */
int obox_link(struct obox *obox, int fd, int newdir_fd,
	      const char *newdir_path, const char *newname);
/* unlinkat(dir_fd, name): a stub's last name releases its object.
   Returns 0 or an errno. */
int obox_unlink(struct obox *obox, int dir_fd, const char *name);

/* The stub fd (just opened as dir_fd/name) has no object in the store
   (obox_open_setup() returned ENODATA): with missing_mails=drop, once a
   HEAD confirms the object is gone, the name is removed as obox_unlink()
   does (a change of its user: between obox_change_begin() and
   obox_change_end(), the file obox_touched()).  Returns ENOENT when the
   mail is gone (reply that to the open), else an errno (EIO). */
int obox_mail_drop(struct obox *obox, int dir_fd, const char *name, int fd);

/* The front end changed the owner or mode of the tree root (chown/chmod
   of obox_meta_fd()'s directory): stored, so that every machine mounting
   the store shows them (obox_init() applies them; the root_* settings
   override).  Returns 0, or EIO if the store failed (logged; the change
   holds on this machine). */
int obox_root_attr_changed(struct obox *obox);

/* --- open files --- */

/* After opening the metacache file fd with flags: a stub's cached bytes
   as *mail_fd_r (else -1), or with O_TRUNC the stub made an empty plain
   file (then *written_r: it must be stored at close).  Returns 0 or an
   errno: EIO if the store failed or does not have the stub's object,
   ENODATA for the latter with missing_mails=drop (then the front end
   calls obox_mail_drop()). */
int obox_open_setup(struct obox *obox, int fd, int flags, int *mail_fd_r,
		    bool *written_r);
/* Before a read of fd: *mail_fd (the handle's cached mail bytes or -1)
   is brought up to date with what fd is now (stored or rewritten through
   another handle meanwhile).  Returns 0 or -1 with errno. */
int obox_read_fd(struct obox *obox, int fd, int *mail_fd);
/* Before a write through fd: a stub becomes a plain file again (its bytes
   copied back).  On success the file cannot be stored until
   obox_write_end(obox, *ino_r).  Returns 0 or -1 with errno. */
int obox_write_begin(struct obox *obox, int fd, ino_t *ino_r);
void obox_write_end(struct obox *obox, ino_t ino);
/* Growths of file ino the kernel may not have yet (sizelock.c).  A FUSE
   kernel extends its i_size of a file only once the writer has processed
   its WRITE reply, while a GETATTR answered meanwhile already gives
   fstat() the new size: a process mapping the file to that size faults
   past the kernel's end of it (SIGBUS; Dovecot's index logs and caches).
   A write or fallocate that may grow a file begins a growth before
   writing; it is ended (by any thread) once the kernel has the new size,
   or at once if the file did not grow.  An attribute reply measures a
   regular file between measure_begin(), which waits up to timeout_ms for
   the pending growths, and measure_end(); no growth begins meanwhile.
   Abort if out of memory, like the inode locks. */
void obox_size_grow_begin(struct obox *obox, ino_t ino);
void obox_size_grow_end(struct obox *obox, ino_t ino);
void obox_size_measure_begin(struct obox *obox, ino_t ino,
			     unsigned int timeout_ms);
/* measure_begin() without waiting: false (nothing begun) while a growth
   of ino is pending */
bool obox_size_measure_try(struct obox *obox, ino_t ino);
void obox_size_measure_end(struct obox *obox, ino_t ino);
/* The regular file fd (any fd) named dir/name: stored as a mail if that
   is a mail location and it is not stored yet (fsync, close after a
   write).  Returns 0 or -1 with errno (EIO: the store failed). */
int obox_store_if_mail(struct obox *obox, int fd, const char *dir,
		       const char *name);
/* fsync() of the regular file fd (any fd) named dir/name: as
   obox_store_if_mail(), and with store_on_fsync a plain file directly in
   a maildir tmp/ directory (written since it was last stored) is stored
   as a mail of that folder, its name to come: the rename into new/ or
   cur/ that follows keeps the object (a local rename, no request),
   unlinking or rewriting the file deletes the object at once.  Returns 0
   or -1 with errno (EIO: the store failed; nothing was kept). */
int obox_fsync_mail(struct obox *obox, int fd, const char *dir,
		    const char *name);
/* truncate(fd, size) of any fd of a file named dir/name (dir NULL:
   unknown): a stub becomes a plain file and, being a stored mail, is
   stored again.  Returns 0 or an errno. */
int obox_truncate(struct obox *obox, int fd, const char *dir,
		  const char *name, off_t size);
/* An operation on the metacache failed with err, wanting about want
   bytes: if the cache disk is full (ENOSPC), evict cached mail and return
   true: try again, at most OBOX_ENOSPC_RETRIES times (*tries counts). */
#define OBOX_ENOSPC_RETRIES 4
bool obox_retry_full(struct obox *obox, int err, unsigned int *tries,
		     uint64_t want, const char *what);

#endif
