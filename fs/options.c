/* options.c: parsing and checking oboxfs's mount options (see options.h). */
#include "options.h"
#include "obox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	KEY_DROP,
	/* mount flags oboxfs never offers: its mounts are nodev,nosuid */
	KEY_REFUSE_DEV,
	KEY_REFUSE_SUID,
};

#define OPT(t, p, v) { t, offsetof(struct oboxfs_options, p), v }

static const struct fuse_opt oboxfs_opts[] = {
	OPT("cache_dir=%s", cache_dir, 0),
	OPT("cache_size=%s", cache_size_str, 0),
	OPT("metacache_size=%s", metacache_size_str, 0),
	OPT("metacache_idle=%s", metacache_idle_str, 0),
	OPT("endpoint=%s", endpoint, 0),
	OPT("region=%s", region, 0),
	OPT("addressing=%s", addressing_str, 0),
	OPT("credentials=%s", credentials, 0),
	OPT("ca_file=%s", ca_file, 0),
	OPT("connect_timeout=%s", connect_timeout_str, 0),
	OPT("request_timeout=%s", request_timeout_str, 0),
	OPT("retry_timeout=%s", retry_timeout_str, 0),
	OPT("fault=%s", fault, 0),
	OPT("upload_interval=%s", upload_interval_str, 0),
	OPT("upload_deliveries=%s", upload_deliveries_str, 0),
	OPT("split_check_interval=%s", split_check_interval_str, 0),
	OPT("delete_grace=%s", delete_grace_str, 0),
	OPT("missing_mails=%s", missing_mails_str, 0),
	OPT("store_on_fsync=%s", store_on_fsync_str, 0),
	OPT("root_uid=%s", root_uid_str, 0),
	OPT("root_gid=%s", root_gid_str, 0),
	OPT("root_mode=%s", root_mode_str, 0),
	OPT("tls_insecure", tls_insecure, 1),
	OPT("no_fsync", no_fsync, 1),
	FUSE_OPT_KEY("_netdev", KEY_DROP),
	FUSE_OPT_KEY("nofail", KEY_DROP),
	FUSE_OPT_KEY("auto", KEY_DROP),
	FUSE_OPT_KEY("noauto", KEY_DROP),
	FUSE_OPT_KEY("defaults", KEY_DROP),
	FUSE_OPT_KEY("user", KEY_DROP),
	FUSE_OPT_KEY("users", KEY_DROP),
	FUSE_OPT_KEY("nouser", KEY_DROP),
	FUSE_OPT_KEY("dev", KEY_REFUSE_DEV),
	FUSE_OPT_KEY("suid", KEY_REFUSE_SUID),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct oboxfs_options *opts = data;

	(void)outargs;
	switch (key) {
	case KEY_DROP:
		return 0;
	case KEY_REFUSE_DEV:
	case KEY_REFUSE_SUID:
		opts->refused_key = key;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		opts->nonopt_count++;
		if (opts->store_url == NULL) {
			opts->store_url = strdup(arg);
			return opts->store_url == NULL ? -1 : 0;
		}
		if (opts->nonopt_count > 2)
			opts->extra_args++;
		return 1;
	default:
		return 1;
	}
}

