/* test_s3_tls.c: the s3 backend verifies TLS certificates by default and
 * tls_insecure turns verification off.  The fake S3 endpoint
 * (tests/fixtures/misbehaving-http.py --tls-cert/--tls-key) serves HTTPS on
 * 127.0.0.1 with a self-signed certificate for IP 127.0.0.1 made with the
 * openssl CLI in a temporary directory: opening it with default settings
 * fails at init with a one-line PERMANENT error naming the certificate
 * problem (not retried); with tls_insecure a put/get round trip works. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper-objstore.h"
#include "helper-fakes3.h"
#include "objstore.h"

static char *tmpdir;
static pid_t server_pid = -1;
static int server_port;
static struct objstore *store;

/* run argv with stdout/stderr to /dev/null; assert it exits 0 */
static void run_quiet(char *const argv[])
{
	pid_t pid = fork();
	int status;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "%s failed (status %d; 127: not installed?)", argv[0],
		  status);
}

static void make_cert(char *cert, char *key, size_t size)
{
	snprintf(cert, size, "%s/cert.pem", tmpdir);
	snprintf(key, size, "%s/key.pem", tmpdir);
	char *argv[] = {
		"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-days", "1", "-subj", "/CN=127.0.0.1",
		"-addext", "subjectAltName=IP:127.0.0.1",
		"-keyout", key, "-out", cert, NULL
	};
	run_quiet(argv);
}

static void start_server(void)
{
	char cert[1024], key[1024];

	make_cert(cert, key, sizeof(cert));
	const char *args[] = { "--tls-cert", cert, "--tls-key", key, NULL };

	server_pid = fakes3_start(args, &server_port);
}

static void setup(void)
{
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	tmpdir = objtest_mkdtemp("s3-tls");
	cr_assert_not_null(tmpdir);
	start_server();
}

static void teardown(void)
{
	objstore_deinit(&store);
	fakes3_stop(&server_pid);
	objtest_rm_rf(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

TestSuite(s3_tls, .init = setup, .fini = teardown, .timeout = 30);

static int open_store(bool tls_insecure, const char **error_r)
{
	char endpoint[64];
	struct objstore_settings set = {
		.endpoint = endpoint,
		.tls_insecure = tls_insecure,
		.connect_timeout_ms = 2000,
		.request_timeout_ms = 5000,
		.retry_timeout_ms = 5000,
		.max_connections = 2,
	};

	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d",
		 server_port);
	return objstore_init("s3://testbucket", &set, &store, error_r);
}

Test(s3_tls, self_signed_certificate_is_refused_by_default)
{
	const char *error;
	char *msg;

	cr_assert_eq(open_store(false, &error), -1,
		     "init accepted an untrusted certificate");
	cr_assert_null(store);
	msg = strdup(error);
	cr_assert_not_null(msg);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_PERMANENT, "%s (%s)",
		     objstore_error_name(objstore_errcode()), msg);
	cr_assert_eq(errno, EIO);
	/* one line, saying which store and what went wrong, not retried */
	cr_assert_null(strchr(msg, '\n'), "%s", msg);
	cr_assert(strstr(msg, "S3 store s3://testbucket at https://127.0.0.1:")
		  == msg, "%s", msg);
	cr_assert_not_null(strstr(msg, "SSL certificate problem: "
				  "self-signed certificate"), "%s", msg);
	cr_assert_not_null(strstr(msg, "(after 1 attempt)"), "%s", msg);
	free(msg);
}

Test(s3_tls, tls_insecure_skips_verification)
{
	struct objstore_stat st;
	struct objstore_stats stats;
	const char *error;
	void *data;
	size_t size;

	cr_assert_eq(open_store(true, &error), 0, "%s", error);
	cr_assert_eq(objstore_put(store, "store/mail1", "hello over tls", 14,
				  NULL, 0), 0, "%s", objstore_error());
	cr_assert_eq(objstore_get(store, "store/mail1", 0, OBJSTORE_TO_END,
				  1024, &data, &size), 0, "%s",
		     objstore_error());
	cr_assert_eq(size, 14);
	cr_assert_str_eq(data, "hello over tls");
	free(data);
	cr_assert_eq(objstore_head(store, "store/mail1", &st), 0, "%s",
		     objstore_error());
	cr_assert_eq(st.size, 14);
	objstore_stat_free(&st);
	cr_assert_eq(objstore_head(store, "store/other", &st), -1);
	cr_assert_eq(objstore_errcode(), OBJSTORE_ERR_NOT_FOUND, "%s",
		     objstore_error());
	objstore_get_stats(store, &stats);
	cr_assert_eq(stats.retries, 0);
	cr_assert_eq(stats.errors, 1);
}
