/* test_fs_options.c: parsing of oboxfs's own mount options: defaults,
 * values, what is left for FUSE, and the one-line errors. */
#include "options.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

static struct oboxfs_options opts;
static struct fuse_args args;

static void init(void)
{
	memset(&opts, 0, sizeof(opts));
	memset(&args, 0, sizeof(args));
}

static void fini(void)
{
	oboxfs_options_free(&opts);
	fuse_opt_free_args(&args);
}

TestSuite(fs_options, .init = init, .fini = fini);

static int parse(int argc, char **argv, const char **error_r)
{
	args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	for (int i = 0; i < argc; i++)
		cr_assert_eq(fuse_opt_add_arg(&args, argv[i]), 0);
	return oboxfs_options_parse(&args, &opts, error_r);
}

static bool args_have(const char *arg)
{
	for (int i = 0; i < args.argc; i++) {
		if (strcmp(args.argv[i], arg) == 0)
			return true;
	}
	return false;
}

Test(fs_options, defaults)
{
	char *argv[] = { "oboxfs", "file:///store", "/mnt" };
	const char *error;

	cr_assert_eq(parse(3, argv, &error), 0);
	cr_assert_str_eq(opts.store_url, "file:///store");
	cr_assert_str_eq(opts.cache_dir, "/var/cache/oboxfs");
	cr_assert_eq(opts.cache_size, 1024ULL * 1024 * 1024);
	cr_assert_eq(opts.upload_interval, 300);
	cr_assert_eq(opts.upload_deliveries, 10);
	cr_assert_eq(opts.metacache_size, 1024ULL * 1024 * 1024);
	cr_assert_eq(opts.metacache_idle, 60);
	cr_assert_eq(opts.split_check_interval, 3600);
	/* longer than the split check (objgc.h) */
	cr_assert_eq(opts.delete_grace, 3900);
	cr_assert_not(opts.missing_mails_drop);
	cr_assert_eq(opts.addressing, OBJSTORE_ADDRESSING_AUTO);
	cr_assert_eq(opts.tls_insecure, 0);
	cr_assert_null(opts.endpoint);
	/* the mount point stays for fuse_parse_cmdline() */
	cr_assert(args_have("/mnt"));
	cr_assert(!args_have("file:///store"));
}

Test(fs_options, all_values)
{
	char *argv[] = {
		"oboxfs", "-f", "-o",
		"cache_dir=/c,cache_size=512M,endpoint=http://h:1,region=r1,addressing=path,"
		"credentials=/etc/c,tls_insecure,upload_interval=60,"
		"upload_deliveries=3,no_fsync,fault=put:fail,allow_other,"
		"metacache_size=3M,metacache_idle=20,split_check_interval=0,"
		"_netdev,nofail,noauto",
		"s3://bucket/prefix", "/mnt",
	};
	struct objstore_settings set;
	const char *error;

	cr_assert_eq(parse(6, argv, &error), 0, "%s", error);
	cr_assert_str_eq(opts.cache_dir, "/c");
	cr_assert_eq(opts.cache_size, 512ULL * 1024 * 1024);
	cr_assert_str_eq(opts.endpoint, "http://h:1");
	cr_assert_str_eq(opts.region, "r1");
	cr_assert_eq(opts.addressing, OBJSTORE_ADDRESSING_PATH);
	cr_assert_str_eq(opts.credentials, "/etc/c");
	cr_assert_eq(opts.upload_interval, 60);
	cr_assert_eq(opts.upload_deliveries, 3);
	cr_assert_eq(opts.metacache_size, 3ULL * 1024 * 1024);
	cr_assert_eq(opts.metacache_idle, 20);
	cr_assert_eq(opts.split_check_interval, 0);
	/* no split check: no grace needed */
	cr_assert_eq(opts.delete_grace, 0);
	cr_assert_str_eq(opts.store_url, "s3://bucket/prefix");

	oboxfs_options_to_settings(&opts, &set);
	cr_assert_str_eq(set.endpoint, "http://h:1");
	cr_assert_str_eq(set.credentials_file, "/etc/c");
	cr_assert(set.tls_insecure);
	cr_assert(set.no_fsync);
	cr_assert_str_eq(set.fault, "put:fail");

	/* FUSE's options stay, mount(8)-only ones are gone */
	cr_assert(args_have("-f"));
	bool allow_other = false;
	for (int i = 0; i < args.argc; i++) {
		cr_assert_null(strstr(args.argv[i], "_netdev"));
		cr_assert_null(strstr(args.argv[i], "nofail"));
		cr_assert_null(strstr(args.argv[i], "cache_dir"));
		cr_assert_null(strstr(args.argv[i], "cache_size"));
		if (strstr(args.argv[i], "allow_other") != NULL)
			allow_other = true;
	}
	cr_assert(allow_other);
}

