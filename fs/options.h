/* options.h: oboxfs's own mount options (fuse_opt table) and their checks.
 *
 *   cache_dir=DIR          cache directory (default /var/cache/oboxfs)
 *   cache_size=SIZE        mail cache cap, K/M/G/T/P units (default 1G)
 *   metacache_size=SIZE    metacache (index trees) cap (default 1G)
 *   metacache_idle=SECS    idle time before a user may be evicted (60)
 *   endpoint=URL           s3 endpoint
 *   region=NAME            s3 region
 *   addressing=path|virtual|auto   s3 addressing style (default auto)
 *   credentials=FILE       s3 credentials file
 *   tls_insecure           do not verify TLS certificates
 *   ca_file=FILE           CA certificates to trust (PEM)
 *   connect_timeout=SECS   s3 connect timeout (default 5)
 *   request_timeout=SECS   s3 request timeout (default 60)
 *   retry_timeout=SECS     s3 retry budget of one operation (default 60)
 *   upload_interval=SECS   index upload interval (default 300)
 *   upload_deliveries=N    index upload after N deliveries (default 10)
 *   split_check_interval=SECS  split-brain check of a root (3600, 0 never)
 *   delete_grace=SECS      keep condemned mail objects this long (default
 *                          split_check_interval + 300)
 *   missing_mails=eio|drop a mail whose object is missing: EIO or removed
 *   store_on_fsync=yes|no  store a maildir tmp/ file at its fsync, not at
 *                          its rename into new/ or cur/ (default yes)
 *   root_uid=N, root_gid=N, root_mode=OCTAL  the mount root's owner/mode
 *   no_fsync               posix store: no fsync of objects (tests)
 *   fault=SPEC             fault injection (tests)
 * The first non-option argument is the STORE URL; all other arguments (the
 * mount point, -f, -d, FUSE's own -o options) are left in args for
 * fuse_parse_cmdline() and fuse_session_new().  Options that mount(8) and
 * fstab use but that mean nothing to FUSE (_netdev, nofail, auto, noauto,
 * defaults, user, users, nouser) are dropped.  Every mount is nodev,nosuid
 * (fs/main.c adds them: device nodes and set-user-ID files of the index
 * tree stay inert); an explicit dev or suid is refused.
 */
#ifndef OBOXFS_OPTIONS_H
#define OBOXFS_OPTIONS_H

#include "objstore.h"

#include <fuse_opt.h>
#include <stdbool.h>
#include <stdint.h>

#define OBOXFS_DEFAULT_CACHE_DIR "/var/cache/oboxfs"
#define OBOXFS_DEFAULT_CACHE_SIZE (1024ULL * 1024 * 1024)
#define OBOXFS_DEFAULT_METACACHE_SIZE (1024ULL * 1024 * 1024)
#define OBOXFS_DEFAULT_METACACHE_IDLE 60
#define OBOXFS_MIN_METACACHE_IDLE 15
#define OBOXFS_DEFAULT_UPLOAD_INTERVAL 300
#define OBOXFS_DEFAULT_UPLOAD_DELIVERIES 10
#define OBOXFS_DEFAULT_SPLIT_CHECK_INTERVAL 3600
/* delete_grace exceeds split_check_interval by this much by default */
#define OBOXFS_DELETE_GRACE_MARGIN 300

struct oboxfs_options {
	char *store_url;
	char *cache_dir;
	char *cache_size_str;
	char *metacache_size_str;
	char *metacache_idle_str;
	char *endpoint;
	char *region;
	char *addressing_str;
	char *credentials;
	char *ca_file;
	char *connect_timeout_str;
	char *request_timeout_str;
	char *retry_timeout_str;
	char *fault;
	char *upload_interval_str;
	char *upload_deliveries_str;
	char *split_check_interval_str;
	char *delete_grace_str;
	char *missing_mails_str;
	char *store_on_fsync_str;
	char *root_uid_str, *root_gid_str, *root_mode_str;
	int tls_insecure;
	int no_fsync;
	int extra_args;		/* non-option arguments after MOUNTPOINT */
	int refused_key;	/* an option given that is refused (dev, suid) */
	int nonopt_count;

	/* set by oboxfs_options_parse() */
	enum objstore_addressing addressing;
	uint64_t cache_size;	/* mail cache cap in bytes */
	uint64_t metacache_size;	/* metacache cap in bytes */
	unsigned int metacache_idle;	/* seconds */
	unsigned int upload_interval;
	unsigned int upload_deliveries;
	unsigned int split_check_interval;
	unsigned int delete_grace;	/* seconds */
	bool missing_mails_drop;
	bool store_on_fsync;
	/* the mount root's owner and mode, if given */
	bool root_uid_set, root_gid_set, root_mode_set;
	uint32_t root_uid, root_gid, root_mode;
	/* seconds, 0: the store's default */
	unsigned int connect_timeout, request_timeout, retry_timeout;
};

/* Parse and check oboxfs's options out of args.  Returns 0, or -1 with a
   one-line reason in *error_r.  Free with oboxfs_options_free(). */
int oboxfs_options_parse(struct fuse_args *args, struct oboxfs_options *opts,
			 const char **error_r);
void oboxfs_options_free(struct oboxfs_options *opts);
/* Fill in store settings from the options. */
void oboxfs_options_to_settings(const struct oboxfs_options *opts,
				struct objstore_settings *set_r);
/* Print the option help (for --help). */
void oboxfs_options_help(void);

#endif