static int parse_uint(const char *str, unsigned int min, unsigned int max,
		      unsigned int *value_r)
{
	char *end;
	unsigned long value;

	if (str[0] < '0' || str[0] > '9')
		return -1;
	errno = 0;
	value = strtoul(str, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return -1;
	*value_r = (unsigned int)value;
	return 0;
}

/* a uid or gid: decimal, or a user or group name */
static int parse_id(const char *str, bool group, uint32_t *id_r)
{
	char *end;
	unsigned long value;

	if (str[0] >= '0' && str[0] <= '9') {
		errno = 0;
		value = strtoul(str, &end, 10);
		if (errno != 0 || *end != '\0' || value >= UINT32_MAX)
			return -1;
		*id_r = (uint32_t)value;
		return 0;
	}
	if (group) {
		struct group *gr = str[0] == '\0' ? NULL : getgrnam(str);

		if (gr == NULL)
			return -1;
		*id_r = (uint32_t)gr->gr_gid;
	} else {
		struct passwd *pw = str[0] == '\0' ? NULL : getpwnam(str);

		if (pw == NULL)
			return -1;
		*id_r = (uint32_t)pw->pw_uid;
	}
	return 0;
}

/* root_uid=, root_gid=, root_mode= */
static int parse_root_attr(struct oboxfs_options *opts, const char **error_r)
{
	char *end;
	unsigned long mode;

	if (opts->root_uid_str != NULL) {
		if (parse_id(opts->root_uid_str, false, &opts->root_uid) < 0) {
			*error_r = "root_uid must be a uid or a user name";
			return -1;
		}
		opts->root_uid_set = true;
	}
	if (opts->root_gid_str != NULL) {
		if (parse_id(opts->root_gid_str, true, &opts->root_gid) < 0) {
			*error_r = "root_gid must be a gid or a group name";
			return -1;
		}
		opts->root_gid_set = true;
	}
	if (opts->root_mode_str != NULL) {
		errno = 0;
		mode = strtoul(opts->root_mode_str, &end, 8);
		if (opts->root_mode_str[0] < '0' ||
		    opts->root_mode_str[0] > '7' || errno != 0 ||
		    *end != '\0' || mode > 07777) {
			*error_r = "root_mode must be octal permission bits "
				"(e.g. 0755)";
			return -1;
		}
		opts->root_mode = (uint32_t)mode;
		opts->root_mode_set = true;
	}
	return 0;
}

static int parse_cache_size(const char *name, const char *str,
			    uint64_t *bytes_r, const char **error_r)
{
	static __thread char errbuf[256];
	const char *error;

	if (obox_parse_size(str, bytes_r, &error) < 0) {
		snprintf(errbuf, sizeof(errbuf),
			 "%s=%.64s: %s (e.g. 512M or 1G)", name, str, error);
		*error_r = errbuf;
		return -1;
	}
	if (*bytes_r == 0) {
		snprintf(errbuf, sizeof(errbuf), "%s must be larger than 0",
			 name);
		*error_r = errbuf;
		return -1;
	}
	return 0;
}

int oboxfs_options_parse(struct fuse_args *args, struct oboxfs_options *opts,
			 const char **error_r)
{
	memset(opts, 0, sizeof(*opts));
	opts->cache_size = OBOXFS_DEFAULT_CACHE_SIZE;
	opts->metacache_size = OBOXFS_DEFAULT_METACACHE_SIZE;
	opts->metacache_idle = OBOXFS_DEFAULT_METACACHE_IDLE;
	opts->upload_interval = OBOXFS_DEFAULT_UPLOAD_INTERVAL;
	opts->upload_deliveries = OBOXFS_DEFAULT_UPLOAD_DELIVERIES;
	opts->split_check_interval = OBOXFS_DEFAULT_SPLIT_CHECK_INTERVAL;

	if (fuse_opt_parse(args, opts, oboxfs_opts, opt_proc) < 0) {
		*error_r = "invalid options";
		return -1;
	}
	if (opts->refused_key != 0) {
		*error_r = opts->refused_key == KEY_REFUSE_DEV ?
			"option dev is not supported: oboxfs always mounts "
			"nodev (device nodes in the tree are inert)" :
			"option suid is not supported: oboxfs always mounts "
			"nosuid";
		return -1;
	}
	if (opts->extra_args > 0) {
		*error_r = "too many arguments (expected STORE MOUNTPOINT)";
		return -1;
	}
	if (opts->cache_dir == NULL) {
		opts->cache_dir = strdup(OBOXFS_DEFAULT_CACHE_DIR);
		if (opts->cache_dir == NULL) {
			*error_r = "out of memory";
			return -1;
		}
	}
	if (opts->cache_dir[0] != '/') {
		*error_r = "cache_dir must be an absolute path";
		return -1;
	}
	if (opts->cache_size_str != NULL &&
	    parse_cache_size("cache_size", opts->cache_size_str,
			     &opts->cache_size, error_r) < 0)
		return -1;
	if (opts->metacache_size_str != NULL &&
	    parse_cache_size("metacache_size", opts->metacache_size_str,
			     &opts->metacache_size, error_r) < 0)
		return -1;
	if (opts->metacache_idle_str != NULL &&
	    parse_uint(opts->metacache_idle_str, OBOXFS_MIN_METACACHE_IDLE,
		       86400 * 7, &opts->metacache_idle) < 0) {
		/* Dovecot keeps a closed index in memory for 10 s and takes
		   a tree replaced under it for a corrupted index */
		*error_r = "metacache_idle must be 15..604800 seconds";
		return -1;
	}
	if (opts->addressing_str == NULL ||
	    strcmp(opts->addressing_str, "auto") == 0)
		opts->addressing = OBJSTORE_ADDRESSING_AUTO;
	else if (strcmp(opts->addressing_str, "path") == 0)
		opts->addressing = OBJSTORE_ADDRESSING_PATH;
	else if (strcmp(opts->addressing_str, "virtual") == 0)
		opts->addressing = OBJSTORE_ADDRESSING_VIRTUAL;
	else {
		*error_r = "addressing must be path, virtual or auto";
		return -1;
	}
	if (opts->upload_interval_str != NULL &&
	    parse_uint(opts->upload_interval_str, 1, 86400 * 7,
		       &opts->upload_interval) < 0) {
		*error_r = "upload_interval must be 1..604800 seconds";
		return -1;
	}
	if (opts->upload_deliveries_str != NULL &&
	    parse_uint(opts->upload_deliveries_str, 1, 1000000,
		       &opts->upload_deliveries) < 0) {
		*error_r = "upload_deliveries must be 1..1000000";
		return -1;
	}
	if (opts->split_check_interval_str != NULL &&
	    parse_uint(opts->split_check_interval_str, 0, 86400 * 7,
		       &opts->split_check_interval) < 0) {
		*error_r = "split_check_interval must be 0..604800 seconds";
		return -1;
	}
	/* longer than the split check: another machine serving the same
	   users notices this one's bundles before a mail it may still list
	   is deleted (objgc.h) */
	opts->delete_grace = opts->split_check_interval == 0 ? 0 :
		opts->split_check_interval + OBOXFS_DELETE_GRACE_MARGIN;
	if (opts->delete_grace_str != NULL &&
	    parse_uint(opts->delete_grace_str, 0, 86400 * 30,
		       &opts->delete_grace) < 0) {
		*error_r = "delete_grace must be 0..2592000 seconds";
		return -1;
	}
	if ((opts->connect_timeout_str != NULL &&
	     parse_uint(opts->connect_timeout_str, 1, 600,
			&opts->connect_timeout) < 0) ||
	    (opts->request_timeout_str != NULL &&
	     parse_uint(opts->request_timeout_str, 1, 3600,
			&opts->request_timeout) < 0) ||
	    (opts->retry_timeout_str != NULL &&
	     parse_uint(opts->retry_timeout_str, 1, 3600,
			&opts->retry_timeout) < 0)) {
		*error_r = "connect_timeout must be 1..600 seconds, "
			"request_timeout and retry_timeout 1..3600";
		return -1;
	}
	if (opts->ca_file != NULL && opts->ca_file[0] == '\0') {
		*error_r = "ca_file must name a file";
		return -1;
	}
	if (parse_root_attr(opts, error_r) < 0)
		return -1;
	if (opts->missing_mails_str == NULL ||
	    strcmp(opts->missing_mails_str, "eio") == 0)
		opts->missing_mails_drop = false;
	else if (strcmp(opts->missing_mails_str, "drop") == 0)
		opts->missing_mails_drop = true;
	else {
		*error_r = "missing_mails must be eio or drop";
		return -1;
	}
	if (opts->store_on_fsync_str == NULL ||
	    strcmp(opts->store_on_fsync_str, "yes") == 0)
		opts->store_on_fsync = true;
	else if (strcmp(opts->store_on_fsync_str, "no") == 0)
		opts->store_on_fsync = false;
	else {
		*error_r = "store_on_fsync must be yes or no";
		return -1;
	}
	return 0;
}

void oboxfs_options_free(struct oboxfs_options *opts)
{
	free(opts->store_url);
	free(opts->cache_dir);
	free(opts->cache_size_str);
	free(opts->metacache_size_str);
	free(opts->metacache_idle_str);
	free(opts->endpoint);
	free(opts->region);
	free(opts->addressing_str);
	free(opts->credentials);
	free(opts->ca_file);
	free(opts->connect_timeout_str);
	free(opts->request_timeout_str);
	free(opts->retry_timeout_str);
	free(opts->fault);
	free(opts->upload_interval_str);
	free(opts->upload_deliveries_str);
	free(opts->split_check_interval_str);
	free(opts->delete_grace_str);
	free(opts->missing_mails_str);
	free(opts->store_on_fsync_str);
	free(opts->root_uid_str);
	free(opts->root_gid_str);
	free(opts->root_mode_str);
	memset(opts, 0, sizeof(*opts));
}

void oboxfs_options_to_settings(const struct oboxfs_options *opts,
				struct objstore_settings *set_r)
{
	memset(set_r, 0, sizeof(*set_r));
	set_r->endpoint = opts->endpoint;
	set_r->region = opts->region;
	set_r->addressing = opts->addressing;
	set_r->credentials_file = opts->credentials;
	set_r->tls_insecure = opts->tls_insecure != 0;
	set_r->ca_file = opts->ca_file;
	set_r->connect_timeout_ms = opts->connect_timeout * 1000;
	set_r->request_timeout_ms = opts->request_timeout * 1000;
	set_r->retry_timeout_ms = opts->retry_timeout * 1000;
	set_r->no_fsync = opts->no_fsync != 0;
	set_r->fault = opts->fault;
}

void oboxfs_options_help(void)
{
	printf(
"oboxfs options:\n"
"    -o cache_dir=DIR          cache directory\n"
"                              (default " OBOXFS_DEFAULT_CACHE_DIR ")\n"
"    -o cache_size=SIZE        mail cache size, units K, M, G, T (default 1G)\n"
"    -o metacache_size=SIZE    index tree cache size (default 1G)\n"
"    -o metacache_idle=SECS    a user idle this long may be evicted from the\n"
"                              metacache once uploaded (default 60)\n"
"    -o endpoint=URL           S3 endpoint (default AWS for the region)\n"
"    -o region=NAME            S3 region (default us-east-1)\n"
"    -o addressing=STYLE       path, virtual or auto (default auto)\n"
"    -o credentials=FILE       S3 credentials file (mode 0600)\n"
"    -o tls_insecure           do not verify TLS certificates\n"
"    -o ca_file=FILE           trust the CA certificates in FILE (PEM)\n"
"    -o connect_timeout=SECS   S3 connect timeout (default 5)\n"
"    -o request_timeout=SECS   S3 request timeout (default 60)\n"
"    -o retry_timeout=SECS     how long a failing S3 operation is retried\n"
"                              before EIO (default 60)\n"
"    -o upload_interval=SECS   index upload interval (default 300)\n"
"    -o upload_deliveries=N    index upload every N deliveries (default 10)\n"
"    -o split_check_interval=SECS  look for another machine writing the\n"
"                              same users this often (default 3600, 0 never)\n"
"    -o delete_grace=SECS      keep expunged mails' objects this long before\n"
"                              deleting them (default split_check_interval\n"
"                              + 300)\n"
"    -o root_uid=N, root_gid=N, root_mode=OCTAL  the mount root's owner\n"
"                              and mode (default: as chown/chmod stored them)\n"
"    -o missing_mails=eio|drop a mail whose object the store lacks: EIO on\n"
"                              reading it (default), or removed\n"
"    -o store_on_fsync=yes|no  store a maildir tmp/ file when it is fsynced\n"
"                              (default yes), not when it is renamed into\n"
"                              new/ or cur/\n"
"    -o no_fsync               file:// store: do not fsync objects\n"
"    -o fault=SPEC             inject store faults (testing)\n"
"    (mounts are always nodev,nosuid: dev and suid are refused)\n");
}
