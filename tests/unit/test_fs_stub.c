/* test_fs_stub.c: mail stubs: validation of the xattr values read back,
 * both encodings (bundles/stubattr.h), writing/reading/clearing them, and
 * the size a stub reports. */
#include "helper-objstore.h"
#include "stub.h"
#include "stubattr.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY "b4/c9a/user@example.com/mailboxes/" \
	"00d7d12ea08a3153175e0000dfbea952/d88ff1001d4bf753a1b800001accfe22"

static char *dir;
static int fd = -1;

static void init(void)
{
	char path[4096];

	dir = objtest_mkdtemp("stub");
	cr_assert_not_null(dir);
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
}

static void fini(void)
{
	if (fd >= 0)
		close(fd);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(fs_stub, .init = init, .fini = fini);

#define KP "b4/c9a/user@example.com/mailboxes"
#define G16 "\x00\xd7\xd1\x2e\xa0\x8a\x31\x53\x17\x5e\x00\x00\xdf\xbe\xa9\x52"
#define O16 "\xd8\x8f\xf1\x00\x1d\x4b\xf7\x53\xa1\xb8\x00\x00\x1a\xcc\xfe\x22"
/* a compact value: version, guid, oid, size (little endian) */
#define COMPACT(size8) "\x01" G16 O16 size8

/* arrays, not pointers: criterion runs each case in a new process.  The
   raw xattrs a stub may carry (len 0: absent; the others are set as
   given) and what stub_read() makes of them: 1 (key, size), 0 or -1
   (EIO). */
struct raw_case {
	char name[48];
	char stub[64];
	size_t stub_len;
	char kp[96];
	char key[160];
	char size[32];
	int ret;
	uint64_t value;
};

ParameterizedTestParameters(fs_stub, raw_xattrs)
{
	static struct raw_case cases[] = {
		{ "legacy 0", "", 0, "", KEY, "0", 1, 0 },
		{ "legacy 12345", "", 0, "", KEY, "12345", 1, 12345 },
		{ "legacy max", "", 0, "", KEY, "9223372036854775807", 1,
		  9223372036854775807ULL },
		{ "legacy over max", "", 0, "", KEY, "9223372036854775808", -1, 0 },
		{ "legacy 20 digits", "", 0, "", KEY, "99999999999999999999", -1, 0 },
		{ "legacy empty size", "", 0, "", KEY, "", -1, 0 },
		{ "legacy -1", "", 0, "", KEY, "-1", -1, 0 },
		{ "legacy 12a", "", 0, "", KEY, "12a", -1, 0 },
		{ "legacy space", "", 0, "", KEY, " 1", -1, 0 },
		{ "legacy no oid", "", 0, "", "b4/c9a/u/mailboxes/g/not-an-oid",
		  "1", -1, 0 },
		{ "legacy dotdot", "", 0, "",
		  "../d88ff1001d4bf753a1b800001accfe22", "1", -1, 0 },
		{ "legacy empty segment", "", 0, "",
		  "a//d88ff1001d4bf753a1b800001accfe22", "1", -1, 0 },
		{ "legacy bare oid", "", 0, "",
		  "d88ff1001d4bf753a1b800001accfe22", "1", 1, 1 },
		{ "size without key", "", 0, "", "", "5", 0, 0 },
		{ "compact", COMPACT("\x92\x10\0\0\0\0\0\0"), 41, KP, "", "", 1,
		  4242 },
		{ "compact max", COMPACT("\xff\xff\xff\xff\xff\xff\xff\x7f"), 41,
		  KP, "", "", 1, 9223372036854775807ULL },
		{ "compact over max",
		  COMPACT("\0\0\0\0\0\0\0\x80"), 41, KP, "", "", -1, 0 },
		{ "compact short", COMPACT("\x92\x10\0\0\0\0\0"), 40, KP, "", "",
		  -1, 0 },
		{ "compact long", COMPACT("\x92\x10\0\0\0\0\0\0\0"), 42, KP, "",
		  "", -1, 0 },
		{ "compact version 2", "\x02" G16 O16 "\x01\0\0\0\0\0\0\0", 41, KP,
		  "", "", -1, 0 },
		{ "compact without prefix", COMPACT("\x01\0\0\0\0\0\0\0"), 41, "",
		  "", "", -1, 0 },
		{ "compact bad prefix", COMPACT("\x01\0\0\0\0\0\0\0"), 41, "a/../b",
		  "", "", -1, 0 },
	};
	return cr_make_param_array(struct raw_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct raw_case *c, fs_stub, raw_xattrs)
{
	struct stub stub;
	struct stat st;
	int ret;

	if (c->stub_len > 0)
		cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_STUB, c->stub,
					 c->stub_len, 0), 0);
	if (c->kp[0] != '\0')
		cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_KPREFIX, c->kp,
					 strlen(c->kp), 0), 0);
	if (c->key[0] != '\0')
		cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_KEY, c->key,
					 strlen(c->key), 0), 0);
	if (c->size[0] != '\0')
		cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_SIZE, c->size,
					 strlen(c->size), 0), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	errno = 0;
	ret = stub_read(fd, &st, &stub);
	cr_assert_eq(ret, c->ret, "%s: stub_read() = %d", c->name, ret);
	if (ret < 0) {
		cr_assert_eq(errno, EIO, "%s", c->name);
		return;
	}
	if (ret == 0)
		return;
	cr_assert_str_eq(stub.key, c->key[0] != '\0' ? c->key : KEY,
			 "%s", c->name);
	cr_assert_eq(stub.size, c->value, "%s", c->name);
	cr_assert_eq(stub_fix_stat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, c->value, "%s", c->name);
}

