/* inode.c: the inode table: node ids <-> metacache files (dev, ino).
 *
 * Like libfuse's passthrough_ll: each inode the kernel knows holds an O_PATH
 * fd of its metacache file and a lookup count; forget() drops it.  Found by
 * (dev, ino) in a hash table so that hard links share one inode.
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

void inode_table_deinit(struct oboxfs *fs)
{
	if (fs->buckets == NULL)
		return;
	for (unsigned int i = 0; i < fs->bucket_count; i++) {
		struct oinode *inode, *next;

		for (inode = fs->buckets[i]; inode != NULL; inode = next) {
			next = inode->hnext;
			close(inode->fd);
			free(inode);
		}
	}
	free(fs->buckets);
	fs->buckets = NULL;
	pthread_mutex_destroy(&fs->inode_lock);
}

static unsigned int bucket_of(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (unsigned int)(h >> 32) % fs->bucket_count;
}

void inode_unref(struct oboxfs *fs, struct oinode *inode, uint64_t n)
{
	struct oinode **p;

	if (inode == &fs->root || inode->is_stats)
		return;
	pthread_mutex_lock(&fs->inode_lock);
	assert(inode->nlookup >= n);
	inode->nlookup -= n;
	if (inode->nlookup > 0) {
		pthread_mutex_unlock(&fs->inode_lock);
		return;
	}
	p = &fs->buckets[bucket_of(fs, inode->dev, inode->ino)];
	while (*p != inode)
		p = &(*p)->hnext;
	*p = inode->hnext;
	pthread_mutex_unlock(&fs->inode_lock);
	close(inode->fd);
	free(inode);
}

int inode_stat(struct oboxfs *fs, struct oinode *inode, struct stat *st_r)
{
	if (inode->is_stats) {
		memset(st_r, 0, sizeof(*st_r));
		st_r->st_ino = 1;
		st_r->st_mode = S_IFREG | 0444;
		st_r->st_nlink = 1;
		return 0;
	}
	(void)fs;
	return obox_stat(inode->fd, st_r);
}

int inode_lookup(struct oboxfs *fs, struct oinode *parent, const char *name,
		 bool load, struct fuse_entry_param *e)
{
	struct oinode *inode, *found;
	uint64_t stub_size = 0;
	unsigned int bucket;
	const char *error;
	int fd, is_stub;

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
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
	    (is_stub = obox_stub_size(fd, &e->attr, &stub_size)) < 0) {
		int saved = errno;

		close(fd);
		return saved;
	}
	if (is_stub > 0) {
		e->attr.st_size = (off_t)stub_size;
		e->attr.st_blocks = (blkcnt_t)((stub_size + 511) / 512);
		/* a stub's name may come to refer to another stub file
		   (engine/mailnames.c): have the kernel look it up every
		   time */
		e->entry_timeout = 0;
	}

	obox_user_touch(parent->user);
	pthread_mutex_lock(&fs->inode_lock);
	bucket = bucket_of(fs, e->attr.st_dev, e->attr.st_ino);
	for (found = fs->buckets[bucket]; found != NULL; found = found->hnext) {
		if (found->ino == e->attr.st_ino && found->dev == e->attr.st_dev)
			break;
	}
	if (found != NULL) {
		found->nlookup++;
		pthread_mutex_unlock(&fs->inode_lock);
		close(fd);
		e->ino = (uintptr_t)found;
		return 0;
	}
	inode = calloc(1, sizeof(*inode));
	if (inode == NULL) {
		pthread_mutex_unlock(&fs->inode_lock);
		close(fd);
		return ENOMEM;
	}
	inode->fd = fd;
	inode->user = parent == &fs->root ? obox_user_get(fs->obox, name) :
		parent->user;
	inode->dev = e->attr.st_dev;
	inode->ino = e->attr.st_ino;
	inode->nlookup = 1;
	inode->hnext = fs->buckets[bucket];
	fs->buckets[bucket] = inode;
	pthread_mutex_unlock(&fs->inode_lock);
	e->ino = (uintptr_t)inode;
	return 0;
}

int inode_path(struct oboxfs *fs, struct oinode *inode, char *buf,
	       size_t size)
{
	char proc[40], path[PATH_MAX + 1];
	struct stat st;
	ssize_t len;

	if (inode == &fs->root) {
		if (size == 0) {
			errno = ENAMETOOLONG;
			return -1;
		}
		buf[0] = '\0';
		return 0;
	}
	if (inode->is_stats) {
		errno = ENOENT;
		return -1;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->fd);
	len = readlink(proc, path, sizeof(path) - 1);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof(path) - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	path[len] = '\0';
	if (fstatat(inode->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (st.st_nlink == 0) {
		errno = ENOENT;
		return -1;
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

struct oinode *inode_find(struct oboxfs *fs, dev_t dev, ino_t ino)
{
	struct oinode *found;

	pthread_mutex_lock(&fs->inode_lock);
	for (found = fs->buckets[bucket_of(fs, dev, ino)]; found != NULL;
	     found = found->hnext) {
		if (found->ino == ino && found->dev == dev)
			break;
	}
	pthread_mutex_unlock(&fs->inode_lock);
	return found;
}
