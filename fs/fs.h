/* fs.h: the FUSE front end's shared state and the internal interfaces of
 * the FUSE low-level operations (fsops*.c) and the inode table (inode.c).
 *
 * The tree is a real directory tree in CACHE_DIR/meta ("the metacache");
 * the daemon passes operations through to it like libfuse's
 * passthrough_ll, and calls the obox engine (engine/obox.h) where a
 * mail's fate is decided: mail files are stubs whose bytes live in the
 * object store and the mail cache.
 *
 * Locks: the engine's lock order (engine/obox-private.h) covers the
 * front end too: inode_lock and a handle's lock are taken only around
 * engine calls that take leaf locks, or inside an inode lock.  kinval.c's
 * queue lock is a leaf: held around the queue only (inode_lock is taken
 * before or after it, never inside).
 */
#ifndef OBOXFS_FS_H
#define OBOXFS_FS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include "obox.h"

#include <pthread.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* the virtual statistics file in the mount root */
#define FS_STATS_NAME OBOX_STATS_NAME

/* One inode of the tree.  The FUSE node id is the struct's address
   (FUSE_ROOT_ID means fs->root).  Only directories hold a descriptor
   (inode.c). */
struct oinode {
	/* the next in its bucket, or on fs->stale (protected by
	   fs->inode_lock) */
	struct oinode *hnext;
	uint64_t nlookup;	/* protected by fs->inode_lock */
	/* inodes naming this one as their parent, and callers using it as
	   one right now (protected by fs->inode_lock) */
	uint64_t refs;
	/* a non-directory: the directory and name it is reached by, or
	   NULL/NULL if none is known (protected by fs->inode_lock) */
	struct oinode *parent;
	char *name;
	/* a directory (and the root): an O_PATH fd in the metacache, kept
	   while the inode lives; -1 for everything else */
	int fd;
	/* the file's handle (NULL if the filesystem has none); with dev
	   and ino the inode's identity */
	struct file_handle *handle;
	dev_t dev;
	ino_t ino;
	bool hashed;		/* in the table (protected by inode_lock) */
	bool is_dir;
	bool is_stats;		/* the virtual FS_STATS_NAME file */
	/* the user whose tree it is in (NULL: the root, the stats file) */
	struct ouser *user;
};

struct oboxfs {
	struct obox *obox;
	int meta_fd;		/* obox_meta_fd() */
	/* CACHE_DIR/meta opened for open_by_handle_at() (which takes no
	   O_PATH fd) */
	int mount_fd;
	const char *meta_path;	/* obox_meta_path() */
	size_t meta_path_len;
	/* for the engine's invalidations (NULL while not serving) */
	struct fuse_session *se;
	/* the mount point (the kernel's view of the tree: kernelsize.c) */
	const char *mountpoint;
	double timeout;		/* entry/attr timeout given to the kernel */
	bool debug;

	pthread_mutex_t inode_lock;
	struct oinode **buckets;	/* protected by inode_lock */
	/* inodes of files that are gone, taken out of the table while the
	   kernel still knows them (protected by inode_lock) */
	struct oinode *stale;
	unsigned int bucket_count;
	struct oinode root;
	struct oinode stats;
};

/* inode.c */
int inode_table_init(struct oboxfs *fs);
void inode_table_deinit(struct oboxfs *fs);
struct oinode *inode_get(fuse_req_t req, fuse_ino_t ino);
struct oboxfs *fs_get(fuse_req_t req);
/* Look name up in parent (the metacache), returning a referenced inode
   in e->ino and its attributes (stub sizes fixed).  A user name at the
   root that the metacache lacks is loaded from the store if load (never
   while holding a user's tree lock: see obox_user_load()).  Returns 0 or
   errno. */
int inode_lookup(struct oboxfs *fs, struct oinode *parent, const char *name,
		 bool load, struct fuse_entry_param *e);
/* The inode the kernel knows for (dev, ino), or NULL.  Not referenced:
   only its address (the node id) may be used. */
