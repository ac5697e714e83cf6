/* inode.c: the inode table: node ids <-> metacache files (dev, ino).
 *
 * Each inode the kernel knows has a lookup count (forget() drops it) and
 * is found by (dev, ino) in a hash table, so that hard links share one
 * inode.  It holds no file descriptor unless it is a directory: a
 * directory keeps an O_PATH fd (the few directories of a tree are the
 * parents every name operation starts from), while a file, symlink, FIFO
 * or socket is reached by the name it was last looked up, created or
 * renamed by in its parent directory (which it keeps referenced), checked
 * against its (dev, ino) and file handle each time, else by its file
 * handle (open_by_handle_at()).  Without a descriptor holding it, a
 * deleted file's inode number is reused by the filesystem while the
 * kernel may still know the old inode: the file handle (which carries the
 * inode's generation) tells them apart, and the stale inode leaves the
 * table (find_file_locked()).  So a folder of 100,000 mails costs no
 * descriptors (CONTRACT.md: a backend serves thousands of users).
 *
 * An inode is freed when the kernel has forgotten it and no other inode
 * names it as its parent.
 */
#include "fs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INODE_BUCKETS (1U << 16)

struct oboxfs *fs_get(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct oinode *inode_get(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs_get(req)->root;
	return (struct oinode *)(uintptr_t)ino;
}

int inode_table_init(struct oboxfs *fs)
{
	fs->bucket_count = INODE_BUCKETS;
	fs->buckets = calloc(fs->bucket_count, sizeof(*fs->buckets));
	if (fs->buckets == NULL)
		return -1;
	pthread_mutex_init(&fs->inode_lock, NULL);
	return 0;
}

static void inode_free(struct oinode *inode)
{
	if (inode->fd >= 0)
		close(inode->fd);
	free(inode->name);
	free(inode->handle);
	free(inode);
}

void inode_table_deinit(struct oboxfs *fs)
{
	if (fs->buckets == NULL)
		return;
	for (unsigned int i = 0; i <= fs->bucket_count; i++) {
		struct oinode *inode, *next;

		inode = i < fs->bucket_count ? fs->buckets[i] : fs->stale;
		for (; inode != NULL; inode = next) {
			next = inode->hnext;
			inode_free(inode);
		}
	}
	fs->stale = NULL;
	free(fs->buckets);
	fs->buckets = NULL;
	pthread_mutex_destroy(&fs->inode_lock);
}

static unsigned int bucket_of(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (unsigned int)(h >> 32) % fs->bucket_count;
}

static bool is_fixed(struct oboxfs *fs, struct oinode *inode)
{
	return inode == &fs->root || inode->is_stats;
}

/* Take inode out of the table: out of its bucket onto fs->stale (where
   it waits for its forget), or off fs->stale when it is freed. */
static void unlink_locked(struct oboxfs *fs, struct oinode *inode)
{
	struct oinode **p = inode->hashed ?
		&fs->buckets[bucket_of(fs, inode->dev, inode->ino)] :
		&fs->stale;

	while (*p != inode)
		p = &(*p)->hnext;
	*p = inode->hnext;
	inode->hnext = NULL;
}

static void unhash_locked(struct oboxfs *fs, struct oinode *inode)
{
	unlink_locked(fs, inode);
	inode->hashed = false;
	inode->hnext = fs->stale;
	fs->stale = inode;
}

static bool handle_eq(const struct file_handle *a,
		      const struct file_handle *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a->handle_type == b->handle_type &&
	       a->handle_bytes == b->handle_bytes &&
	       memcmp(a->f_handle, b->f_handle, a->handle_bytes) == 0;
}

/* The file handle of name in dir_fd ("" with AT_EMPTY_PATH: dir_fd
   itself), not following a symlink, or NULL (not supported, out of
   memory, gone: then identity is (dev, ino) alone). */
static struct file_handle *handle_at(int dir_fd, const char *name, int flags)
{
	struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ), *fit;
	int mount_id;

	if (h == NULL)
		return NULL;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(dir_fd, name, h, &mount_id, flags) < 0) {
		free(h);
		return NULL;
	}
	fit = realloc(h, sizeof(*h) + h->handle_bytes);
	return fit != NULL ? fit : h;
}

