/* stubattr.c: encoding and decoding the xattrs of a mail stub (see
 * stubattr.h for the two encodings). */
#include "stubattr.h"
#include "bundle-private.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#define FD_PATH_MAX 40
/* a key segment of one id in hex */
#define HEX_SEG (2 * BUNDLE_ID_SIZE)

static void fd_path(int fd, char buf[FD_PATH_MAX])
{
	snprintf(buf, FD_PATH_MAX, "/proc/self/fd/%d", fd);
}

ssize_t bundle_fd_getxattr(int fd, const char *name, void *value,
			   size_t size)
{
	char path[FD_PATH_MAX];
	ssize_t ret = fgetxattr(fd, name, value, size);

	if (ret >= 0 || errno != EBADF)
		return ret;
	/* an O_PATH fd */
	fd_path(fd, path);
	return getxattr(path, name, value, size);
}

int bundle_fd_setxattr(int fd, const char *name, const void *value,
		       size_t size, int flags)
{
	char path[FD_PATH_MAX];

	if (fsetxattr(fd, name, value, size, flags) == 0)
		return 0;
	if (errno != EBADF)
		return -1;
	fd_path(fd, path);
	return setxattr(path, name, value, size, flags);
}

int bundle_fd_removexattr(int fd, const char *name)
{
	char path[FD_PATH_MAX];
	int ret = fremovexattr(fd, name);

	if (ret < 0 && errno == EBADF) {
		fd_path(fd, path);
		ret = removexattr(path, name);
	}
	if (ret < 0 && errno != ENODATA)
		return -1;
	return 0;
}

/* key = "<prefix>/<32 hex>/<32 hex>", prefix non-empty: its length */
static size_t compact_prefix_len(const char *key, size_t len,
				 unsigned char value[BUNDLE_STUB_ATTR_LEN])
{
	const size_t tail = 2 * (HEX_SEG + 1);

	if (len <= tail || key[len - tail] != '/' ||
	    key[len - HEX_SEG - 1] != '/' ||
	    !bundle_id_hex_parse(key + len - tail + 1, value + 1) ||
	    !bundle_id_hex_parse(key + len - HEX_SEG, value + 1 + HEX_SEG / 2))
		return 0;
	return len - tail;
}

static int stub_attr_write(int fd, const char *key, uint64_t size,
			   bool fresh)
{
	unsigned char value[BUNDLE_STUB_ATTR_LEN];
	size_t len = strlen(key), plen = compact_prefix_len(key, len, value);
	char text[32];
	int tlen;

	if (plen > 0) {
		value[0] = BUNDLE_STUB_ATTR_VERSION;
		for (unsigned int i = 0; i < 8; i++)
			value[1 + HEX_SEG + i] = (unsigned char)(size >> (8 * i));
		/* the unique value first: it takes the inode's room */
		if (bundle_fd_setxattr(fd, BUNDLE_XATTR_STUB, value,
				       sizeof(value), 0) < 0 ||
		    bundle_fd_setxattr(fd, BUNDLE_XATTR_KPREFIX, key,
				       plen, 0) < 0)
			return -1;
		if (!fresh && (bundle_fd_removexattr(fd, BUNDLE_XATTR_KEY) < 0 ||
			       bundle_fd_removexattr(fd, BUNDLE_XATTR_SIZE) < 0))
			return -1;
		return 0;
	}
	/* size before key: a file with a key has a size */
	tlen = snprintf(text, sizeof(text), "%" PRIu64, size);
	if (bundle_fd_setxattr(fd, BUNDLE_XATTR_SIZE, text, (size_t)tlen,
			       0) < 0 ||
	    bundle_fd_setxattr(fd, BUNDLE_XATTR_KEY, key, len, 0) < 0)
		return -1;
	if (!fresh && (bundle_fd_removexattr(fd, BUNDLE_XATTR_STUB) < 0 ||
		       bundle_fd_removexattr(fd, BUNDLE_XATTR_KPREFIX) < 0))
		return -1;
	return 0;
}

int bundle_stub_attr_write(int fd, const char *key, uint64_t size)
{
	return stub_attr_write(fd, key, size, false);
}

int bundle_stub_attr_write_new(int fd, const char *key, uint64_t size)
{
	return stub_attr_write(fd, key, size, true);
}

static int damaged(const char **error_r, const char *what)
{
	*error_r = bundle_error("damaged mail stub xattrs: %s", what);
	errno = EIO;
	return -1;
}

