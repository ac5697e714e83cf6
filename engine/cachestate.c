/* cachestate.c: unclean-shutdown detection and user dirty markers (see
 * cachestate.h). */
#include "cachestate.h"
#include "rmtree.h"
#include "mailpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "log.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_MAX 64

struct cachestate {
	char *dir;		/* CACHE_DIR/state */
	char *trash;		/* CACHE_DIR/trash */
	int dir_fd, dirty_fd, meta_fd;
	char boot_id[BOOT_ID_MAX];
	enum cachestate_last_run last_run;
	unsigned int discarded;
};

/* set_error()'s message, valid until the next one in this thread */
static __thread char error_buf[512];

static const char *set_error(const char *fmt, const char *arg)
{
	snprintf(error_buf, sizeof(error_buf), fmt, arg, strerror(errno));
	return error_buf;
}

static void read_boot_id(char buf[BOOT_ID_MAX])
{
	FILE *f = fopen(BOOT_ID_PATH, "r");

	strcpy(buf, "unknown");
	if (f == NULL)
		return;
	if (fgets(buf, BOOT_ID_MAX, f) == NULL)
		strcpy(buf, "unknown");
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static enum cachestate_last_run read_marker(struct cachestate *cs)
{
	char buf[BOOT_ID_MAX + 16], word[16], id[BOOT_ID_MAX];
	ssize_t len;
	int fd = openat(cs->dir_fd, "mounted", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return CACHESTATE_FIRST;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0)
		len = 0;
	buf[len] = '\0';
	if (sscanf(buf, "%15s %63s", word, id) != 2) {
		/* unreadable (torn by a crash): distrust everything */
		return CACHESTATE_CRASHED;
	}
	if (strcmp(word, "clean") == 0)
		return CACHESTATE_CLEAN;
	if (strcmp(id, cs->boot_id) == 0 && strcmp(id, "unknown") != 0)
		return CACHESTATE_KILLED;
	return CACHESTATE_CRASHED;
}

static int write_marker(struct cachestate *cs, const char *word)
{
	char buf[BOOT_ID_MAX + 16];
	int fd, len;

	len = snprintf(buf, sizeof(buf), "%s %s\n", word, cs->boot_id);
	fd = openat(cs->dir_fd, "mounted.tmp",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* this one small file is fsynced: it decides what is trusted */
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	if (renameat(cs->dir_fd, "mounted.tmp", cs->dir_fd, "mounted") < 0)
		return -1;
	return fsync(cs->dir_fd);
}

/* move meta/<user> away and delete it */
static void discard_user(const char *user, void *context)
{
	struct cachestate *cs = context;
	char path[PATH_MAX];
	const char *error;

	if (mailpath_user_name_check(user, &error) < 0)
		return;
	snprintf(path, sizeof(path), "%s/%s.%ld", cs->trash, user,
		 (long)getpid());
	if (renameat(cs->meta_fd, user, AT_FDCWD, path) < 0) {
		if (errno != ENOENT) {
			obox_log(OBOX_LOG_ERR, "discarding the tree of %s "
				 "failed: rename: %s\n", user,
				 strerror(errno));
		}
		return;
	}
	obox_log(OBOX_LOG_WARNING, "unclean shutdown: the local tree of %s "
		 "is discarded and will be loaded from the store\n", user);
	cs->discarded++;
	rmtree(path, true);
}

void cachestate_discard(struct cachestate *cs, const char *user)
{
	discard_user(user, cs);
}

/* call fn for each name in directory fd */
static int for_each_name(int fd, void (*fn)(const char *name, void *context),
			 void *context)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *d;
	DIR *dir;

	if (dfd < 0)
		return -1;
	dir = fdopendir(dfd);
	if (dir == NULL) {
		close(dfd);
		return -1;
	}
	/* names are collected first: fn changes the directory */
	char **names = NULL;
	size_t count = 0, alloc = 0;

	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			char **n = realloc(names, alloc * sizeof(*names));

			if (n == NULL)
				break;
			names = n;
		}
		names[count] = strdup(d->d_name);
		if (names[count] != NULL)
			count++;
	}
	closedir(dir);
	for (size_t i = 0; i < count; i++) {
		fn(names[i], context);
		free(names[i]);
	}
	free(names);
	return 0;
}

static void discard_dirty(const char *user, void *context)
{
	struct cachestate *cs = context;

	discard_user(user, cs);
	(void)unlinkat(cs->dirty_fd, user, 0);
}

static void clear_marker(const char *user, void *context)
{
	struct cachestate *cs = context;

	(void)unlinkat(cs->dirty_fd, user, 0);
}