/* Free inode if nothing holds it any more, then its parent likewise.
   Call with inode_lock held; it stays held. */
static void release_locked(struct oboxfs *fs, struct oinode *inode)
{
	while (inode != NULL && !is_fixed(fs, inode) &&
	       inode->nlookup == 0 && inode->refs == 0) {
		struct oinode *parent = inode->parent;

		unlink_locked(fs, inode);
		inode_free(inode);
		if (parent != NULL) {
			assert(parent->refs > 0);
			parent->refs--;
		}
		inode = parent;
	}
}

void inode_unref(struct oboxfs *fs, struct oinode *inode, uint64_t n)
{
	if (is_fixed(fs, inode))
		return;
	pthread_mutex_lock(&fs->inode_lock);
	assert(inode->nlookup >= n);
	inode->nlookup -= n;
	release_locked(fs, inode);
	pthread_mutex_unlock(&fs->inode_lock);
}

/* Set the name of the non-directory inode to name in parent (NULL: no
   name known).  Call with inode_lock held. */
static void set_name_locked(struct oboxfs *fs, struct oinode *inode,
			    struct oinode *parent, const char *name)
{
	struct oinode *old = inode->parent;
	char *copy = NULL;

	if (inode->is_dir || is_fixed(fs, inode))
		return;
	if (old == parent && name != NULL && inode->name != NULL &&
	    strcmp(inode->name, name) == 0)
		return;
	if (name != NULL) {
		copy = strdup(name);
		if (copy == NULL)
			parent = NULL;	/* out of memory: the handle serves */
	}
	if (parent != NULL)
		parent->refs++;
	free(inode->name);
	inode->name = copy;
	inode->parent = parent;
	if (old != NULL) {
		assert(old->refs > 0);
		old->refs--;
		release_locked(fs, old);
	}
}

static struct oinode *find_locked(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	struct oinode *found;

	for (found = fs->buckets[bucket_of(fs, dev, ino)]; found != NULL;
	     found = found->hnext) {
		if (found->ino == ino && found->dev == dev)
			break;
	}
	return found;
}

/* The inode of the file (st, handle) if the table has it, for a lookup
   that holds a descriptor of that file: its inode number cannot have been
   given to another file since st was taken.  So an inode of the same
   (dev, ino) with another handle or type is of a file that is gone (its
   inode number was reused: the table holds no descriptor that would keep
   it): it is taken out of the table, to live on until forgotten. */
static struct oinode *find_file_locked(struct oboxfs *fs,
				       const struct stat *st,
				       const struct file_handle *handle)
{
	struct oinode *found = find_locked(fs, st->st_dev, st->st_ino);

	if (found != NULL &&
	    (found->is_dir != S_ISDIR(st->st_mode) ||
	     (handle != NULL && !handle_eq(found->handle, handle)))) {
		unhash_locked(fs, found);
		found = NULL;
	}
	return found;
}

/* The non-directory inode of (dev, ino) of st if the table has one, for
   a caller whose st may be older than the table: taken before an unlink
   or a rename freed the file's inode number, which a file or directory
   made meanwhile may have been given.  A mismatch says nothing about
   which is gone, so nothing is taken out of the table (a directory in it
   holds its descriptor: it is never the one gone).  A file of the same
   type that got the number is harmless to name: inode_open() checks its
   handle. */
static struct oinode *find_name_holder_locked(struct oboxfs *fs,
					      const struct stat *st)
{
	struct oinode *found = find_locked(fs, st->st_dev, st->st_ino);

	if (found == NULL || found->is_dir || S_ISDIR(st->st_mode))
		return NULL;
	return found;
}

void inode_renamed(struct oboxfs *fs, const struct stat *st,
		   struct oinode *parent, const char *name)
{
	struct oinode *inode;

	pthread_mutex_lock(&fs->inode_lock);
	inode = find_name_holder_locked(fs, st);
	if (inode != NULL)
		set_name_locked(fs, inode, parent, name);
	pthread_mutex_unlock(&fs->inode_lock);
}

