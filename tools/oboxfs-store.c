/* oboxfs-store.c: command-line access to an oboxfs object store (file:// or
 * s3://) through the objstore API: put, get, head, ls, rm, cp and request
 * statistics.  Meant for operators and for tests. */
#include "objstore.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OP_FAILED 1
#define EXIT_USAGE 2

struct cli {
	const char *url;
	struct objstore_settings set;
	struct objstore_meta meta[OBJSTORE_META_MAX_PAIRS];
	unsigned int meta_count;
	uint64_t range_offset, range_length;
	bool delimiter, stats;
	struct objstore *store;
};

static void usage(FILE *out)
{
	fprintf(out,
"Usage: oboxfs-store [OPTIONS] URL COMMAND [ARGS]\n"
"URL is file:///DIR or s3://BUCKET[/PREFIX].  Commands:\n"
"  put KEY [FILE|-]     store FILE (default stdin); -m NAME=VALUE adds metadata\n"
"  get KEY [FILE|-]     fetch to FILE (default stdout); --range OFFSET:LENGTH\n"
"  head KEY             print size, mtime and metadata\n"
"  ls [PREFIX]          list keys with sizes; -d rolls up at '/'\n"
"  rm KEY...            delete keys (missing keys are not an error)\n"
"  cp SRC DST           copy an object with its metadata\n"
"  stats                print the request counters\n"
"Options:\n"
"  -m, --meta NAME=VALUE    metadata for put (repeatable)\n"
"  -r, --range OFF:LEN      byte range for get (LEN may be empty: to the end)\n"
"  -d, --delimiter          ls: roll up keys at '/'\n"
"  -s, --stats              print request counters after the command\n"
"      --endpoint URL       s3 endpoint (http[s]://host[:port])\n"
"      --region REGION      s3 region (default us-east-1)\n"
"      --addressing path|virtual   s3 addressing style\n"
"      --credentials FILE   s3 credentials file (access_key/secret_key lines)\n"
"      --insecure           do not verify TLS certificates\n"
"      --fault SPEC         inject faults (tests), e.g. ops=put;rate=0.5\n"
"      --no-fsync           file://: do not fsync (tests)\n"
"  -h, --help               this help\n"
"Exit status: 0 success, 1 operation failed, 2 usage error.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "oboxfs-store: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'oboxfs-store --help'.\n");
	return EXIT_USAGE;
}

static int op_error(void)
{
	fprintf(stderr, "oboxfs-store: %s\n", objstore_error());
	return EXIT_OP_FAILED;
}

static int parse_range(struct cli *cli, const char *arg)
{
	char *end;

	if (arg[0] < '0' || arg[0] > '9')
		return -1;
	errno = 0;
	cli->range_offset = strtoull(arg, &end, 10);
	if (errno != 0 || *end != ':')
		return -1;
	if (end[1] == '\0') {
		cli->range_length = OBJSTORE_TO_END;
		return 0;
	}
	if (end[1] < '0' || end[1] > '9')
		return -1;
	cli->range_length = strtoull(end + 1, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* a temporary unlinked file, for data that has to pass through a pipe */
static int tmp_fd(void)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	fd = open(dir != NULL ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC,
		  0600);
	if (fd < 0)
		fprintf(stderr, "oboxfs-store: open(O_TMPFILE) failed: %s\n",
			strerror(errno));
	return fd;
}

static int copy_stream(int in, int out, uint64_t *size_r)
{
	char buf[65536];
	ssize_t n;

	*size_r = 0;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			done += w;
		}
		*size_r += (uint64_t)n;
	}
	return 0;
}

