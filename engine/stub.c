/* stub.c: reading and writing the xattrs that make a metacache file a stub. */
#include "stub.h"
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

#define FD_PATH_MAX 40

static void fd_path(int fd, char buf[FD_PATH_MAX])
{
	snprintf(buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

ssize_t fd_getxattr(int fd, const char *name, void *value, size_t size)
{
	char path[FD_PATH_MAX];

	fd_path(fd, path);
	return getxattr(path, name, value, size);
}

int fd_setxattr(int fd, const char *name, const void *value, size_t size,
		int flags)
{
	char path[FD_PATH_MAX];

	fd_path(fd, path);
	return setxattr(path, name, value, size, flags);
}

int fd_removexattr(int fd, const char *name)
{
	char path[FD_PATH_MAX];

	fd_path(fd, path);
	if (removexattr(path, name) < 0 && errno != ENODATA)
		return -1;
	return 0;
}

int stub_parse(const char *key, size_t key_len, const char *size,
	       size_t size_len, struct stub *stub_r)
{
	const char *error;
	uint64_t value = 0;

	if (key_len == 0 || key_len > OBJSTORE_KEY_MAX ||
	    memchr(key, '\0', key_len) != NULL)
		return -1;
	memcpy(stub_r->key, key, key_len);
	stub_r->key[key_len] = '\0';
	if (objstore_key_check(stub_r->key, &error) < 0 ||
	    keys_key_oid(stub_r->key) == NULL)
		return -1;
	if (size_len == 0 || size_len > 20)
		return -1;
	for (size_t i = 0; i < size_len; i++) {
		if (size[i] < '0' || size[i] > '9')
			return -1;
		if (value > (UINT64_MAX - 9) / 10)
			return -1;
		value = value * 10 + (uint64_t)(size[i] - '0');
	}
	if (value > INT64_MAX)
		return -1;
	stub_r->size = value;
	return 0;
}

int stub_read(int fd, const struct stat *st, struct stub *stub_r)
{
	char key[OBJSTORE_KEY_MAX + 1], size[32];
	ssize_t key_len, size_len;

	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return 0;
	key_len = fd_getxattr(fd, BUNDLE_XATTR_KEY, key, sizeof(key));
	if (key_len < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return 0;
		return -1;
	}
	size_len = fd_getxattr(fd, BUNDLE_XATTR_SIZE, size, sizeof(size));
	if (size_len < 0 ||
	    stub_parse(key, (size_t)key_len, size, (size_t)size_len,
		       stub_r) < 0) {
		obox_log(OBOX_LOG_ERR, "damaged mail stub (inode %ju): "
			 "invalid %s/%s xattrs\n", (uintmax_t)st->st_ino,
			 BUNDLE_XATTR_KEY, BUNDLE_XATTR_SIZE);
		errno = EIO;
		return -1;
	}
	return 1;
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

int stub_write(int fd, const struct stub *stub)
{
	char size[32];
	int len = snprintf(size, sizeof(size), "%" PRIu64, stub->size);

	if (fd_setxattr(fd, BUNDLE_XATTR_SIZE, size, (size_t)len, 0) < 0 ||
	    fd_setxattr(fd, BUNDLE_XATTR_KEY, stub->key, strlen(stub->key), 0) < 0)
		return -1;
	return 0;
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
	if (fd_removexattr(fd, BUNDLE_XATTR_KEY) < 0 ||
	    fd_removexattr(fd, BUNDLE_XATTR_SIZE) < 0)
		return -1;
	return 0;
}

int stub_fix_stat(int fd, struct stat *st)
{
	struct stub stub;
	int ret = stub_read(fd, st, &stub);

	if (ret <= 0)
		return ret;
	st->st_size = (off_t)stub.size;
	st->st_blocks = (blkcnt_t)((stub.size + 511) / 512);
	return 0;
}