void inode_name_gone(struct oboxfs *fs, const struct stat *st,
		     struct oinode *parent, const char *name)
{
	struct oinode *inode;

	pthread_mutex_lock(&fs->inode_lock);
	inode = find_name_holder_locked(fs, st);
	if (inode != NULL && inode->parent == parent &&
	    inode->name != NULL && strcmp(inode->name, name) == 0)
		set_name_locked(fs, inode, NULL, NULL);
	pthread_mutex_unlock(&fs->inode_lock);
}

/* Is fd the file of inode (not another one that got its inode number)? */
static bool fd_is(int fd, const struct oinode *inode)
{
	struct file_handle *h;
	struct stat st;
	bool same;

	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_dev != inode->dev || st.st_ino != inode->ino)
		return false;
	if (inode->handle == NULL)
		return true;
	h = handle_at(fd, "", AT_EMPTY_PATH);
	same = handle_eq(h, inode->handle);
	free(h);
	return same;
}

bool inode_name_pin(struct oboxfs *fs, struct oinode *inode,
		    struct oinode **parent_r, char name_r[NAME_MAX + 1])
{
	bool named;

	pthread_mutex_lock(&fs->inode_lock);
	named = inode->parent != NULL && inode->name != NULL &&
		strlen(inode->name) <= NAME_MAX;
	if (named) {
		*parent_r = inode->parent;
		(*parent_r)->refs++;
		strcpy(name_r, inode->name);
	}
	pthread_mutex_unlock(&fs->inode_lock);
	return named;
}

void inode_name_unpin(struct oboxfs *fs, struct oinode *parent)
{
	pthread_mutex_lock(&fs->inode_lock);
	parent->refs--;
	release_locked(fs, parent);
	pthread_mutex_unlock(&fs->inode_lock);
}

int inode_open(struct oboxfs *fs, struct oinode *inode, int flags)
{
	char name[NAME_MAX + 1], proc[40];
	struct oinode *parent;
	int fd;

	flags |= O_CLOEXEC;
	if (inode->fd >= 0) {
		if ((flags & O_PATH) != 0)
			return fcntl(inode->fd, F_DUPFD_CLOEXEC, 0);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->fd);
		return open(proc, flags);
	}
	if (inode_name_pin(fs, inode, &parent, name)) {
		fd = openat(parent->fd, name, flags | O_NOFOLLOW);
		inode_name_unpin(fs, parent);
		if (fd >= 0 && fd_is(fd, inode))
			return fd;
		if (fd >= 0)
			close(fd);
	}
	/* no name, or it names another file now: by handle */
	if (inode->handle == NULL) {
		errno = ESTALE;
		return -1;
	}
	fd = open_by_handle_at(fs->mount_fd, inode->handle, flags);
	if (fd >= 0 && !fd_is(fd, inode)) {
		close(fd);
		errno = ESTALE;
		return -1;
	}
	return fd;
}

int inode_fd_get(struct oboxfs *fs, struct oinode *inode)
{
	if (inode->fd >= 0)
		return inode->fd;
	return inode_open(fs, inode, O_PATH);
}

void inode_fd_put(struct oinode *inode, int fd)
{
	if (fd >= 0 && fd != inode->fd)
		close(fd);
}

int inode_stat(struct oboxfs *fs, struct oinode *inode, struct stat *st_r)
{
	int fd, ret;

	if (inode->is_stats) {
		memset(st_r, 0, sizeof(*st_r));
		st_r->st_ino = 1;
		st_r->st_mode = S_IFREG | 0444;
		st_r->st_nlink = 1;
		return 0;
	}
	fd = inode_fd_get(fs, inode);
	if (fd < 0)
		return -1;
	ret = obox_stat(fd, st_r);
	int saved = errno;

	inode_fd_put(inode, fd);
	errno = saved;
	return ret;
}

/* fstatat() of fd for a lookup, *is_stub_r whether it is a stub (and
   *stub_size_r its size).  A regular file is measured again with no
   growth of it pending: never ahead of the kernel's own size after a
   write grew it (obox_size_grow_begin(), kernelsize.c).  Returns 0 or -1
   with errno. */
