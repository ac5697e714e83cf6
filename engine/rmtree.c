/* rmtree.c: rm -rf for the cache directory (see rmtree.h). */
#include "rmtree.h"

#include <errno.h>
#include <ftw.h>
#include "log.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread bool rm_quiet;

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && !rm_quiet &&
	    errno != ENOENT) {
		obox_log(OBOX_LOG_WARNING, "removing %s failed: %s\n", path,
			 strerror(errno));
	}
	return 0;
}

void rmtree(const char *path, bool quiet)
{
	rm_quiet = quiet;
	(void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void rmtree_at(int dir_fd, const char *name, bool quiet)
{
	char proc[PATH_MAX], real[PATH_MAX];

	/* nftw() wants a path: the directory fd's */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d/%s", dir_fd, name);
	if (realpath(proc, real) != NULL)
		rmtree(real, quiet);
}
