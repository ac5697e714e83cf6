/* stub.c: reading and writing the xattrs that make a metacache file a stub. */
#include "stub.h"
#include "stubattr.h"
#include "ids.h"
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

ssize_t fd_getxattr(int fd, const char *name, void *value, size_t size)
{
	return bundle_fd_getxattr(fd, name, value, size);
}

int fd_setxattr(int fd, const char *name, const void *value, size_t size,
		int flags)
{
	return bundle_fd_setxattr(fd, name, value, size, flags);
}

int fd_removexattr(int fd, const char *name)
{
	return bundle_fd_removexattr(fd, name);
}

/* the engine's own checks of a key read from a stub */
static int key_check(const char *key)
{
	const char *error;

	if (objstore_key_check(key, &error) < 0 || keys_key_oid(key) == NULL)
		return -1;
	return 0;
}

static int damaged(const struct stat *st, const char *error)
{
	obox_log(OBOX_LOG_ERR, "damaged mail stub (inode %ju): %s\n",
		 (uintmax_t)st->st_ino, error);
	errno = EIO;
	return -1;
}

int stub_read(int fd, const struct stat *st, struct stub *stub_r)
{
	const char *error;
	int ret;

	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return 0;
	ret = bundle_stub_attr_read(fd, stub_r->key, &stub_r->size, &error);
	if (ret < 0 && errno == EIO)
		return damaged(st, error);
	if (ret > 0 && key_check(stub_r->key) < 0)
		return damaged(st, "not a mail key");
	return ret;
}

int stub_read_oldkey(int fd, char key_r[OBJSTORE_KEY_MAX + 1])
{
	const char *error;
	ssize_t len = fd_getxattr(fd, STUB_XATTR_OLDKEY, key_r,
				  OBJSTORE_KEY_MAX);

	if (len < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		return -1;
	}
	key_r[len] = '\0';
	if (len == 0 || memchr(key_r, '\0', (size_t)len) != NULL ||
	    objstore_key_check(key_r, &error) < 0 ||
	    keys_key_oid(key_r) == NULL) {
		obox_log(OBOX_LOG_ERR, "damaged %s xattr: not a mail key\n",
			 STUB_XATTR_OLDKEY);
		errno = EIO;
		return -1;
	}
	return 1;
}

int stub_read_unnamed(int fd)
{
	char value[2];
	ssize_t len = fd_getxattr(fd, STUB_XATTR_UNNAMED, value,
				  sizeof(value));

	if (len < 0 && errno != ERANGE)
		return errno == ENODATA || errno == ENOTSUP ? 0 : -1;
	return 1;
}

int stub_set_unnamed(int fd, bool unnamed)
{
	if (unnamed)
		return fd_setxattr(fd, STUB_XATTR_UNNAMED, "1", 1, 0);
	return fd_removexattr(fd, STUB_XATTR_UNNAMED);
}

int stub_write(int fd, const struct stub *stub)
{
	return bundle_stub_attr_write(fd, stub->key, stub->size);
}

uint64_t stub_disk_bytes(int dir_fd)
{
	struct stub stub = { .size = 123456 };
	char name[64], oid[IDS_HEX_LEN + 1];
	uint64_t bytes = 4096;
	struct stat st;
	int fd;

	/* a key as long as a typical user's mail key */
	if (ids_generate(oid) < 0 ||
	    keys_mail_key("user00001@example.com", oid, oid, stub.key,
			  sizeof(stub.key)) < 0)
		return bytes;
	snprintf(name, sizeof(name), "stub-probe.%s", oid);
	fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return bytes;
	if (stub_write(fd, &stub) == 0 &&
	    fstat(fd, &st) == 0)
		bytes = (uint64_t)st.st_blocks * 512;
	close(fd);
	(void)unlinkat(dir_fd, name, 0);
	return bytes;
}

int stub_clear(int fd)
{
	return bundle_stub_attr_clear(fd);
}

int stub_fix_stat(int fd, struct stat *st)
{
	const char *error;
	uint64_t size;
	int ret;

	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return 0;
	/* the size alone: one xattr (in the inode) for a compact stub */
	ret = bundle_stub_attr_read(fd, NULL, &size, &error);
	if (ret < 0 && errno == EIO)
		return damaged(st, error);
	if (ret <= 0)
		return ret;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	return 0;
}