static int cmd_put(struct cli *cli, int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "-";
	struct stat st;
	uint64_t size;
	int fd, ret;

	if (argc < 1 || argc > 2)
		return usage_error("%s", "put needs KEY [FILE|-]");
	if (strcmp(path, "-") == 0)
		fd = dup(STDIN_FILENO);
	else
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "oboxfs-store: open(%s) failed: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_OP_FAILED;
	}
	if (!S_ISREG(st.st_mode)) {
		/* a pipe: spool it to a temporary file first */
		int tmp = tmp_fd();

		if (tmp < 0 || copy_stream(fd, tmp, &size) < 0) {
			if (tmp >= 0)
				fprintf(stderr, "oboxfs-store: reading %s "
					"failed: %s\n", path, strerror(errno));
			close(fd);
			if (tmp >= 0)
				close(tmp);
			return EXIT_OP_FAILED;
		}
		close(fd);
		fd = tmp;
	} else {
		size = (uint64_t)st.st_size;
	}
	ret = objstore_put_fd(cli->store, argv[0], fd, size, cli->meta,
			      cli->meta_count);
	close(fd);
	return ret < 0 ? op_error() : 0;
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "-";
	bool to_stdout = strcmp(path, "-") == 0;
	struct stat st;
	uint64_t size;
	off_t start = 0;
	int fd, out, ret;

	if (argc < 1 || argc > 2)
		return usage_error("%s", "get needs KEY [FILE|-]");
	if (to_stdout) {
		out = STDOUT_FILENO;
		if (fstat(out, &st) == 0 && S_ISREG(st.st_mode) &&
		    (start = lseek(out, 0, SEEK_CUR)) >= 0)
			fd = out;
		else if ((fd = tmp_fd()) < 0)
			return EXIT_OP_FAILED;
	} else {
		fd = out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				0644);
		if (fd < 0) {
			fprintf(stderr, "oboxfs-store: open(%s) failed: %s\n",
				path, strerror(errno));
			return EXIT_OP_FAILED;
		}
	}
	ret = objstore_get_fd(cli->store, argv[0], cli->range_offset,
			      cli->range_length, fd, start, &size);
	if (ret < 0) {
		if (fd != out)
			close(fd);
		if (!to_stdout) {
			close(fd);
			(void)unlink(path);
		}
		return op_error();
	}
	if (fd == out && to_stdout) {
		(void)lseek(out, start + (off_t)size, SEEK_SET);
		return 0;
	}
	if (fd != out) {
		/* from the spool file to the pipe */
		if (lseek(fd, 0, SEEK_SET) < 0 ||
		    copy_stream(fd, out, &size) < 0) {
			fprintf(stderr, "oboxfs-store: writing to stdout "
				"failed: %s\n", strerror(errno));
			close(fd);
			return EXIT_OP_FAILED;
		}
	}
	if (close(fd) < 0) {
		fprintf(stderr, "oboxfs-store: close(%s) failed: %s\n", path,
			strerror(errno));
		return EXIT_OP_FAILED;
	}
	return 0;
}

static int cmd_head(struct cli *cli, int argc, char **argv)
{
	struct objstore_stat st;
	char date[64];
	struct tm tm;

	if (argc != 1)
		return usage_error("%s", "head needs KEY");
	if (objstore_head(cli->store, argv[0], &st) < 0)
		return op_error();
	gmtime_r(&st.mtime, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("size: %" PRIu64 "\nmtime: %s\n", st.size, date);
	for (unsigned int i = 0; i < st.meta_count; i++)
		printf("meta: %s=%s\n", st.meta[i].name, st.meta[i].value);
	objstore_stat_free(&st);
	return 0;
}

static int ls_callback(const struct objstore_list_entry *entry, void *context)
{
	(void)context;
	if (entry->is_prefix)
		printf("PRE\t%s\n", entry->key);
	else
		printf("%" PRIu64 "\t%s\n", entry->size, entry->key);
	return 0;
}

static int cmd_ls(struct cli *cli, int argc, char **argv)
{
	if (argc > 1)
		return usage_error("%s", "ls takes at most one PREFIX");
	if (objstore_list(cli->store, argc == 1 ? argv[0] : "",
			  cli->delimiter ? "/" : NULL, ls_callback, NULL) < 0)
		return op_error();
	return 0;
}

static int cmd_rm(struct cli *cli, int argc, char **argv)
{
	if (argc < 1)
		return usage_error("%s", "rm needs at least one KEY");
	if (objstore_delete_many(cli->store, (const char *const *)argv,
				 (unsigned int)argc) < 0)
		return op_error();
	return 0;
}

static int cmd_cp(struct cli *cli, int argc, char **argv)
{
	if (argc != 2)
		return usage_error("%s", "cp needs SRC DST");
	if (objstore_copy(cli->store, argv[0], argv[1]) < 0)
		return op_error();
	return 0;
}

static void print_stats(struct objstore *store)
{
	struct objstore_stats stats;

	objstore_get_stats(store, &stats);
	for (unsigned int i = 0; i < OBJSTORE_OP_COUNT; i++) {
		printf("requests.%s: %" PRIu64 "\n",
		       objstore_op_name((enum objstore_op)i), stats.requests[i]);
	}
	printf("retries: %" PRIu64 "\nerrors: %" PRIu64 "\n"
	       "bytes_out: %" PRIu64 "\nbytes_in: %" PRIu64 "\n",
	       stats.retries, stats.errors, stats.bytes_out, stats.bytes_in);
}

static int add_meta(struct cli *cli, char *arg)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg)
		return usage_error("-m needs NAME=VALUE, got '%s'", arg);
	if (cli->meta_count == OBJSTORE_META_MAX_PAIRS)
		return usage_error("%s", "too many -m options");
	*eq = '\0';
	cli->meta[cli->meta_count].name = arg;
	cli->meta[cli->meta_count++].value = eq + 1;
	return 0;
}

