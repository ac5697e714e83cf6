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
#include "log.h"
#include "options.h"
#include "reqtime.h"

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

/* the most open files a daemon asks for (as root, when the hard limit is
   lower) */
#define OBOXFS_NOFILE_WANT (1U << 20)

/* The kernel's per-process cap on open files (fs.nr_open), or 0. */
static rlim_t nr_open(void)
{
	unsigned long long value = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f != NULL) {
		if (fscanf(f, "%llu", &value) != 1)
			value = 0;
		fclose(f);
	}
	return (rlim_t)value;
}

/* Open files: only directories the kernel knows, open files and the
   store's connections hold descriptors (fs/inode.c), but a backend with
   thousands of users knows many directories: the soft limit (1024 under
   systemd) is raised to the hard one, and as root (CAP_SYS_RESOURCE) the
   hard one to OBOXFS_NOFILE_WANT (at most fs.nr_open).  And few malloc
   arenas: 64 worker threads each with their own would keep the memory of
   freed upload snapshots. */
static void raise_limits(void)
{
	rlim_t want = OBOXFS_NOFILE_WANT, cap = nr_open();
	struct rlimit rl;

	if (cap > 0 && want > cap)
		want = cap;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
			struct rlimit raised = { want, want };

			/* refused without CAP_SYS_RESOURCE: keep the hard
			   limit */
			if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
				rl = raised;
		}
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	(void)mallopt(M_ARENA_MAX, 4);
}

/* SIGUSR1: upload every user's changes now (the uploader's pipe) */
static struct obox *signal_obox;

static void upload_signal(int signo)
{
	(void)signo;
	if (signal_obox != NULL)
		obox_request_upload(signal_obox);
}