/* arrays, not pointers: criterion runs each case in a new process */
struct bad_case {
	char opt[40];
};

ParameterizedTestParameters(fs_options, bad_values)
{
	static struct bad_case bad[] = {
		{ "upload_interval=0" },
		{ "upload_interval=-5" },
		{ "upload_interval=abc" },
		{ "upload_interval=10s" },
		{ "upload_interval=" },
		{ "upload_deliveries=0" },
		{ "upload_deliveries=1e3" },
		{ "addressing=sideways" },
		{ "cache_dir=relative/dir" },
		{ "cache_size=0" },
		{ "cache_size=" },
		{ "cache_size=1X" },
		{ "cache_size=1.5G" },
		{ "cache_size=-1M" },
		{ "cache_size=10 M" },
		{ "cache_size=1GX" },
		{ "cache_size=99999999999999999999" },
		{ "cache_size=20000000000P" },
		{ "metacache_size=0" },
		{ "metacache_size=1Q" },
		{ "metacache_idle=14" },
		{ "metacache_idle=0" },
		{ "metacache_idle=x" },
		{ "split_check_interval=-1" },
		{ "split_check_interval=604801" },
		{ "delete_grace=-1" },
		{ "delete_grace=2592001" },
		{ "delete_grace=1h" },
		{ "missing_mails=" },
		{ "missing_mails=ignore" },
		{ "ca_file=" },
		{ "connect_timeout=0" },
		{ "connect_timeout=601" },
		{ "request_timeout=1h" },
		{ "retry_timeout=3601" },
		{ "root_uid=no-such-user-oboxfs" },
		{ "root_uid=4294967295" },
		{ "root_uid=" },
		{ "root_gid=no-such-group-oboxfs" },
		{ "root_mode=755x" },
		{ "root_mode=10000" },
		{ "root_mode=-1" },
		{ "root_mode=" },
	};
	return cr_make_param_array(struct bad_case, bad,
				   sizeof(bad) / sizeof(bad[0]));
}