/* xattr name of fd: length, 0 if missing (ENODATA, ENOTSUP), -1 */
static ssize_t get_opt(int fd, const char *name, void *buf, size_t size)
{
	ssize_t ret = bundle_fd_getxattr(fd, name, buf, size);

	if (ret < 0 && (errno == ENODATA || errno == ENOTSUP))
		return 0;
	if (ret < 0 && errno == ERANGE)
		return (ssize_t)size + 1;	/* too long: damaged */
	return ret;
}

static int read_compact(int fd, const unsigned char *value, size_t len,
			char *key_r, uint64_t *size_r, const char **error_r)
{
	uint64_t size = 0;
	ssize_t plen;

	if (len != BUNDLE_STUB_ATTR_LEN ||
	    value[0] != BUNDLE_STUB_ATTR_VERSION)
		return damaged(error_r, "bad " BUNDLE_XATTR_STUB);
	for (unsigned int i = 0; i < 8; i++)
		size |= (uint64_t)value[1 + HEX_SEG + i] << (8 * i);
	if (size > INT64_MAX)
		return damaged(error_r, "size out of range");
	*size_r = size;
	if (key_r == NULL)
		return 1;
	plen = get_opt(fd, BUNDLE_XATTR_KPREFIX, key_r,
		       BUNDLE_KEY_MAX - 2 * (HEX_SEG + 1));
	if (plen < 0)
		return -1;
	if (plen == 0 || (size_t)plen > BUNDLE_KEY_MAX - 2 * (HEX_SEG + 1))
		return damaged(error_r, "no or bad " BUNDLE_XATTR_KPREFIX);
	/* each format writes a NUL after its digits: the next overwrites */
	key_r[plen] = '/';
	bundle_id_hex_format(value + 1, key_r + plen + 1);
	key_r[plen + 1 + HEX_SEG] = '/';
	bundle_id_hex_format(value + 1 + HEX_SEG / 2, key_r + plen + 2 + HEX_SEG);
	if (bundle_key_check(key_r, strlen(key_r), error_r) < 0 ||
	    strlen(key_r) != (size_t)plen + 2 * (HEX_SEG + 1))
		return damaged(error_r, "bad " BUNDLE_XATTR_KPREFIX);
	return 1;
}

static int read_legacy(int fd, char *key_r, uint64_t *size_r,
		       const char **error_r)
{
	char key[BUNDLE_KEY_MAX + 1], text[24];
	ssize_t klen, slen;
	uint64_t size = 0;

	klen = get_opt(fd, BUNDLE_XATTR_KEY, key, BUNDLE_KEY_MAX);
	if (klen <= 0)
		return (int)klen;
	slen = get_opt(fd, BUNDLE_XATTR_SIZE, text, 20);
	if (slen < 0)
		return -1;
	if (klen > BUNDLE_KEY_MAX ||
	    bundle_key_check(key, (size_t)klen, error_r) < 0)
		return damaged(error_r, "bad " BUNDLE_XATTR_KEY);
	if (slen == 0 || slen > 19)
		return damaged(error_r, "no or bad " BUNDLE_XATTR_SIZE);
	for (ssize_t i = 0; i < slen; i++) {
		if (text[i] < '0' || text[i] > '9')
			return damaged(error_r, "bad " BUNDLE_XATTR_SIZE);
		size = size * 10 + (uint64_t)(text[i] - '0');
	}
	if (size > INT64_MAX)
		return damaged(error_r, BUNDLE_XATTR_SIZE " out of range");
	*size_r = size;
	if (key_r != NULL) {
		memcpy(key_r, key, (size_t)klen);
		key_r[klen] = '\0';
	}
	return 1;
}

int bundle_stub_attr_read(int fd, char *key_r, uint64_t *size_r,
			  const char **error_r)
{
	unsigned char value[BUNDLE_STUB_ATTR_LEN + 1];
	ssize_t len = get_opt(fd, BUNDLE_XATTR_STUB, value, sizeof(value));

	if (len < 0)
		return -1;
	if (len > 0)
		return read_compact(fd, value, (size_t)len, key_r, size_r,
				    error_r);
	return read_legacy(fd, key_r, size_r, error_r);
}

int bundle_stub_attr_clear(int fd)
{
	if (bundle_fd_removexattr(fd, BUNDLE_XATTR_STUB) < 0 ||
	    bundle_fd_removexattr(fd, BUNDLE_XATTR_KPREFIX) < 0 ||
	    bundle_fd_removexattr(fd, BUNDLE_XATTR_KEY) < 0 ||
	    bundle_fd_removexattr(fd, BUNDLE_XATTR_SIZE) < 0)
		return -1;
	return 0;
}