struct oinode *inode_find(struct oboxfs *fs, dev_t dev, ino_t ino);
/* inode_find() that pins the inode found (it stays until
   inode_name_unpin()), for a use after the caller's request. */
struct oinode *inode_find_pinned(struct oboxfs *fs, dev_t dev, ino_t ino);
/* Pin inode (it stays until inode_name_unpin()). */
void inode_pin(struct oboxfs *fs, struct oinode *inode);
void inode_unref(struct oboxfs *fs, struct oinode *inode, uint64_t n);
/* A name operation moved the file st (its fstatat() before) to name in
   parent (a directory inode): an inode of it is reached by that name from
   now on.  st may be older than the table (its file gone and its inode
   number given to another meanwhile): an inode of another type is left
   as it is, in the table. */
void inode_renamed(struct oboxfs *fs, const struct stat *st,
		   struct oinode *parent, const char *name);
/* The name name in parent no longer refers to the file st (unlinked,
   replaced): an inode reached by it is reached by its handle now.  (A
   stale table entry of the same (dev, ino) may be the one changed: it is
   harmless, every use checks the file handle: inode_open().  st may be
   older than the table, as for inode_renamed(): a directory that got its
   inode number stays in the table.) */
void inode_name_gone(struct oboxfs *fs, const struct stat *st,
		     struct oinode *parent, const char *name);
/* Pin inode's parent (it stays while pinned) and copy the name inode is
   reached by; false if it has none.  inode_name_unpin() the parent. */
bool inode_name_pin(struct oboxfs *fs, struct oinode *inode,
		    struct oinode **parent_r, char name_r[NAME_MAX + 1]);
void inode_name_unpin(struct oboxfs *fs, struct oinode *parent);
/* open(2) of inode's metacache file with flags (O_PATH too).  Returns an
   fd of the caller's, or -1 with errno (ESTALE: the file is gone). */
int inode_open(struct oboxfs *fs, struct oinode *inode, int flags);
/* An O_PATH fd of inode: a directory's own, or one opened for the caller;
   give it back with inode_fd_put().  -1 with errno on failure. */
int inode_fd_get(struct oboxfs *fs, struct oinode *inode);
void inode_fd_put(struct oinode *inode, int fd);
/* The path of inode relative to the tree root ("" for the root) into buf.
   For a non-directory it is the path of the name it was looked up by.
   Returns 0 or -1 with errno (ENOENT if it is unlinked). */
int inode_path(struct oboxfs *fs, struct oinode *inode, char *buf,
	       size_t size);
/* fstatat() of the inode with stub sizes fixed; virtual files too. */
int inode_stat(struct oboxfs *fs, struct oinode *inode, struct stat *st_r);
/* The path of inode's directory into dir (size PATH_MAX) and its name
   (points into dir, after a NUL), for a non-directory.  Returns 0, or -1
   with errno (ENOENT: unlinked, or the root). */
int inode_dir_name(struct oboxfs *fs, struct oinode *inode, char *dir,
		   size_t size, const char **name_r);

/* kernelsize.c: growths of files (obox_size_grow_begin()) end once the
   kernel has their new size */
/* how long a growth may stop attribute replies of its file at most */
#define KERNEL_SIZE_WAIT_MS 1000
/* An O_PATH fd of inode's file on the mount, or -1 (no name, another file
   by now): the writer's own fd of it (pid: the requesting thread; no
   request to this daemon), else by its path on the mount as far as the
   kernel's dentry cache has it (no request either). */
int kernel_fd_open(struct oboxfs *fs, struct oinode *inode, pid_t pid);
/* Append len bytes of data to the file at path (relative to the mount)
   through the mount, under the file's POSIX write lock (waited for up to
   5 s: ENOLCK), from a child process that holds none of the daemon's
   descriptors (mountappend.c).  0, or -1 with errno (ENOTSUP: not
   mounted). */
int mount_append(struct oboxfs *fs, const char *path, const void *data,
		 size_t len);
/* The growth of file ino to end bytes, begun with obox_size_grow_begin()
   by a write through handle owner (its address: identity only), ends once
   the kernel's size of kfd (taken over; -1: none, end it now) reaches end,
   a later growth covers it, owner is released, or after
   KERNEL_SIZE_WAIT_MS.  Call it before the reply, so that the release of
   owner comes after it. */
