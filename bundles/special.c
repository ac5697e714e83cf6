/* special.c: special files of an index tree (symlinks, fifos, sockets,
 * device nodes): which file types they are, the rules their entries follow,
 * reading one from disk and creating one.  They are inert entries: the
 * mount is nodev, and a socket is restored as an inode no one listens on. */
#include "bundle-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* device numbers Linux can hold: 12 bits of major, 20 of minor */
#define DEV_MAJOR_MAX 0xfffU
#define DEV_MINOR_MAX 0xfffffU

static const struct {
	enum bundle_entry_type type;
	mode_t fmt;
} special_types[] = {
	{ BUNDLE_ENTRY_SYMLINK, S_IFLNK },
	{ BUNDLE_ENTRY_FIFO, S_IFIFO },
	{ BUNDLE_ENTRY_SOCKET, S_IFSOCK },
	{ BUNDLE_ENTRY_CHARDEV, S_IFCHR },
	{ BUNDLE_ENTRY_BLOCKDEV, S_IFBLK },
};
#define SPECIAL_TYPE_COUNT (sizeof(special_types) / sizeof(special_types[0]))

static mode_t special_fmt(enum bundle_entry_type type)
{
	for (size_t i = 0; i < SPECIAL_TYPE_COUNT; i++) {
		if (special_types[i].type == type)
			return special_types[i].fmt;
	}
	return 0;
}

bool bundle_type_is_special(enum bundle_entry_type type)
{
	return special_fmt(type) != 0;
}

bool bundle_type_has_data(enum bundle_entry_type type)
{
	return type == BUNDLE_ENTRY_FILE || type == BUNDLE_ENTRY_SYMLINK;
}

bool bundle_type_is_device(enum bundle_entry_type type)
{
	return type == BUNDLE_ENTRY_CHARDEV || type == BUNDLE_ENTRY_BLOCKDEV;
}

enum bundle_entry_type bundle_special_type(mode_t mode)
{
	for (size_t i = 0; i < SPECIAL_TYPE_COUNT; i++) {
		if (special_types[i].fmt == (mode & S_IFMT))
			return special_types[i].type;
	}
	return 0;
}

int bundle_special_check(const struct bundle_entry *e, const char **error_r)
{
	bool symlink = e->type == BUNDLE_ENTRY_SYMLINK;

	if (!bundle_type_is_special(e->type) || e->key != NULL ||
	    e->guid[0] != '\0' || e->link_id != 0 ||
	    (!bundle_type_is_device(e->type) && e->rdev != 0)) {
		*error_r = bundle_error("%s: invalid special file entry "
					"(key, link id or rdev)", e->path);
		return -1;
	}
	if (bundle_type_is_device(e->type) &&
	    (major((dev_t)e->rdev) > DEV_MAJOR_MAX ||
	     minor((dev_t)e->rdev) > DEV_MINOR_MAX)) {
		*error_r = bundle_error("%s: invalid device number %u:%u",
					e->path, major((dev_t)e->rdev),
					minor((dev_t)e->rdev));
		return -1;
	}
	if (symlink && (e->size == 0 || e->size > BUNDLE_SYMLINK_MAX ||
			e->data == NULL ||
			memchr(e->data, '\0', e->size) != NULL)) {
		*error_r = bundle_error("%s: invalid symlink target (%llu "
					"bytes, 1..%d without NUL)", e->path,
					(unsigned long long)e->size,
					BUNDLE_SYMLINK_MAX);
		return -1;
	}
	if (!symlink && (e->size != 0 || e->data != NULL)) {
		*error_r = bundle_error("%s: special file with content",
					e->path);
		return -1;
	}
	return 0;
}

int bundle_special_scan(int dirfd, const char *name, const struct stat *st,
			struct bundle_entry *e, const char **error_r)
{
	char target[BUNDLE_SYMLINK_MAX + 1];
	ssize_t len;

	e->type = bundle_special_type(st->st_mode);
	if (e->type == 0) {
		*error_r = bundle_error("%s: unsupported file type 0%o",
					e->path, (unsigned int)
					(st->st_mode & S_IFMT));
		return -1;
	}
	if (bundle_type_is_device(e->type))
		e->rdev = (uint64_t)st->st_rdev;
	if (e->type != BUNDLE_ENTRY_SYMLINK)
		return 1;
	len = readlinkat(dirfd, name, target, sizeof(target));
	if (len < 0 && errno == ENOENT)
		return 0;
	if (len < 0) {
		*error_r = bundle_error("readlinkat(%s) failed: %s", e->path,
					strerror(errno));
		return -1;
	}
	if (len == 0 || (size_t)len > BUNDLE_SYMLINK_MAX) {
		*error_r = bundle_error("%s: symlink target of %zd bytes",
					e->path, len);
		return -1;
	}
	e->size = (uint64_t)len;
	e->data = bundle_xmalloc((size_t)len);
	memcpy(e->data, target, (size_t)len);
	return 1;
}

int bundle_special_create(int dirfd, const struct bundle_entry *e,
			  const char **error_r)
{
	char target[BUNDLE_SYMLINK_MAX + 1];

	if (bundle_special_check(e, error_r) < 0)
		return -1;
	if (e->type == BUNDLE_ENTRY_SYMLINK) {
		memcpy(target, e->data, e->size);
		target[e->size] = '\0';
		if (symlinkat(target, dirfd, e->path) == 0)
			return 0;
		*error_r = bundle_error("symlinkat(%s) failed: %s", e->path,
					strerror(errno));
		return -1;
	}
	if (mknodat(dirfd, e->path, special_fmt(e->type) | 0600,
		    (dev_t)e->rdev) == 0)
		return 0;
	*error_r = bundle_error("mknodat(%s) failed: %s", e->path,
				strerror(errno));
	return -1;
}
