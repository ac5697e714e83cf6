/* write.c: materializing a bundle_tree below an empty directory: files with
 * content, stubs (empty files + xattrs), folder guid xattrs, hard links,
 * special files, then modes, owners and mtimes. */
#include "bundle-private.h"
#include "stubattr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int write_fail(const char *path, const char *what, const char **error_r)
{
	*error_r = bundle_error("%s(%s) failed: %s", what, path,
				strerror(errno));
	return -1;
}

static int dir_check_empty(int dirfd, const char **error_r)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;
	int ret = 0;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return write_fail(".", "opendir", error_r);
	}
	while ((d = readdir(dir)) != NULL) {
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) {
			*error_r = bundle_error("bundle_tree_write: target "
						"directory is not empty");
			ret = -1;
			break;
		}
	}
	closedir(dir);
	return ret;
}

static int write_all(int fd, const unsigned char *data, uint64_t size)
{
	uint64_t done = 0;

	while (done < size) {
		ssize_t ret = write(fd, data + done, size - done);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -1;
		done += (uint64_t)ret;
	}
	return 0;
}

/* The directory of the entries being written: entries come sorted by
   path, so a directory's files are written one after the other and its
   fd is opened once, not resolved again for each file. */
struct parent_cache {
	char *path;	/* "" for dirfd itself; NULL if none open */
	int fd;
	bool is_root;	/* geteuid() == 0: files get their owners */
};

static void parent_cache_close(struct parent_cache *pc)
{
	if (pc->path != NULL && pc->fd >= 0 && pc->path[0] != '\0')
		close(pc->fd);
	free(pc->path);
	pc->path = NULL;
	pc->fd = -1;
}

/* The fd of e's parent directory and e's name in it, or -1. */
static int parent_fd_get(struct parent_cache *pc, int dirfd,
			 const struct bundle_entry *e, const char **name_r,
			 const char **error_r)
{
	const char *slash = strrchr(e->path, '/');
	size_t len = slash == NULL ? 0 : (size_t)(slash - e->path);

	*name_r = slash == NULL ? e->path : slash + 1;
	if (pc->path != NULL && strlen(pc->path) == len &&
	    memcmp(pc->path, e->path, len) == 0)
		return pc->fd;
	parent_cache_close(pc);
	pc->path = bundle_xstrndup(e->path, len);
	if (len == 0) {
		pc->fd = dirfd;
		return dirfd;
	}
	/* bundle_tree_check(): canonical paths, every parent a directory
	   written before (by us, so no symlink in the way) */
	pc->fd = openat(dirfd, pc->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	if (pc->fd < 0) {
		(void)write_fail(pc->path, "openat", error_r);
		free(pc->path);
		pc->path = NULL;
	}
	return pc->fd;
}

/* owner (when root: is_root), mode and mtime of the file open as fd */
static int file_meta(int fd, const struct bundle_entry *e, bool is_root,
		     const char **error_r)
{
	struct timespec ts[2];

	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)e->mtime_sec;
	ts[1].tv_nsec = (long)e->mtime_nsec;
	if (is_root && fchown(fd, (uid_t)e->uid, (gid_t)e->gid) < 0)
		return write_fail(e->path, "fchown", error_r);
	if (fchmod(fd, (mode_t)e->mode) < 0)
		return write_fail(e->path, "fchmod", error_r);
	if (futimens(fd, ts) < 0)
		return write_fail(e->path, "futimens", error_r);
	return 0;
}

/* a file or stub, complete with its metadata */
static int create_file(struct parent_cache *pc, int dirfd,
		       const struct bundle_entry *e, const char **error_r)
{
	const char *name;
	int pfd, fd, ret = 0;

	/* as openat(dirfd, e->path) would: a path the kernel cannot take
	   whole is refused even though its directory has an fd here */
	if (strlen(e->path) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return write_fail(e->path, "openat", error_r);
	}
	if ((pfd = parent_fd_get(pc, dirfd, e, &name, error_r)) < 0)
		return -1;
	fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return write_fail(e->path, "openat", error_r);
	if (e->type == BUNDLE_ENTRY_FILE) {
		if (write_all(fd, e->data, e->size) < 0)
			ret = write_fail(e->path, "write", error_r);
	} else if (bundle_stub_attr_write_new(fd, e->key, e->size) < 0) {
		ret = write_fail(e->path, "fsetxattr", error_r);
	}
	if (ret == 0)
		ret = file_meta(fd, e, pc->is_root, error_r);
	if (close(fd) < 0 && ret == 0)
		ret = write_fail(e->path, "close", error_r);
	return ret;
}

