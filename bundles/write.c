/* write.c: materializing a bundle_tree below an empty directory: files with
 * content, stubs (empty files + xattrs), folder guid xattrs, hard links,
 * special files, then modes, owners and mtimes. */
#include "bundle-private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

static int create_entry(int dirfd, const struct bundle_entry *e,
			const char **error_r)
{
	char size[32];
	int fd, ret = 0, len;

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
	fd = openat(dirfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0)
		return write_fail(e->path, "openat", error_r);
	if (e->type == BUNDLE_ENTRY_FILE) {
		if (write_all(fd, e->data, e->size) < 0)
			ret = write_fail(e->path, "write", error_r);
	} else {
		len = snprintf(size, sizeof(size), "%" PRIu64, e->size);
		if (fsetxattr(fd, BUNDLE_XATTR_SIZE, size, (size_t)len, 0) < 0 ||
		    fsetxattr(fd, BUNDLE_XATTR_KEY, e->key, strlen(e->key),
			      0) < 0)
			ret = write_fail(e->path, "fsetxattr", error_r);
	}
	if (close(fd) < 0 && ret == 0)
		ret = write_fail(e->path, "close", error_r);
	return ret;
}

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
		ret = create_entry(dirfd, e, error_r);
	}
	/* children are all created: directory mtimes stay as restored */
	for (size_t i = tree->count; i > 0 && ret == 0; i--)
		ret = restore_meta(dirfd, &tree->entries[i - 1], error_r);
	free(link_first);
	free(links);
	free(first);
	return ret;
}