void kernel_size_grown(struct oboxfs *fs, ino_t ino, const void *owner,
		       int kfd, off_t end);
/* The handle owner is released: its growths end (the kernel sends RELEASE
   only once every write syscall through it has returned, i_size set). */
void kernel_size_released(const void *owner);
/* obox_size_measure_begin() of regular file ino: polls the kernel's size of
   ino's pending growths itself meanwhile (at most KERNEL_SIZE_WAIT_MS);
   end it with obox_size_measure_end().  ino is never 0. */
void kernel_size_measure_begin(struct oboxfs *fs, ino_t ino);
/* End every growth and stop the waiter thread (before obox_deinit()). */
void kernel_size_stop(void);

/* kinval.c: invalidations of the kernel's entries, sent by a thread of
   their own: never from a request on the directory (the kernel holds its
   lock until the reply: a deadlock) */
/* The name name in parent changed behind the kernel's back (removed,
   added, or now another file): the kernel drops its entry of it (a
   negative one too) soon.  parent is pinned until then.  Never blocks on
   the kernel. */
void kinval_entry(struct oboxfs *fs, struct oinode *parent, const char *name);
/* Start the thread (fs->se set).  Returns 0 or -1 with errno. */
int kinval_start(struct oboxfs *fs);
/* Send what is queued, then stop the thread; later calls are dropped. */
void kinval_stop(struct oboxfs *fs);

/* fsops-dir.c */
void fsop_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode);
void fsop_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, dev_t rdev);
void fsop_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		  const char *name);
void fsop_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	       const char *newname);
void fsop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsop_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fsop_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		 fuse_ino_t newparent, const char *newname,
		 unsigned int flags);
void fsop_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void fsop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void fsop_releasedir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void fsop_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);
/* Make a newly created entry owned by the caller (the daemon runs as
   root).  Returns 0 or -1 with errno. */
int fs_set_owner(fuse_req_t req, int dir_fd, const char *name);
/* Check name may be created in parent: at the root only directories with
   valid user names.  Returns 0 or an errno. */
int fs_check_new_name(struct oboxfs *fs, struct oinode *parent,
		      const char *name, bool is_dir);

/* fsops-file.c */
void fsop_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, struct fuse_file_info *fi);
void fsop_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi);
void fsop_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		    off_t off, struct fuse_file_info *fi);
void fsop_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fsop_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		struct fuse_file_info *fi);
void fsop_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		    off_t length, struct fuse_file_info *fi);
void fsop_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		struct fuse_file_info *fi);
/* Was anything written through this handle?  (release only changes the
   tree then.) */
bool fs_file_written(struct fuse_file_info *fi);
/* The metacache fd of the open file fi (not the stats file's: -1). */
int fs_file_fd(struct fuse_file_info *fi);
/* Store inode, open as fd, as a mail if it is a plain regular file in a
   mail location (fsync, release).  Returns 0 or -1 with errno. */
int fs_store_if_mail(struct oboxfs *fs, struct oinode *inode, int fd);

/* fsops-track.c: the operations that change a tree, under its user's
   tree lock (obox_change_begin/end()), telling the engine which file
   changed (obox_touched()); they call the fsop_ functions.  Name
   operations tell it of the files they move or remove themselves
   (fsops-dir.c), file creations of the new file. */
void track_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		   int valid, struct fuse_file_info *fi);
void track_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode, dev_t rdev);
void track_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		 mode_t mode);
void track_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		   const char *name);
void track_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		const char *newname);
void track_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void track_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void track_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname,
		  unsigned int flags);
void track_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		  mode_t mode, struct fuse_file_info *fi);
void track_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		     off_t off, struct fuse_file_info *fi);
void track_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void track_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void track_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void track_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		     off_t length, struct fuse_file_info *fi);
/* fsops.c */
void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		  int valid, struct fuse_file_info *fi);
extern const struct fuse_lowlevel_ops oboxfs_ops;

#endif