enum {
	OPT_ENDPOINT = 256, OPT_REGION, OPT_ADDRESSING, OPT_CREDENTIALS,
	OPT_INSECURE, OPT_FAULT, OPT_NO_FSYNC,
};

static const struct option long_options[] = {
	{ "meta", required_argument, NULL, 'm' },
	{ "range", required_argument, NULL, 'r' },
	{ "delimiter", no_argument, NULL, 'd' },
	{ "stats", no_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ "endpoint", required_argument, NULL, OPT_ENDPOINT },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "addressing", required_argument, NULL, OPT_ADDRESSING },
	{ "credentials", required_argument, NULL, OPT_CREDENTIALS },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "fault", required_argument, NULL, OPT_FAULT },
	{ "no-fsync", no_argument, NULL, OPT_NO_FSYNC },
	{ NULL, 0, NULL, 0 },
};

static int parse_options(struct cli *cli, int argc, char **argv)
{
	int c, ret;

	while ((c = getopt_long(argc, argv, "m:r:dsh", long_options,
				NULL)) != -1) {
		switch (c) {
		case 'm':
			if ((ret = add_meta(cli, optarg)) != 0)
				return ret;
			break;
		case 'r':
			if (parse_range(cli, optarg) < 0)
				return usage_error("invalid --range '%s' "
					"(expected OFFSET:LENGTH)", optarg);
			break;
		case 'd':
			cli->delimiter = true;
			break;
		case 's':
			cli->stats = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_ENDPOINT:
			cli->set.endpoint = optarg;
			break;
		case OPT_REGION:
			cli->set.region = optarg;
			break;
		case OPT_ADDRESSING:
			if (strcmp(optarg, "path") == 0)
				cli->set.addressing = OBJSTORE_ADDRESSING_PATH;
			else if (strcmp(optarg, "virtual") == 0)
				cli->set.addressing = OBJSTORE_ADDRESSING_VIRTUAL;
			else
				return usage_error("invalid --addressing '%s' "
					"(expected path or virtual)", optarg);
			break;
		case OPT_CREDENTIALS:
			cli->set.credentials_file = optarg;
			break;
		case OPT_INSECURE:
			cli->set.tls_insecure = true;
			break;
		case OPT_FAULT:
			cli->set.fault = optarg;
			break;
		case OPT_NO_FSYNC:
			cli->set.no_fsync = true;
			break;
		default:
			fprintf(stderr, "Try 'oboxfs-store --help'.\n");
			return EXIT_USAGE;
		}
	}
	return 0;
}

static const struct {
	const char *name;
	int (*func)(struct cli *cli, int argc, char **argv);
} commands[] = {
	{ "put", cmd_put }, { "get", cmd_get }, { "head", cmd_head },
	{ "ls", cmd_ls }, { "rm", cmd_rm }, { "cp", cmd_cp },
	{ "stats", NULL },
};

int main(int argc, char **argv)
{
	struct cli cli = { .range_length = OBJSTORE_TO_END };
	const char *error, *cmd;
	unsigned int i;
	int ret;

	if ((ret = parse_options(&cli, argc, argv)) != 0)
		return ret;
	if (argc - optind < 2)
		return usage_error("%s", "missing URL or COMMAND");
	cli.url = argv[optind];
	cmd = argv[optind + 1];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) == 0)
			break;
	}
	if (i == sizeof(commands) / sizeof(commands[0]))
		return usage_error("unknown command '%s'", cmd);
	if (cli.meta_count > 0 && strcmp(cmd, "put") != 0)
		return usage_error("%s", "-m is only for put");
	if (objstore_init(cli.url, &cli.set, &cli.store, &error) < 0) {
		fprintf(stderr, "oboxfs-store: %s\n", error);
		return EXIT_OP_FAILED;
	}
	if (commands[i].func != NULL) {
		ret = commands[i].func(&cli, argc - optind - 2,
				       argv + optind + 2);
	} else if (argc - optind > 2) {
		ret = usage_error("%s", "stats takes no arguments");
	}
	if (ret != EXIT_USAGE && (cli.stats || commands[i].func == NULL))
		print_stats(cli.store);
	fflush(stdout);
	objstore_deinit(&cli.store);
	return ret;
}
