/* test_engine_pathopen.c: pathopen() (engine/pathopen.c) opens paths below
 * a directory and refuses a symlink anywhere on the way (ELOOP) and a way
 * out (EXDEV), with openat2() and with its component walk alike. */
#include "helper-objstore.h"
#include "pathopen.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;
static int dir_fd = -1;

/* a/b/c (dirs), a/f (file), l -> a, a/lb -> b, a/out -> / (symlinks) */
static void setup(void)
{
	char path[4096];

	dir = objtest_mkdtemp("pathopen");
	cr_assert_not_null(dir);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir_fd, 0);
	cr_assert_eq(mkdirat(dir_fd, "a", 0755), 0);
	cr_assert_eq(mkdirat(dir_fd, "a/b", 0755), 0);
	cr_assert_eq(mkdirat(dir_fd, "a/b/c", 0755), 0);
	snprintf(path, sizeof(path), "%s/a/f", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	cr_assert_eq(symlinkat("a", dir_fd, "l"), 0);
	cr_assert_eq(symlinkat("b", dir_fd, "a/lb"), 0);
	cr_assert_eq(symlinkat("/", dir_fd, "a/out"), 0);
}

static void teardown(void)
{
	if (dir_fd >= 0)
		close(dir_fd);
	objtest_rm_rf(dir);
	free(dir);
}

TestSuite(engine_pathopen, .init = setup, .fini = teardown);

struct path_case {
	char path[64];
	int flags;
	int err;	/* 0: opens */
	int alt_err;	/* also accepted (a last symlink with O_DIRECTORY:
			   the kernel says ENOTDIR) */
};

ParameterizedTestParameters(engine_pathopen, paths)
{
	static struct path_case cases[] = {
		{ "a/b/c", O_RDONLY | O_DIRECTORY, 0, 0 },
		{ "a//b/c/", O_RDONLY | O_DIRECTORY, 0, 0 },
		{ "a/f", O_RDONLY, 0, 0 },
		{ "", O_RDONLY | O_DIRECTORY, 0, 0 },
		{ ".", O_RDONLY | O_DIRECTORY, 0, 0 },
		{ "l", O_RDONLY | O_DIRECTORY, ELOOP, ENOTDIR },
		{ "l", O_RDONLY, ELOOP, 0 },
		{ "l/b", O_RDONLY | O_DIRECTORY, ELOOP, 0 },
		{ "a/lb/c", O_RDONLY | O_DIRECTORY, ELOOP, 0 },
		{ "a/out/etc", O_RDONLY | O_DIRECTORY, ELOOP, 0 },
		{ "a/b/../b", O_RDONLY | O_DIRECTORY, EXDEV, 0 },
		{ "..", O_RDONLY | O_DIRECTORY, EXDEV, 0 },
		{ "/etc", O_RDONLY | O_DIRECTORY, EXDEV, 0 },
		{ "a/f/x", O_RDONLY, ENOTDIR, 0 },
		{ "a/nothing/c", O_RDONLY | O_DIRECTORY, ENOENT, 0 },
	};
	return cr_make_param_array(struct path_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

static void check(int fd, const struct path_case *c, const char *how)
{
	if (c->err == 0) {
		cr_assert_geq(fd, 0, "%s(%s): %s", how, c->path,
			      strerror(errno));
		cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
		close(fd);
	} else {
		cr_assert_eq(fd, -1, "%s(%s) opened", how, c->path);
		cr_assert(errno == c->err ||
			  (c->alt_err != 0 && errno == c->alt_err),
			  "%s(%s): %s, not %s", how, c->path,
			  strerror(errno), strerror(c->err));
	}
}

ParameterizedTest(struct path_case *c, engine_pathopen, paths)
{
	check(pathopen(dir_fd, c->path, c->flags), c, "pathopen");
	/* the fallback walk agrees (it gets checked paths only) */
	if (c->err != EXDEV && c->path[0] != '\0')
		check(pathopen_walk(dir_fd, c->path, c->flags), c, "walk");
}