static int mkdir_open(const char *path, const char **error_r)
{
	int fd;

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*error_r = set_error("mkdir(%s) failed: %s", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		*error_r = set_error("open(%s) failed: %s", path);
	return fd;
}

int cachestate_open(const char *cache_dir, int meta_fd,
		    struct cachestate **cs_r, const char **error_r)
{
	struct cachestate *cs = calloc(1, sizeof(*cs));
	char path[PATH_MAX];

	if (cs == NULL) {
		*error_r = "out of memory";
		return -1;
	}
	cs->dir_fd = cs->dirty_fd = -1;
	cs->meta_fd = meta_fd;
	if (asprintf(&cs->dir, "%s/state", cache_dir) < 0 ||
	    asprintf(&cs->trash, "%s/trash", cache_dir) < 0) {
		*error_r = "out of memory";
		goto fail;
	}
	cs->dir_fd = mkdir_open(cs->dir, error_r);
	if (cs->dir_fd < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/dirty", cs->dir);
	cs->dirty_fd = mkdir_open(path, error_r);
	if (cs->dirty_fd < 0)
		goto fail;
	int trash_fd = mkdir_open(cs->trash, error_r);

	if (trash_fd < 0)
		goto fail;
	close(trash_fd);
	/* what an earlier discard left behind */
	rmtree(cs->trash, false);
	(void)mkdir(cs->trash, 0700);

	read_boot_id(cs->boot_id);
	cs->last_run = read_marker(cs);
	switch (cs->last_run) {
	case CACHESTATE_FIRST:
	case CACHESTATE_CLEAN:
		break;
	case CACHESTATE_KILLED:
		obox_log(OBOX_LOG_WARNING, "the last run did not end "
			 "cleanly: distrusting the trees of users with "
			 "changes that were not uploaded\n");
		(void)for_each_name(cs->dirty_fd, discard_dirty, cs);
		break;
	case CACHESTATE_CRASHED:
		obox_log(OBOX_LOG_WARNING, "the machine went down while "
			 "mounted: distrusting every local tree\n");
		(void)for_each_name(cs->meta_fd, discard_user, cs);
		(void)for_each_name(cs->dirty_fd, clear_marker, cs);
		break;
	}
	if (write_marker(cs, "mounted") < 0) {
		*error_r = set_error("writing %s/mounted failed: %s", cs->dir);
		goto fail;
	}
	*cs_r = cs;
	return 0;
fail:
	cachestate_close(&cs, false);
	return -1;
}

void cachestate_close(struct cachestate **_cs, bool clean)
{
	struct cachestate *cs = *_cs;

	if (cs == NULL)
		return;
	*_cs = NULL;
	if (clean && cs->dir_fd >= 0) {
		if (syncfs(cs->dir_fd) < 0 || write_marker(cs, "clean") < 0) {
			obox_log(OBOX_LOG_ERR, "writing %s/mounted failed: "
				 "%s\n", cs->dir, strerror(errno));
		}
	}
	if (cs->dir_fd >= 0)
		close(cs->dir_fd);
	if (cs->dirty_fd >= 0)
		close(cs->dirty_fd);
	free(cs->dir);
	free(cs->trash);
	free(cs);
}

enum cachestate_last_run cachestate_last_run(struct cachestate *cs)
{
	return cs->last_run;
}

unsigned int cachestate_discarded(struct cachestate *cs)
{
	return cs->discarded;
}

int cachestate_mark_dirty(struct cachestate *cs, const char *user)
{
	int fd = openat(cs->dirty_fd, user,
			O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		obox_log(OBOX_LOG_ERR, "creating the dirty marker of %s "
			 "failed: %s\n", user, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

int cachestate_clear_dirty(struct cachestate *cs, const char *user)
{
	if (unlinkat(cs->dirty_fd, user, 0) < 0 && errno != ENOENT) {
		obox_log(OBOX_LOG_ERR, "removing the dirty marker of %s "
			 "failed: %s\n", user, strerror(errno));
		return -1;
	}
	return 0;
}

void cachestate_foreach_dirty(struct cachestate *cs,
			      void (*fn)(const char *user, void *context),
			      void *context)
{
	(void)for_each_name(cs->dirty_fd, fn, context);
}

const char *cachestate_path(struct cachestate *cs, const char *name,
			    char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", cs->dir, name);
	return buf;
}

uint64_t cachestate_clock_read(struct cachestate *cs)
{
	char path[PATH_MAX], buf[32], *end;
	unsigned long long us;
	ssize_t len;
	int fd;

	cachestate_path(cs, "ids-clock", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	errno = 0;
	us = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0'))
		return 0;
	return us;
}

void cachestate_clock_save(struct cachestate *cs, uint64_t us)
{
	char path[PATH_MAX], tmp[PATH_MAX], buf[32];
	int fd, len;

	cachestate_path(cs, "ids-clock", path, sizeof(path));
	cachestate_path(cs, "ids-clock.tmp", tmp, sizeof(tmp));
	len = snprintf(buf, sizeof(buf), "%llu\n", (unsigned long long)us);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, (size_t)len) != len ||
	    close(fd) < 0 || rename(tmp, path) < 0) {
		obox_log(OBOX_LOG_WARNING, "saving %s failed: %s\n", path,
			 strerror(errno));
	}
}