int bundle_stub_create(int dirfd, const struct bundle_entry *e,
		       const char **error_r)
{
	struct parent_cache pc = { .path = NULL, .fd = -1,
				   .is_root = geteuid() == 0 };
	int ret;

	if (e->type != BUNDLE_ENTRY_STUB || strchr(e->path, '/') != NULL) {
		errno = EINVAL;
		*error_r = bundle_error("bundle_stub_create: %s is not a stub "
					"named in its directory", e->path);
		return -1;
	}
	ret = create_file(&pc, dirfd, e, error_r);
	parent_cache_close(&pc);
	if (ret < 0 && errno == EEXIST)
		return 0;
	if (ret < 0) {
		int saved = errno;

		/* nothing half-made left behind (it was created: O_EXCL) */
		if (saved != EEXIST)
			(void)unlinkat(dirfd, e->path, 0);
		errno = saved;
		return -1;
	}
	return 1;
}

static int create_entry(struct parent_cache *pc, int dirfd,
			const struct bundle_entry *e, const char **error_r)
{
	int fd, ret = 0;

	if (e->type == BUNDLE_ENTRY_DIR) {
		if (mkdirat(dirfd, e->path, 0700) < 0)
			return write_fail(e->path, "mkdirat", error_r);
		if (e->guid[0] == '\0')
			return 0;
		fd = openat(dirfd, e->path, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return write_fail(e->path, "openat", error_r);
		if (fsetxattr(fd, BUNDLE_XATTR_GUID, e->guid, strlen(e->guid),
			      0) < 0)
			ret = write_fail(e->path, "fsetxattr", error_r);
		close(fd);
		return ret;
	}
	if (bundle_type_is_special(e->type))
		return bundle_special_create(dirfd, e, error_r);
	return create_file(pc, dirfd, e, error_r);
}

/* owner, mode and mtime of what is not a file made by create_file() */
static int restore_meta(int dirfd, const struct bundle_entry *e,
			const char **error_r)
{
	struct timespec ts[2];

	if (geteuid() == 0 &&
	    fchownat(dirfd, e->path, (uid_t)e->uid, (gid_t)e->gid,
		     AT_SYMLINK_NOFOLLOW) < 0)
		return write_fail(e->path, "fchownat", error_r);
	/* a symlink has no mode of its own: fchmodat() would follow it */
	if (e->type != BUNDLE_ENTRY_SYMLINK &&
	    fchmodat(dirfd, e->path, (mode_t)e->mode, 0) < 0)
		return write_fail(e->path, "fchmodat", error_r);
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)e->mtime_sec;
	ts[1].tv_nsec = (long)e->mtime_nsec;
	if (utimensat(dirfd, e->path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return write_fail(e->path, "utimensat", error_r);
	return 0;
}

int bundle_tree_write(const struct bundle_tree *tree, int dirfd,
		      const char **error_r)
{
	size_t *link_first;
	uint32_t *links;
	bool *first;
	int ret = 0;

	if (bundle_tree_check(tree, error_r) < 0 ||
	    dir_check_empty(dirfd, error_r) < 0)
		return -1;
	links = bundle_link_map(tree, NULL, &first);
	link_first = bundle_xcalloc(tree->count + 1, sizeof(*link_first));
	struct parent_cache pc = { .path = NULL, .fd = -1,
				   .is_root = geteuid() == 0 };
	for (size_t i = 0; i < tree->count && ret == 0; i++) {
		const struct bundle_entry *e = &tree->entries[i];

		if (links[i] != 0 && !first[i]) {
			const char *target =
				tree->entries[link_first[links[i]]].path;

			if (linkat(dirfd, target, dirfd, e->path, 0) < 0)
				ret = write_fail(e->path, "linkat", error_r);
			continue;
		}
		if (links[i] != 0)
			link_first[links[i]] = i;
		ret = create_entry(&pc, dirfd, e, error_r);
	}
	parent_cache_close(&pc);
	/* children are all created: directory mtimes stay as restored;
	   files and stubs got theirs when created (a link to them changes
	   no mtime) */
	for (size_t i = tree->count; i > 0 && ret == 0; i--) {
		const struct bundle_entry *e = &tree->entries[i - 1];

		if (e->type != BUNDLE_ENTRY_FILE && e->type != BUNDLE_ENTRY_STUB)
			ret = restore_meta(dirfd, e, error_r);
	}
	free(link_first);
	free(links);
	free(first);
	return ret;
}