Test(fs_stub, legacy_key_with_nul_is_damaged)
{
	const char key[] = "abc\0d88ff1001d4bf753a1b800001accfe22";
	struct stub stub;
	struct stat st;

	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_SIZE, "1", 1, 0), 0);
	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_KEY, key, sizeof(key) - 1,
				 0), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	errno = 0;
	cr_assert_eq(stub_read(fd, &st, &stub), -1);
	cr_assert_eq(errno, EIO);
}

/* which encoding a written stub has */
static bool has_xattr(const char *name)
{
	char buf[2048];

	return fd_getxattr(fd, name, buf, sizeof(buf)) >= 0;
}

Test(fs_stub, mail_keys_are_written_compact)
{
	struct stub in = { .key = KEY, .size = 77 }, out;
	struct stat st;
	char kp[128];
	ssize_t len;

	/* a stub of the old encoding, rewritten */
	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_SIZE, "5", 1, 0), 0);
	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_KEY, KEY, strlen(KEY), 0), 0);
	cr_assert_eq(stub_write(fd, &in), 0);
	cr_assert(has_xattr(BUNDLE_XATTR_STUB));
	cr_assert(!has_xattr(BUNDLE_XATTR_KEY), "the old key stays");
	cr_assert(!has_xattr(BUNDLE_XATTR_SIZE), "the old size stays");
	len = fd_getxattr(fd, BUNDLE_XATTR_KPREFIX, kp, sizeof(kp));
	cr_assert_eq(len, (ssize_t)strlen(KP));
	cr_assert_eq(memcmp(kp, KP, strlen(KP)), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &out), 1);
	cr_assert_str_eq(out.key, KEY);
	cr_assert_eq(out.size, 77);
}

Test(fs_stub, other_keys_are_written_legacy)
{
	/* no "<prefix>/<hex>/<hex>" tail (a capital, a bare oid) */
	static const char *const keys[] = {
		"d88ff1001d4bf753a1b800001accfe22",
		"x/00d7d12ea08a3153175e0000dfbea952/D88ff1001d4bf753a1b800001accfe22",
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct stub in = { .size = 9 }, out;
		struct stat st;

		snprintf(in.key, sizeof(in.key), "%s", keys[i]);
		cr_assert_eq(bundle_stub_attr_write(fd, in.key, in.size), 0);
		cr_assert(!has_xattr(BUNDLE_XATTR_STUB), "%s", keys[i]);
		cr_assert(has_xattr(BUNDLE_XATTR_KEY), "%s", keys[i]);
		cr_assert_eq(fstat(fd, &st), 0);
		if (i == 0) {
			cr_assert_eq(stub_read(fd, &st, &out), 1);
			cr_assert_str_eq(out.key, keys[i]);
		}
	}
	/* and back to compact: the legacy xattrs go */
	cr_assert_eq(bundle_stub_attr_write(fd, KEY, 1), 0);
	cr_assert(!has_xattr(BUNDLE_XATTR_KEY));
	cr_assert(has_xattr(BUNDLE_XATTR_STUB));
}

Test(fs_stub, write_read_clear)
{
	struct stub in = { .key = KEY, .size = 4242 }, out;
	struct stat st;

	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &out), 0, "plain file taken as stub");
	cr_assert_eq(stub_write(fd, &in), 0, "stub_write: %s", strerror(errno));
	cr_assert_eq(stub_read(fd, &st, &out), 1);
	cr_assert_str_eq(out.key, KEY);
	cr_assert_eq(out.size, 4242);

	/* the reported size is the mail's, the blocks match it */
	cr_assert_eq(stub_fix_stat(fd, &st), 0);
	cr_assert_eq(st.st_size, 4242);
	cr_assert_eq(st.st_blocks, (4242 + 511) / 512);

	cr_assert_eq(stub_clear(fd), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &out), 0);
	cr_assert_eq(stub_clear(fd), 0, "clearing twice must succeed");
}

Test(fs_stub, non_empty_file_is_never_a_stub)
{
	struct stub in = { .key = KEY, .size = 10 }, out;
	struct stat st;

	cr_assert_eq(write(fd, "data", 4), 4);
	cr_assert_eq(stub_write(fd, &in), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(stub_read(fd, &st, &out), 0);
	cr_assert_eq(stub_fix_stat(fd, &st), 0);
	cr_assert_eq(st.st_size, 4);
}