static int lookup_stat(struct oboxfs *fs, int fd, struct stat *st_r,
		       int *is_stub_r, uint64_t *stub_size_r)
{
	const int flags = AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW;
	bool locked = false;
	ino_t ino = 0;
	int ret;

	*is_stub_r = 0;
	ret = fstatat(fd, "", st_r, flags);
	if (ret == 0 && S_ISREG(st_r->st_mode)) {
		ino = st_r->st_ino;
		locked = true;
		kernel_size_measure_begin(fs, ino);
		ret = fstatat(fd, "", st_r, flags);
	}
	if (ret == 0) {
		*is_stub_r = obox_stub_size(fd, st_r, stub_size_r);
		if (*is_stub_r < 0)
			ret = -1;
	}
	if (locked) {
		int saved = errno;

		obox_size_measure_end(fs->obox, ino);
		errno = saved;
	}
	return ret;
}

int inode_lookup(struct oboxfs *fs, struct oinode *parent, const char *name,
		 bool load, struct fuse_entry_param *e)
{
	struct oinode *inode, *found;
	struct file_handle *handle = NULL;
	uint64_t stub_size = 0;
	unsigned int bucket;
	const char *error;
	int fd, is_stub = 0;
	bool is_dir;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;

	if (parent == &fs->root) {
		if (strcmp(name, FS_STATS_NAME) == 0) {
			e->attr_timeout = 0;
			e->entry_timeout = 0;
			(void)inode_stat(fs, &fs->stats, &e->attr);
			e->ino = (uintptr_t)&fs->stats;
			return 0;
		}
		if (obox_user_name_check(name, &error) < 0)
			return ENOENT;
	}

	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && parent == &fs->root && load) {
		/* a user this machine does not have (yet): from the store */
		int err = obox_user_load(fs->obox, name);

		if (err != 0)
			return err;
		fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno;
	if (lookup_stat(fs, fd, &e->attr, &is_stub, &stub_size) < 0) {
		int saved = errno;

		close(fd);
		return saved;
	}
	if (is_stub > 0) {
		e->attr.st_size = (off_t)stub_size;
		e->attr.st_blocks = (blkcnt_t)((stub_size + 511) / 512);
		/* a stub with other names may be renamed into another
		   folder, which gives the new name a stub file of its own
		   (engine/mailnames.c) while the kernel moves this entry
		   there: have the kernel look it up every time.  A stub
		   of one name keeps its inode through a rename; a name
		   the engine changes behind the kernel is invalidated
		   (kinval.c) */
		if (e->attr.st_nlink > 1)
			e->entry_timeout = 0;
	}
	is_dir = S_ISDIR(e->attr.st_mode);
	handle = handle_at(fd, "", AT_EMPTY_PATH);

	obox_user_touch(parent->user);
	pthread_mutex_lock(&fs->inode_lock);
	bucket = bucket_of(fs, e->attr.st_dev, e->attr.st_ino);
	found = find_file_locked(fs, &e->attr, handle);
	if (found != NULL) {
		found->nlookup++;
		/* the name it is known by from now on */
		set_name_locked(fs, found, parent, name);
		pthread_mutex_unlock(&fs->inode_lock);
		free(handle);
		close(fd);
		e->ino = (uintptr_t)found;
		return 0;
	}
	pthread_mutex_unlock(&fs->inode_lock);

	inode = calloc(1, sizeof(*inode));
	if (inode == NULL) {
		free(handle);
		close(fd);
		return ENOMEM;
	}
	/* a file's fd is held until the table has it (find_file_locked()) */
	inode->fd = is_dir ? fd : -1;
	inode->is_dir = is_dir;
	inode->handle = handle;
	inode->user = parent == &fs->root ? obox_user_get(fs->obox, name) :
		parent->user;
	inode->dev = e->attr.st_dev;
	inode->ino = e->attr.st_ino;
	inode->nlookup = 1;

	pthread_mutex_lock(&fs->inode_lock);
	found = find_file_locked(fs, &e->attr, inode->handle);
	if (found != NULL) {
		/* another lookup made it meanwhile */
		found->nlookup++;
		set_name_locked(fs, found, parent, name);
		pthread_mutex_unlock(&fs->inode_lock);
		inode_free(inode);
		if (!is_dir)
			close(fd);
		e->ino = (uintptr_t)found;
		return 0;
	}
	set_name_locked(fs, inode, parent, name);
	inode->hnext = fs->buckets[bucket];
	inode->hashed = true;
	fs->buckets[bucket] = inode;
	pthread_mutex_unlock(&fs->inode_lock);
	if (!is_dir)
		close(fd);
	e->ino = (uintptr_t)inode;
	return 0;
}

