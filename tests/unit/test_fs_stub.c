/* test_fs_stub.c: mail stubs: validation of the xattr values read back,
 * writing/reading/clearing them, and the size a stub reports. */
#include "helper-objstore.h"
#include "stub.h"

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

/* arrays, not pointers: criterion runs each case in a new process */
struct parse_case {
	char key[160];
	char size[32];
	bool ok;
	uint64_t value;
};

ParameterizedTestParameters(fs_stub, parse)
{
	static struct parse_case cases[] = {
		{ KEY, "0", true, 0 },
		{ KEY, "12345", true, 12345 },
		{ KEY, "9223372036854775807", true, 9223372036854775807ULL },
		{ KEY, "9223372036854775808", false, 0 },
		{ KEY, "99999999999999999999", false, 0 },
		{ KEY, "", false, 0 },
		{ KEY, "-1", false, 0 },
		{ KEY, "12a", false, 0 },
		{ KEY, " 1", false, 0 },
		{ "", "1", false, 0 },
		{ "b4/c9a/u/mailboxes/g/not-an-oid", "1", false, 0 },
		{ "../d88ff1001d4bf753a1b800001accfe22", "1", false, 0 },
		{ "a//d88ff1001d4bf753a1b800001accfe22", "1", false, 0 },
		{ "d88ff1001d4bf753a1b800001accfe22", "1", true, 1 },
	};
	return cr_make_param_array(struct parse_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct parse_case *c, fs_stub, parse)
{
	struct stub stub;
	int ret = stub_parse(c->key, strlen(c->key), c->size, strlen(c->size),
			     &stub);

	if (!c->ok) {
		cr_assert_eq(ret, -1, "%s/%s accepted", c->key, c->size);
		return;
	}
	cr_assert_eq(ret, 0, "%s/%s refused", c->key, c->size);
	cr_assert_str_eq(stub.key, c->key);
	cr_assert_eq(stub.size, c->value);
}

Test(fs_stub, parse_rejects_nul_in_key)
{
	struct stub stub;
	const char key[] = "abc\0d88ff1001d4bf753a1b800001accfe22";

	cr_assert_eq(stub_parse(key, sizeof(key) - 1, "1", 1, &stub), -1);
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

Test(fs_stub, damaged_stub_is_eio)
{
	struct stat st;
	struct stub out;

	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_KEY, KEY, strlen(KEY), 0), 0);
	cr_assert_eq(fd_setxattr(fd, BUNDLE_XATTR_SIZE, "x1", 2, 0), 0);
	cr_assert_eq(fstat(fd, &st), 0);
	errno = 0;
	cr_assert_eq(stub_read(fd, &st, &out), -1);
	cr_assert_eq(errno, EIO);

	/* a key without a size is damaged too */
	cr_assert_eq(fd_removexattr(fd, BUNDLE_XATTR_SIZE), 0);
	errno = 0;
	cr_assert_eq(stub_read(fd, &st, &out), -1);
	cr_assert_eq(errno, EIO);
}
