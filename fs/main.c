/* main.c: the oboxfs daemon: options, startup checks, mount, daemonize,
 * the FUSE session loop and clean shutdown.
 *
 *   oboxfs [-f] [-d] [-o OPTIONS] STORE MOUNTPOINT
 *
 * Everything that can fail (options, the cache directory, the store) is
 * checked before anything is mounted: a failure is one line on stderr and
 * exit status 1.  Then the daemon mounts, daemonizes unless -f/-d (logging to
 * syslog from then on) and serves until unmounted or SIGTERM/SIGINT/SIGHUP,
 * letting in-flight requests finish.
 */
#include "fs.h"
#include "rmtree.h"
#include "cachestate.h"
#include "upload.h"
#include "uploader.h"
#include "users.h"
#include "mailcache.h"
#include "mailpath.h"
#include "mailstore.h"
#include "metacache.h"
#include "objgc.h"
#include "objstore.h"
#include "options.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

/* metadata and data may stay cached in the kernel for this long: every
   change goes through this one mount */
#define OBOXFS_KERNEL_TIMEOUT 86400.0
/* libfuse's FUSE_LOOP_MT_MAX_THREADS */
#define OBOXFS_MAX_THREADS 100000U
/* worker threads unless -o max_threads is given: libfuse's default of 10
   is too few when workers wait for the store (PUTs of mails, fetches) */
#define OBOXFS_DEFAULT_MAX_THREADS 64U

/* was -o name=... given?  (fuse_parse_cmdline() fills in libfuse's
   default, so it cannot tell.) */
static bool fuse_opt_given(const struct fuse_args *args, const char *name)
{
	size_t len = strlen(name);

	for (int i = 1; i < args->argc; i++) {
		const char *p = args->argv[i];

		while ((p = strstr(p, name)) != NULL) {
			if ((p == args->argv[i] || p[-1] == ',' ||
			     (p - args->argv[i] == 2 &&
			      strncmp(args->argv[i], "-o", 2) == 0)) &&
			    p[len] == '=')
				return true;
			p += len;
		}
	}
	return false;
}

static bool log_syslog = false;
static bool log_debug = false;

/* libfuse may log one line in several calls: collect a line per thread,
   then write it to stderr ("oboxfs: " prefixed) or syslog */