/* the path of the directory fd relative to the tree root into buf */
static int dir_fd_path(struct oboxfs *fs, int fd, char *buf, size_t size)
{
	char proc[40], path[PATH_MAX + 1];
	struct stat st;
	ssize_t len;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	len = readlink(proc, path, sizeof(path) - 1);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof(path) - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	path[len] = '\0';
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (st.st_nlink == 0) {
		errno = ENOENT;
		return -1;
	}
	if (strcmp(path, fs->meta_path) == 0) {
		if (size == 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		buf[0] = '\0';
		return 0;
	}
	if (strncmp(path, fs->meta_path, fs->meta_path_len) != 0 ||
	    path[fs->meta_path_len] != '/') {
		errno = ENOENT;
		return -1;
	}
	const char *rel = path + fs->meta_path_len + 1;

	if (strlen(rel) >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	return 0;
}

int inode_path(struct oboxfs *fs, struct oinode *inode, char *buf,
	       size_t size)
{
	char name[NAME_MAX + 1];
	struct oinode *parent;
	struct stat st;
	size_t len;
	int ret;

	if (inode->is_stats) {
		errno = ENOENT;
		return -1;
	}
	if (inode->fd >= 0)
		return dir_fd_path(fs, inode->fd, buf, size);
	/* a file: its directory's path and the name it is known by, if that
	   still names it */
	if (!inode_name_pin(fs, inode, &parent, name)) {
		errno = ENOENT;
		return -1;
	}
	ret = dir_fd_path(fs, parent->fd, buf, size);
	if (ret == 0 && (fstatat(parent->fd, name, &st,
				 AT_SYMLINK_NOFOLLOW) < 0 ||
			 st.st_dev != inode->dev || st.st_ino != inode->ino)) {
		errno = ENOENT;
		ret = -1;
	}
	inode_name_unpin(fs, parent);
	if (ret < 0)
		return -1;
	len = strlen(buf);
	if (len + (len > 0 ? 1 : 0) + strlen(name) >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (len > 0)
		buf[len++] = '/';
	strcpy(buf + len, name);
	return 0;
}

int inode_dir_name(struct oboxfs *fs, struct oinode *inode, char *dir,
		   size_t size, const char **name_r)
{
	char *slash;

	if (inode == &fs->root || inode->is_stats) {
		errno = ENOENT;
		return -1;
	}
	if (inode_path(fs, inode, dir, size) < 0)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		/* a user directory */
		errno = ENOENT;
		return -1;
	}
	*slash = '\0';
	*name_r = slash + 1;
	return 0;
}

void inode_pin(struct oboxfs *fs, struct oinode *inode)
{
	pthread_mutex_lock(&fs->inode_lock);
	inode->refs++;
	pthread_mutex_unlock(&fs->inode_lock);
}

struct oinode *inode_find_pinned(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	struct oinode *found;

	pthread_mutex_lock(&fs->inode_lock);
	found = find_locked(fs, dev, ino);
	if (found != NULL)
		found->refs++;
	pthread_mutex_unlock(&fs->inode_lock);
	return found;
}

struct oinode *inode_find(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	struct oinode *found;

	pthread_mutex_lock(&fs->inode_lock);
	found = find_locked(fs, dev, ino);
	pthread_mutex_unlock(&fs->inode_lock);
	return found;
}