/* the engine's log lines go where libfuse's go */
static void engine_log(enum obox_log_level level, const char *fmt,
		       va_list args)
{
	log_func((enum fuse_log_level)level, fmt, args);
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

/* the engine changed a directory's entries or a file's contents (a
   split-brain merge): the kernel drops its cached attributes, and the
   directory's entries or the file's pages */
static void dir_changed(const char *path, void *context)
{
	struct oboxfs *fs = context;
	struct oinode *inode;
	struct stat st;

	if (fs->se == NULL ||
	    fstatat(fs->meta_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	inode = inode_find(fs, st.st_dev, st.st_ino);
	if (inode != NULL) {
		(void)fuse_lowlevel_notify_inval_inode(fs->se,
						       (uintptr_t)inode, 0, 0);
	}
}

/* the engine changed the name name in the directory dir_path behind the
   kernel (a split-brain merge): the kernel drops its entry, from
   kinval.c's thread (the engine may hold locks a request waits for) */
static void name_changed(const char *dir_path, const char *name,
			 void *context)
{
	struct oboxfs *fs = context;
	struct oinode *dir;
	struct stat st;

	if (fs->se == NULL ||
	    fstatat(fs->meta_fd, dir_path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	/* a directory the kernel does not know has no entries in it */
	dir = inode_find_pinned(fs, st.st_dev, st.st_ino);
	if (dir != NULL) {
		kinval_entry(fs, dir, name);
		inode_name_unpin(fs, dir);
	}
}

/* obox_file_append_cb: mountappend.c */
static int file_append(const char *path, const void *data, size_t len,
		       void *context)
{
	return mount_append(context, path, data, len);
}

static int fs_init(struct oboxfs *fs, const struct oboxfs_options *opts)
{
	struct obox_settings set = {
		.store_url = opts->store_url,
		.cache_dir = opts->cache_dir,
		.cache_size = opts->cache_size,
		.metacache_size = opts->metacache_size,
		.metacache_idle = opts->metacache_idle,
		.upload_interval = opts->upload_interval,
		.upload_deliveries = opts->upload_deliveries,
		.split_check_interval = opts->split_check_interval,
		.delete_grace = opts->delete_grace,
		.root_uid_set = opts->root_uid_set,
		.root_gid_set = opts->root_gid_set,
		.root_mode_set = opts->root_mode_set,
		.root_uid = opts->root_uid,
		.root_gid = opts->root_gid,
		.root_mode = opts->root_mode,
		.missing_mails = opts->missing_mails_drop ?
			OBOX_MISSING_MAILS_DROP : OBOX_MISSING_MAILS_EIO,
		.store_on_fsync = opts->store_on_fsync,
		.user_evicted = evicted_user,
		.dir_changed = dir_changed,
		.name_changed = name_changed,
		.file_append = file_append,
		.context = fs,
	};
	const char *error;

	oboxfs_options_to_settings(opts, &set.store);
	if (obox_init(&set, &fs->obox, &error) < 0) {
		fprintf(stderr, "oboxfs: %s\n", error);
		return -1;
	}
	fs->meta_fd = obox_meta_fd(fs->obox);
	fs->meta_path = obox_meta_path(fs->obox);
	fs->meta_path_len = strlen(fs->meta_path);
	fs->mount_fd = open(fs->meta_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->mount_fd < 0) {
		fprintf(stderr, "oboxfs: open(%s) failed: %s\n", fs->meta_path,
			strerror(errno));
		return -1;
	}
	if (inode_table_init(fs) < 0) {
		fprintf(stderr, "oboxfs: out of memory\n");
		return -1;
	}
	fs->root.fd = fs->meta_fd;
	fs->root.is_dir = true;
	fs->root.nlookup = 2;
	fs->stats.fd = -1;
	fs->stats.is_stats = true;
	fs->timeout = OBOXFS_KERNEL_TIMEOUT;
	return 0;
}

static void fs_deinit(struct oboxfs *fs)
{
	/* the last upload (unmount), then nothing may touch the users */
	signal_obox = NULL;
	obox_deinit(&fs->obox);
	if (fs->buckets != NULL)
		inode_table_deinit(fs);
	if (fs->mount_fd >= 0)
		close(fs->mount_fd);
}

/* FUSE options every oboxfs mount gets */
static int add_fixed_options(struct fuse_args *args, const char *store_url)
{
	char *fsname;
	int ret;

	/* permissions are checked by the kernel on the metacache modes;
	   the daemon (root) does not check them itself */
	/* device nodes and set-user-ID files of the index tree are inert
	   entries (dev and suid are refused by oboxfs_options_parse()) */
	if (fuse_opt_add_arg(args, "-odefault_permissions") < 0 ||
	    fuse_opt_add_arg(args, "-onodev,nosuid") < 0 ||
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
	struct fuse_lowlevel_ops ops;
	struct fuse_loop_config *loop_config;
	struct oboxfs fs = { .meta_fd = -1, .mount_fd = -1 };
	const char *error;
	int ret, exit_code = 1;
	bool mounted = false, signals = false, max_threads_given;

	/* modes from the kernel already have the caller's umask applied */
	umask(0);
	raise_limits();
	memset(&cmd, 0, sizeof(cmd));
	fuse_set_log_func(log_func);
	obox_log_set_sink(engine_log);

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
	reqtime_ops_get(&ops);
	se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	if (se == NULL)
		goto out;

	fs.se = se;
	fs.mountpoint = cmd.mountpoint;
	if (fs_init(&fs, &opts) < 0)
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
	if (kinval_start(&fs) < 0) {
		fuse_log(FUSE_LOG_ERR, "starting a thread failed: %s\n",
			 strerror(errno));
		goto out;
	}
	if (obox_start(fs.obox, &error) < 0) {
		fuse_log(FUSE_LOG_ERR, "%s\n", error);
		goto out;
	}
	signal_obox = fs.obox;
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
	/* before the unmount closes the session's fd */
	kinval_stop(&fs);
	if (mounted)
		fuse_session_unmount(se);
	/* the last upload runs after the unmount: the process exits when
	   the index is stored */
	signal_obox = NULL;
	kernel_size_stop();
	if (fs.obox != NULL)
		obox_stop(fs.obox);
	fs.se = NULL;
	if (signals)
		fuse_remove_signal_handlers(se);
	if (se != NULL)
		fuse_session_destroy(se);
	fs_deinit(&fs);
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	oboxfs_options_free(&opts);
	if (log_syslog)
		closelog();
	return exit_code;
}
