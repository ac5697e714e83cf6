/* cachedir-file.c: cache file names, ids of keys, checksums and copying
 * bytes into temporary cache files. */
#include "cachedir-private.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_BUF_SIZE 65536

static const char hexdigits[] = "0123456789abcdef";

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_hex(const char *s, size_t len, uint8_t *out)
{
	for (size_t i = 0; i < len; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void to_hex(const uint8_t *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 15];
	}
}

void cachedir_key_id(const char *key, uint8_t id_r[CACHEDIR_ID_LEN])
{
	const char *last = strrchr(key, '/');
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen;

	last = last == NULL ? key : last + 1;
	if (strlen(last) == 2 * CACHEDIR_ID_LEN &&
	    parse_hex(last, 2 * CACHEDIR_ID_LEN, id_r) == 0)
		return;
	(void)EVP_Digest(key, strlen(key), digest, &dlen, EVP_sha256(), NULL);
	memcpy(id_r, digest, CACHEDIR_ID_LEN);
}

void cachedir_file_name(const uint8_t id[CACHEDIR_ID_LEN], uint64_t csum,
			char name_r[CACHEDIR_NAME_LEN + 1])
{
	uint8_t c[8];

	for (int i = 0; i < 8; i++)
		c[i] = (uint8_t)(csum >> (56 - 8 * i));
	to_hex(CACHEDIR_ID_SUBDIR(id), 1, name_r);
	name_r[2] = '/';
	to_hex(id, CACHEDIR_ID_LEN, name_r + 3);
	name_r[3 + 2 * CACHEDIR_ID_LEN] = '.';
	to_hex(c, 8, name_r + 4 + 2 * CACHEDIR_ID_LEN);
	name_r[CACHEDIR_NAME_LEN] = '\0';
}

int cachedir_parse_file_name(const char *name, uint8_t id_r[CACHEDIR_ID_LEN],
			     uint64_t *csum_r)
{
	uint8_t c[8];

	if (strlen(name) != 2 * CACHEDIR_ID_LEN + 1 + 16 ||
	    name[2 * CACHEDIR_ID_LEN] != '.' ||
	    parse_hex(name, 2 * CACHEDIR_ID_LEN, id_r) < 0 ||
	    parse_hex(name + 2 * CACHEDIR_ID_LEN + 1, 16, c) < 0)
		return -1;
	*csum_r = 0;
	for (int i = 0; i < 8; i++)
		*csum_r = *csum_r << 8 | c[i];
	return 0;
}

static uint64_t digest_to_csum(EVP_MD_CTX *ctx)
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen;
	uint64_t csum = 0;

	(void)EVP_DigestFinal_ex(ctx, digest, &dlen);
	for (int i = 0; i < 8; i++)
		csum = csum << 8 | digest[i];
	return csum;
}

/* read size bytes of src from 0, feeding them to the digest and, if
   dst >= 0, writing them to dst */
static int copy_hash(int src, int dst, uint64_t size, uint64_t *csum_r)
{
	static __thread char buf[COPY_BUF_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint64_t off = 0;
	int ret = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		errno = ENOMEM;
		return -1;
	}
	while (off < size) {
		size_t want = size - off < sizeof(buf) ? size - off : sizeof(buf);
		ssize_t got = pread(src, buf, want, (off_t)off);

		if (got <= 0) {
			if (got == 0)
				errno = EIO;	/* shorter than expected */
			goto out;
		}
		(void)EVP_DigestUpdate(ctx, buf, (size_t)got);
		for (ssize_t done = 0; dst >= 0 && done < got; ) {
			ssize_t w = pwrite(dst, buf + done, (size_t)(got - done),
					   (off_t)off + done);

			if (w < 0)
				goto out;
			done += w;
		}
		off += (uint64_t)got;
	}
	*csum_r = digest_to_csum(ctx);
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	return ret;
}

int cachedir_file_csum(int fd, uint64_t size, uint64_t *csum_r)
{
	return copy_hash(fd, -1, size, csum_r);
}

int cachedir_copy_fd(int src, int dst, uint64_t size, uint64_t *csum_r)
{
	return copy_hash(src, dst, size, csum_r);
}

int cachedir_tmp_create(int dir_fd, const uint8_t id[CACHEDIR_ID_LEN],
			char tmp_r[CACHEDIR_NAME_LEN + 16])
{
	uint8_t rnd[8];
	char sub[3];
	int fd;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -1;
	to_hex(CACHEDIR_ID_SUBDIR(id), 1, sub);
	sub[2] = '\0';
	if (mkdirat(dir_fd, sub, 0700) < 0 && errno != EEXIST)
		return -1;
	memcpy(tmp_r, sub, 2);
	memcpy(tmp_r + 2, "/.tmp.", 6);
	to_hex(rnd, sizeof(rnd), tmp_r + 8);
	tmp_r[8 + 2 * sizeof(rnd)] = '\0';
	fd = openat(dir_fd, tmp_r, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return fd;
}
