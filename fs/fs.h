/* fs.h: the daemon's shared state and the internal interfaces of the FUSE
 * low-level operations (fsops*.c) and the inode table (inode.c).
 *
 * The tree is a real directory tree in CACHE_DIR/meta ("the metacache");
 * the daemon passes operations through to it like libfuse's
 * passthrough_ll, except that mail files are stubs whose bytes live in the
 * object store and the mail cache (see stub.h, mailstore.h).
 */
#ifndef OBOXFS_FS_H
#define OBOXFS_FS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include "stub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct objstore;
struct mailcache;
struct objgc;
struct mailstore;
struct users;
struct ouser;
struct cachestate;
struct uploader;
struct upload_ctx;

/* One inode of the tree.  The FUSE node id is the struct's address
   (FUSE_ROOT_ID means fs->root). */
struct oinode {
	struct oinode *hnext;	/* protected by fs->inode_lock */
	uint64_t nlookup;	/* protected by fs->inode_lock */
	int fd;			/* O_PATH fd in the metacache, -1 if
				   virtual */
	dev_t dev;
	ino_t ino;
	bool is_stats;		/* the virtual MAILPATH_STATS_NAME file */
	/* the user whose tree it is in (NULL: the root, the stats file) */
	struct ouser *user;
};

struct oboxfs {
	int meta_fd;		/* O_PATH of CACHE_DIR/meta */
	int staging_fd;		/* CACHE_DIR/staging: new stub files */
	char *meta_path;	/* its realpath() */
	size_t meta_path_len;
	struct objstore *store;
	struct mailcache *mc;
	struct objgc *gc;
	struct mailstore *ms;
	struct users *users;
	struct cachestate *cs;
	struct upload_ctx *upctx;
	struct uploader *uploader;
	struct metacache *metacache;
	struct fuse_session *se;	/* for the metacache's invalidations */
	unsigned int upload_deliveries;
	int load_fd;		/* CACHE_DIR/load: users being loaded */
	atomic_uint_fast64_t users_loaded, mails_put_back;
	double timeout;		/* entry/attr timeout given to the kernel */
	bool debug;

	pthread_mutex_t inode_lock;
	struct oinode **buckets;	/* protected by inode_lock */
	unsigned int bucket_count;
	struct oinode root;
	struct oinode stats;

	/* held around removing names (unlink, rename onto) so that exactly
	   one caller sees a stub's last link go and releases its object */
	pthread_mutex_t ns_lock;
};

/* inode.c */
int inode_table_init(struct oboxfs *fs);
void inode_table_deinit(struct oboxfs *fs);
struct oinode *inode_get(fuse_req_t req, fuse_ino_t ino);
struct oboxfs *fs_get(fuse_req_t req);
/* Look name up in parent (the metacache), returning a referenced inode
   in e->ino and its attributes (stub sizes fixed).  Returns 0 or errno. */
int inode_lookup(struct oboxfs *fs, struct oinode *parent, const char *name,
		 struct fuse_entry_param *e);
void inode_ref(struct oboxfs *fs, struct oinode *inode);
/* The inode the kernel knows for (dev, ino), or NULL.  Not referenced:
   only its address (the node id) may be used. */
struct oinode *inode_find(struct oboxfs *fs, dev_t dev, ino_t ino);
void inode_unref(struct oboxfs *fs, struct oinode *inode, uint64_t n);
/* The path of inode relative to the tree root ("" for the root) into buf.
   For a non-directory it is the path of the name it was looked up by.
   Returns 0 or -1 with errno (ENOENT if it is unlinked). */
int inode_path(struct oboxfs *fs, struct oinode *inode, char *buf,
	       size_t size);
/* fstatat() of the inode with stub sizes fixed; virtual files too. */
int inode_stat(struct oboxfs *fs, struct oinode *inode, struct stat *st_r);

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
/* An operation on the metacache failed with err, wanting about want
   bytes: if the cache disk is full (ENOSPC), evict cached mail to make
   room (logged at most every 10 s) and return true: try again.  At most
   FS_ENOSPC_RETRIES times per operation (*tries counts them, start at 0). */
#define FS_ENOSPC_RETRIES 4
#define FS_ENOSPC_EVICT (8ULL * 1024 * 1024)
bool fs_retry_full(struct oboxfs *fs, int err, unsigned int *tries,
		   uint64_t want, const char *what);
/* Was anything written through this handle?  (release only changes the
   tree then.) */
bool fs_file_written(struct fuse_file_info *fi);
/* Truncate a file by inode (setattr without a handle): stubs are turned
   back into plain files first.  Returns 0 or errno. */
int fs_truncate_inode(struct oboxfs *fs, struct oinode *inode, off_t size);
/* Store the plain regular file inode as a mail if it is in a mail
   location (fsync, release).  Returns 0 or -1 with errno. */
int fs_store_if_mail(struct oboxfs *fs, struct oinode *inode);

/* fsops-mail.c */
struct fs_mail_move {
	bool relocated;		/* the mail was stored again as new */
	struct stub old, new;
};
#define FS_STAGE_NAME_MAX 64
/* Before the regular file src_fd (stat st) gets the name name in dir: store
   it if it is plain and that is a mail location, or relocate it if it is a
   stub of another folder (then mv_r->relocated).  Returns 0 or -1 with
   errno. */
int fs_mail_prepare(struct oboxfs *fs, int src_fd, const struct stat *st,
		    struct oinode *dir, const char *name,
		    struct fs_mail_move *mv_r);
/* After a rename stored the file st and moved it by name to name in dir:
   if that name now is another file (the source name was replaced between
   the store and the rename), store or check it the way fs_mail_prepare()
   would have.  Returns 0 or an errno. */
int fs_mail_recheck(struct oboxfs *fs, struct oinode *dir, const char *name,
		    const struct stat *st);
/* Make a stub file for stub in the staging directory with like's owner,
   mode and times; its name in name_r.  Returns 0 or -1 with errno. */
int fs_stage_stub(struct oboxfs *fs, const struct stat *like,
		  const struct stub *stub, char name_r[FS_STAGE_NAME_MAX]);
void fs_unstage(struct oboxfs *fs, const char *name);
/* renameat2()/unlinkat() that release the object of a stub whose last
   link they remove.  Return 0 or errno. */
int fs_rename_at(struct oboxfs *fs, int old_dir_fd, const char *old_name,
		 int new_dir_fd, const char *new_name, unsigned int flags);
int fs_unlink_at(struct oboxfs *fs, int dir_fd, const char *name);
/* Remove what a crash left in the staging directory. */
void fs_staging_cleanup(struct oboxfs *fs);

/* fsops-load.c: the user name at the root is not in the metacache: load
   it from the store (userload.h) and publish it as meta/<name>.  Returns
   0 if it is there now, ENOENT if the store has no such user, else an
   errno (EIO: the store failed). */
int fs_user_load(struct oboxfs *fs, const char *name);
/* mailstore's delivery callback: counts deliveries per folder and asks
   the uploader for the folder's upload every upload_deliveries. */
void fs_delivery_noted(const char *dir, const char *key, void *context);

/* fsops-stats.c: the text of the stats file (malloc()ed). */
char *fs_stats_text(struct oboxfs *fs, size_t *len_r);

/* fsops-track.c: the operations that change a tree, under its user's
   tree lock (users.h); they call the fsop_ functions */
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
void track_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		     off_t length, struct fuse_file_info *fi);
/* fsops.c */
void fsop_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		  int valid, struct fuse_file_info *fi);
extern const struct fuse_lowlevel_ops oboxfs_ops;

#endif