static void log_func(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char line[1024];
	static __thread size_t len;
	int ret;

	if (level == FUSE_LOG_DEBUG && !log_debug)
		return;
	ret = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (ret < 0)
		return;
	len += (size_t)ret;
	if (len >= sizeof(line) - 1)
		len = sizeof(line) - 1;
	else if (len == 0 || line[len - 1] != '\n')
		return;
	if (line[len - 1] == '\n')
		line[len - 1] = '\0';
	else
		line[len] = '\0';
	len = 0;
	if (log_syslog)
		syslog((int)level, "%s", line);
	else
		fprintf(stderr, "oboxfs: %s\n", line);
}

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o OPTIONS] STORE MOUNTPOINT\n"
	       "  STORE: file:///DIR or s3://BUCKET[/PREFIX]\n\n", prog);
	oboxfs_options_help();
	printf("\nFUSE options:\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* dir exists (created with mode if needed) and a file can be created in
   it */
static int check_writable_dir(const char *dir, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir_p(dir, mode) < 0) {
		fprintf(stderr, "oboxfs: cache directory: mkdir(%s) failed: %s\n",
			dir, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/.oboxfs-write-test.%d", dir,
		 (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "oboxfs: cache directory %s is not writable: %s\n",
			dir, strerror(errno));
		return -1;
	}
	close(fd);
	unlink(path);
	return 0;
}

/* Check and lock the cache dir; set up fs->meta_*.  Returns the lock fd. */
static int cache_dir_open(const char *cache_dir, struct oboxfs *fs)
{
	char path[PATH_MAX];
	int lock_fd;

	if (check_writable_dir(cache_dir, 0700) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/oboxfs.lock", cache_dir);
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		fprintf(stderr, "oboxfs: open(%s) failed: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "oboxfs: cache directory %s is in use by "
			"another oboxfs\n", cache_dir);
		close(lock_fd);
		return -1;
	}
	/* meta/ is the mount's root directory: its mode is what users see
	   (cache_dir itself stays 0700) */
	snprintf(path, sizeof(path), "%s/meta", cache_dir);
	if (check_writable_dir(path, 0755) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/mail", cache_dir);
	if (check_writable_dir(path, 0700) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/staging", cache_dir);
	if (check_writable_dir(path, 0700) < 0)
		goto fail;
	fs->staging_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->staging_fd < 0) {
		fprintf(stderr, "oboxfs: open(%s) failed: %s\n", path,
			strerror(errno));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/meta", cache_dir);
	fs->meta_path = realpath(path, NULL);
	if (fs->meta_path == NULL) {
		fprintf(stderr, "oboxfs: realpath(%s) failed: %s\n", path,
			strerror(errno));
		goto fail;
	}
	fs->meta_path_len = strlen(fs->meta_path);
	fs->meta_fd = open(fs->meta_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->meta_fd < 0) {
		fprintf(stderr, "oboxfs: open(%s) failed: %s\n", fs->meta_path,
			strerror(errno));
		goto fail;
	}
	return lock_fd;
fail:
	close(lock_fd);
	return -1;
}

/* Every inode the kernel knows holds an O_PATH fd of its metacache file:
   the soft open-files limit (1024 under systemd) would stop the daemon at
   as many files.  Raise it to the hard limit (LimitNOFILE= raises that).
   And few malloc arenas: 64 worker threads each with their own would
   keep the memory of freed upload snapshots. */
static void raise_limits(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	(void)mallopt(M_ARENA_MAX, 4);
}

/* SIGUSR1: upload every user's changes now (the uploader's pipe) */
static struct uploader *signal_uploader;

static void upload_signal(int signo)
{
	(void)signo;
	if (signal_uploader != NULL)
		uploader_request_all(signal_uploader);
}

/* CACHE_DIR/load: users being loaded; what a crash left is removed */
static int load_dir_open(struct oboxfs *fs, const char *cache_dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/load", cache_dir);
	rmtree(path, true);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "oboxfs: mkdir(%s) failed: %s\n", path,
			strerror(errno));
		return -1;
	}
	fs->load_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->load_fd < 0) {
		fprintf(stderr, "oboxfs: open(%s) failed: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* a user the last run could not upload: dirty again */
static void mark_left_dirty(const char *name, void *context)
{
	struct oboxfs *fs = context;
	const char *error;
	struct ouser *user;

	if (mailpath_user_name_check(name, &error) < 0)
		return;
	user = users_get(fs->users, name);
	if (user != NULL) {
		atomic_store(&user->gen, 1);
		atomic_store(&user->marked, true);
	}
}

/* users already in the metacache (from the last run) are known, so the
   metacache counts them and can evict them */
static void register_cached_users(struct oboxfs *fs)
{
	int fd = openat(fs->meta_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *error;
	struct dirent *d;
	DIR *dir;

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(dir)) != NULL) {
		if (mailpath_user_name_check(d->d_name, &error) == 0)
			(void)users_get(fs->users, d->d_name);
	}
	closedir(dir);
}

/* the metacache moved user's tree away: the kernel must look it up again */
static void evicted_user(const char *user, void *context)
{
	struct oboxfs *fs = context;

	if (fs->se != NULL) {
		(void)fuse_lowlevel_notify_inval_entry(fs->se, FUSE_ROOT_ID,
						       user, strlen(user));
	}
}

/* the uploader changed a directory of user's tree (a split-brain merge):
   the kernel drops its cached attributes and entries */
static void dir_changed(struct ouser *user, const char *path, void *context)
{
	struct oboxfs *fs = context;
	char rel[PATH_MAX];
	struct oinode *inode;
	struct stat st;

	snprintf(rel, sizeof(rel), "%s/%s", user->name, path);
	if (fs->se == NULL ||
	    fstatat(fs->meta_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	inode = inode_find(fs, st.st_dev, st.st_ino);
	if (inode != NULL) {
		(void)fuse_lowlevel_notify_inval_inode(fs->se,
						       (uintptr_t)inode, 0, 0);
	}
}

static int fs_init(struct oboxfs *fs, const struct oboxfs_options *opts)
{
	struct objstore_settings set;
	char path[PATH_MAX];
	const char *error;

	oboxfs_options_to_settings(opts, &set);
	if (objstore_init(opts->store_url, &set, &fs->store, &error) < 0) {
		fprintf(stderr, "oboxfs: %s: %s\n", opts->store_url, error);
		return -1;
	}
	if (cachestate_open(opts->cache_dir, fs->meta_fd, &fs->cs,
			    &error) < 0) {
		fprintf(stderr, "oboxfs: cache state: %s\n", error);
		return -1;
	}
	if (load_dir_open(fs, opts->cache_dir) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/mail", opts->cache_dir);
	if (mailcache_init(path, opts->cache_size, fs->store, &fs->mc,
			   &error) < 0) {
		fprintf(stderr, "oboxfs: mail cache: %s\n", error);
		return -1;
	}
	fs->gc = objgc_init(fs->store, fs->mc,
			    cachestate_path(fs->cs, "garbage"));
	if (fs->gc != NULL)
		fs->ms = mailstore_init(fs->store, fs->mc, fs->gc, fs->meta_fd);
	fs->users = users_init(fs->cs);
	fs->upctx = calloc(1, sizeof(*fs->upctx));
	if (fs->ms == NULL || fs->users == NULL || fs->upctx == NULL ||
	    inode_table_init(fs) < 0) {
		fprintf(stderr, "oboxfs: out of memory\n");
		return -1;
	}
	if (upload_ctx_init(fs->upctx, fs->store, fs->gc, fs->cs,
			    fs->meta_fd) < 0) {
		fprintf(stderr, "oboxfs: %s: %s\n",
			cachestate_path(fs->cs, "bundles"), strerror(errno));
		return -1;
	}
	fs->upctx->split_check_interval = opts->split_check_interval;
	fs->upctx->dir_changed = dir_changed;
	fs->upctx->dir_changed_context = fs;
	cachestate_foreach_dirty(fs->cs, mark_left_dirty, fs);
	fs->upload_deliveries = opts->upload_deliveries;
	mailstore_set_delivery_callback(fs->ms, fs_delivery_noted, fs);
	register_cached_users(fs);
	snprintf(path, sizeof(path), "%s/trash", opts->cache_dir);
	fs->metacache = metacache_init(fs->meta_fd, path, opts->metacache_size,
				       opts->metacache_idle, evicted_user, fs);
	if (fs->metacache == NULL) {
		fprintf(stderr, "oboxfs: out of memory\n");
		return -1;
	}
	pthread_mutex_init(&fs->ns_lock, NULL);
	fs->root.fd = fs->meta_fd;
	fs->root.nlookup = 2;
	fs->stats.fd = -1;
	fs->stats.is_stats = true;
	fs->timeout = OBOXFS_KERNEL_TIMEOUT;
	fs_staging_cleanup(fs);
	return 0;
}

static void fs_deinit(struct oboxfs *fs)
{
	/* the last upload (unmount), then nothing may touch the users */
	signal_uploader = NULL;
	uploader_stop(&fs->uploader, true);
	metacache_deinit(&fs->metacache);
	cachestate_close(&fs->cs, true);
	users_deinit(&fs->users);
	if (fs->upctx != NULL) {
		upload_ctx_deinit(fs->upctx);
		free(fs->upctx);
	}
	if (fs->load_fd >= 0)
		close(fs->load_fd);
	if (fs->buckets != NULL) {
		inode_table_deinit(fs);
		pthread_mutex_destroy(&fs->ns_lock);
	}
	mailstore_deinit(&fs->ms);
	objgc_deinit(&fs->gc);
	mailcache_deinit(&fs->mc);
	if (fs->store != NULL)
		objstore_deinit(&fs->store);
	if (fs->meta_fd >= 0)
		close(fs->meta_fd);
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
	free(fs->meta_path);
}

/* FUSE options every oboxfs mount gets */
static int add_fixed_options(struct fuse_args *args, const char *store_url)
{
	char *fsname;
	int ret;

	/* permissions are checked by the kernel on the metacache modes;
	   the daemon (root) does not check them itself */
	if (fuse_opt_add_arg(args, "-odefault_permissions") < 0 ||
	    fuse_opt_add_arg(args, "-osubtype=oboxfs") < 0)
		return -1;
	if (strpbrk(store_url, ",\\") != NULL)
		return 0;
	if (asprintf(&fsname, "-ofsname=%s", store_url) < 0)
		return -1;
	ret = fuse_opt_add_arg(args, fsname);
	free(fsname);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd;
	struct oboxfs_options opts;
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop_config;
	struct oboxfs fs = { .meta_fd = -1, .staging_fd = -1, .load_fd = -1 };
	const char *error;
	int ret, exit_code = 1, lock_fd = -1;
	bool mounted = false, signals = false, max_threads_given;

	/* modes from the kernel already have the caller's umask applied */
	umask(0);
	raise_limits();
	memset(&cmd, 0, sizeof(cmd));
	fuse_set_log_func(log_func);

	if (oboxfs_options_parse(&args, &opts, &error) < 0) {
		fprintf(stderr, "oboxfs: %s\n", error);
		goto out;
	}
	max_threads_given = fuse_opt_given(&args, "max_threads");
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	if (!max_threads_given)
		cmd.max_threads = OBOXFS_DEFAULT_MAX_THREADS;
	if (cmd.show_help) {
		usage(argv[0]);
		exit_code = 0;
		goto out;
	}
	if (cmd.show_version) {
		printf("oboxfs %s, FUSE library %s\n", OBOXFS_VERSION,
		       fuse_pkgversion());
		exit_code = 0;
		goto out;
	}
	if (opts.store_url == NULL || cmd.mountpoint == NULL) {
		fprintf(stderr, "oboxfs: usage: %s [-f] [-d] [-o OPTIONS] "
			"STORE MOUNTPOINT\n", argv[0]);
		goto out;
	}
	log_debug = cmd.debug != 0;
	fs.debug = log_debug;
	if (add_fixed_options(&args, opts.store_url) < 0) {
		fprintf(stderr, "oboxfs: out of memory\n");
		goto out;
	}
	/* checks the FUSE options; mounts nothing yet */
	se = fuse_session_new(&args, &oboxfs_ops, sizeof(oboxfs_ops), &fs);
	if (se == NULL)
		goto out;

	fs.se = se;
	lock_fd = cache_dir_open(opts.cache_dir, &fs);
	if (lock_fd < 0 || fs_init(&fs, &opts) < 0)
		goto out;

	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	signals = true;
	struct sigaction sa = { .sa_handler = upload_signal };

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		goto out;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out;
	mounted = true;

	if (!cmd.foreground) {
		openlog("oboxfs", LOG_PID, LOG_DAEMON);
		if (fuse_daemonize(0) != 0)
			goto out;
		log_syslog = true;
	}
	/* threads start after fuse_daemonize(): a fork keeps only the
	   calling thread */
	if (uploader_start(fs.upctx, fs.users, opts.upload_interval,
			   fs.metacache, &fs.uploader, &error) < 0) {
		fuse_log(FUSE_LOG_ERR, "%s\n", error);
		goto out;
	}
	signal_uploader = fs.uploader;
	fuse_log(FUSE_LOG_INFO, "%s mounted on %s (cache %s)\n",
		 opts.store_url, cmd.mountpoint, opts.cache_dir);

	loop_config = fuse_loop_cfg_create();
	if (loop_config == NULL) {
		fuse_log(FUSE_LOG_ERR, "out of memory\n");
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(loop_config, (unsigned int)cmd.clone_fd);
	/* libfuse's "unset" is UINT_MAX, which its setter logs as invalid */
	if (cmd.max_idle_threads <= OBOXFS_MAX_THREADS)
		fuse_loop_cfg_set_idle_threads(loop_config, cmd.max_idle_threads);
	if (cmd.max_threads > 0 && cmd.max_threads <= OBOXFS_MAX_THREADS)
		fuse_loop_cfg_set_max_threads(loop_config, cmd.max_threads);
	ret = fuse_session_loop_mt(se, loop_config);
	fuse_loop_cfg_destroy(loop_config);
	/* > 0: ended by a signal; 0: unmounted; < 0: error */
	exit_code = ret < 0 ? 1 : 0;
	fuse_log(FUSE_LOG_INFO, "%s unmounting from %s\n", opts.store_url,
		 cmd.mountpoint);
out:
	if (mounted)
		fuse_session_unmount(se);
	/* the last upload runs after the unmount: the process exits when
	   the index is stored */
	signal_uploader = NULL;
	uploader_stop(&fs.uploader, true);
	fs.se = NULL;
	if (signals)
		fuse_remove_signal_handlers(se);
	if (se != NULL)
		fuse_session_destroy(se);
	fs_deinit(&fs);
	if (lock_fd >= 0)
		close(lock_fd);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	oboxfs_options_free(&opts);
	if (log_syslog)
		closelog();
	return exit_code;
}