ParameterizedTest(struct bad_case *c, fs_options, bad_values)
{
	char *argv[] = { "oboxfs", "-o", c->opt, "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), -1, "%s accepted", c->opt);
	cr_assert_not_null(error);
	cr_assert_null(strchr(error, '\n'));
}

struct size_case {
	char opt[40];
	uint64_t bytes;
};

ParameterizedTestParameters(fs_options, cache_sizes)
{
	static struct size_case sizes[] = {
		{ "cache_size=4096", 4096 },
		{ "cache_size=512K", 512ULL << 10 },
		{ "cache_size=1m", 1ULL << 20 },
		{ "cache_size=100M", 100ULL << 20 },
		{ "cache_size=2G", 2ULL << 30 },
		{ "cache_size=3GiB", 3ULL << 30 },
		{ "cache_size=1T", 1ULL << 40 },
	};
	return cr_make_param_array(struct size_case, sizes,
				   sizeof(sizes) / sizeof(sizes[0]));
}

ParameterizedTest(struct size_case *c, fs_options, cache_sizes)
{
	char *argv[] = { "oboxfs", "-o", c->opt, "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s: %s", c->opt, error);
	cr_assert_eq(opts.cache_size, c->bytes, "%s: %ju", c->opt,
		     (uintmax_t)opts.cache_size);
}

Test(fs_options, bad_cache_size_message)
{
	char *argv[] = { "oboxfs", "-o", "cache_size=12Q", "file:///s",
			 "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), -1);
	cr_assert_not_null(strstr(error, "cache_size=12Q"), "%s", error);
	cr_assert_not_null(strstr(error, "unit"), "%s", error);
}

Test(fs_options, too_many_arguments)
{
	char *argv[] = { "oboxfs", "file:///s", "/mnt", "/extra" };
	const char *error = NULL;

	cr_assert_eq(parse(4, argv, &error), -1);
	cr_assert_not_null(strstr(error, "too many"));
}

Test(fs_options, delete_grace_given)
{
	char *argv[] = { "oboxfs", "-o", "split_check_interval=60,"
			 "delete_grace=7200", "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s", error);
	cr_assert_eq(opts.split_check_interval, 60);
	cr_assert_eq(opts.delete_grace, 7200);
}

Test(fs_options, delete_grace_follows_split_check_interval)
{
	char *argv[] = { "oboxfs", "-o", "split_check_interval=60",
			 "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s", error);
	cr_assert_eq(opts.delete_grace, 360);
}

Test(fs_options, missing_mails)
{
	char *argv[] = { "oboxfs", "-o", "missing_mails=drop", "file:///s",
			 "/mnt" };
	char *argv_eio[] = { "oboxfs", "-o", "missing_mails=eio", "file:///s",
			     "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s", error);
	cr_assert(opts.missing_mails_drop);
	oboxfs_options_free(&opts);
	fuse_opt_free_args(&args);
	cr_assert_eq(parse(5, argv_eio, &error), 0, "%s", error);
	cr_assert_not(opts.missing_mails_drop);
}

/* mounts are always nodev,nosuid (fs/main.c adds them): dev and suid are
   refused with a line naming them, nodev and nosuid are left for FUSE */
struct mount_flag_case {
	char opts[48];
	char refused[8];	/* "": accepted */
};

ParameterizedTestParameters(fs_options, dev_and_suid_refused)
{
	static struct mount_flag_case cases[] = {
		{ "dev", "dev" },
		{ "suid", "suid" },
		{ "rw,dev", "dev" },
		{ "nosuid,suid", "suid" },
		{ "allow_other,dev,cache_size=1M", "dev" },
		{ "nodev", "" },
		{ "nosuid", "" },
		{ "nodev,nosuid,allow_other", "" },
	};
	return cr_make_param_array(struct mount_flag_case, cases,
				   sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct mount_flag_case *c, fs_options, dev_and_suid_refused)
{
	char *argv[] = { "oboxfs", "-o", c->opts, "file:///s", "/mnt" };
	char word[16];
	const char *error = NULL;

	if (c->refused[0] == '\0') {
		cr_assert_eq(parse(5, argv, &error), 0, "%s: %s", c->opts,
			     error);
		bool kept = false;
		for (int i = 0; i < args.argc; i++)
			kept |= strstr(args.argv[i], "nodev") != NULL ||
				strstr(args.argv[i], "nosuid") != NULL;
		cr_assert(kept, "%s: not left for FUSE", c->opts);
		return;
	}
	cr_assert_eq(parse(5, argv, &error), -1, "%s accepted", c->opts);
	snprintf(word, sizeof(word), "option %s ", c->refused);
	cr_assert_not_null(strstr(error, word), "%s: %s", c->opts, error);
	cr_assert_not_null(strstr(error, "not supported"), "%s", error);
	cr_assert_null(strchr(error, '\n'));
}

Test(fs_options, tls_and_store_timeouts)
{
	char *argv[] = { "oboxfs", "-o", "ca_file=/etc/oboxfs/ca.pem,"
			 "connect_timeout=3,request_timeout=20,"
			 "retry_timeout=300", "s3://b/p", "/mnt" };
	struct objstore_settings set;
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s", error);
	oboxfs_options_to_settings(&opts, &set);
	cr_assert_str_eq(set.ca_file, "/etc/oboxfs/ca.pem");
	cr_assert_eq(set.connect_timeout_ms, 3000);
	cr_assert_eq(set.request_timeout_ms, 20000);
	cr_assert_eq(set.retry_timeout_ms, 300000);
}

Test(fs_options, store_timeouts_default_to_the_store)
{
	char *argv[] = { "oboxfs", "s3://b/p", "/mnt" };
	struct objstore_settings set;
	const char *error = NULL;

	cr_assert_eq(parse(3, argv, &error), 0, "%s", error);
	oboxfs_options_to_settings(&opts, &set);
	cr_assert_null(set.ca_file);
	cr_assert_eq(set.connect_timeout_ms, 0);
	cr_assert_eq(set.retry_timeout_ms, 0);
}

Test(fs_options, root_owner_and_mode)
{
	char *argv[] = { "oboxfs", "-o", "root_uid=root,root_gid=5000,"
			 "root_mode=0750", "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(5, argv, &error), 0, "%s", error);
	cr_assert(opts.root_uid_set && opts.root_gid_set && opts.root_mode_set);
	cr_assert_eq(opts.root_uid, 0);
	cr_assert_eq(opts.root_gid, 5000);
	cr_assert_eq(opts.root_mode, 0750);
}

Test(fs_options, root_owner_not_set_by_default)
{
	char *argv[] = { "oboxfs", "file:///s", "/mnt" };
	const char *error = NULL;

	cr_assert_eq(parse(3, argv, &error), 0, "%s", error);
	cr_assert_not(opts.root_uid_set || opts.root_gid_set ||
		      opts.root_mode_set);
}
