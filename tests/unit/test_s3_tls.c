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

/* open the store on the test server, trusting ca_file (NULL: the
   system's CAs) or nothing at all (tls_insecure) */
static int open_store_with(bool tls_insecure, const char *ca_file,
			   const char **error_r)
{
	char endpoint[64];
	struct objstore_settings set = {
		.endpoint = endpoint,
		.tls_insecure = tls_insecure,
		.ca_file = ca_file,
		.connect_timeout_ms = 2000,
		.request_timeout_ms = 5000,
		.retry_timeout_ms = 5000,
		.max_connections = 2,
	};

	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d",
		 server_port);
	return objstore_init("s3://testbucket", &set, &store, error_r);
}

static int open_store(bool tls_insecure, const char **error_r)
{
	return open_store_with(tls_insecure, NULL, error_r);
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

/* --- a private CA (ca_file) ------------------------------------------ */

/* The CA's certificate in tmpdir/ca.pem; server certificates signed by it
   for name (a subjectAltName such as "IP:127.0.0.1") in
   tmpdir/<base>.pem/.key. */
static void make_ca(void)
{
	char ca[1024], ca_key[1024];

	snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", tmpdir);
	char *argv[] = {
		"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-days", "1", "-subj", "/CN=oboxfs test CA",
		"-addext", "basicConstraints=critical,CA:TRUE",
		"-addext", "keyUsage=critical,keyCertSign,cRLSign",
		"-keyout", ca_key, "-out", ca, NULL
	};
	run_quiet(argv);
}

static void make_signed_cert(const char *base, const char *san)
{
	char csr[1024], key[1024], cert[1024], ext[1024], ca[1024];
	char ca_key[1024], serial[1024];
	FILE *f;

	snprintf(csr, sizeof(csr), "%s/%s.csr", tmpdir, base);
	snprintf(key, sizeof(key), "%s/%s.key", tmpdir, base);
	snprintf(cert, sizeof(cert), "%s/%s.pem", tmpdir, base);
	snprintf(ext, sizeof(ext), "%s/%s.ext", tmpdir, base);
	snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", tmpdir);
	snprintf(serial, sizeof(serial), "%s/ca.srl", tmpdir);
	f = fopen(ext, "w");
	cr_assert_not_null(f);
	fprintf(f, "subjectAltName=%s\n", san);
	fclose(f);
	char *req[] = {
		"openssl", "req", "-newkey", "rsa:2048", "-nodes",
		"-subj", "/CN=oboxfs test server", "-keyout", key,
		"-out", csr, NULL
	};
	run_quiet(req);
	char *sign[] = {
		"openssl", "x509", "-req", "-in", csr, "-CA", ca,
		"-CAkey", ca_key, "-CAserial", serial, "-CAcreateserial",
		"-days", "1", "-extfile", ext, "-out", cert, NULL
	};
	run_quiet(sign);
}

static void ca_setup(void)
{
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	tmpdir = objtest_mkdtemp("s3-tls-ca");
	cr_assert_not_null(tmpdir);
	make_ca();
}

/* serve HTTPS with tmpdir/<base>.pem */
static void start_signed_server(const char *base)
{
	char cert[1024], key[1024];

	snprintf(cert, sizeof(cert), "%s/%s.pem", tmpdir, base);
	snprintf(key, sizeof(key), "%s/%s.key", tmpdir, base);
	const char *args[] = { "--tls-cert", cert, "--tls-key", key, NULL };

	server_pid = fakes3_start(args, &server_port);
}

static int open_store_ca(const char *ca_file, const char **error_r)
{
	return open_store_with(false, ca_file, error_r);
}

static const char *ca_path(void)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s/ca.pem", tmpdir);
	return path;
}

TestSuite(s3_tls_ca, .init = ca_setup, .fini = teardown, .timeout = 30);

Test(s3_tls_ca, private_ca_is_trusted_with_ca_file)
{
	const char *error;
	void *data;
	size_t size;

	make_signed_cert("server", "IP:127.0.0.1");
	start_signed_server("server");
	cr_assert_eq(open_store_ca(ca_path(), &error), 0, "%s", error);
	cr_assert_eq(objstore_put(store, "store/mail1", "hello, private CA",
				  17, NULL, 0), 0, "%s", objstore_error());
	cr_assert_eq(objstore_get(store, "store/mail1", 0, OBJSTORE_TO_END,
				  1024, &data, &size), 0, "%s",
		     objstore_error());
	cr_assert_eq(size, 17);
	cr_assert_eq(memcmp(data, "hello, private CA", 17), 0);
	free(data);
}

Test(s3_tls_ca, private_ca_is_refused_without_ca_file)
{
	const char *error;

	make_signed_cert("server", "IP:127.0.0.1");
	start_signed_server("server");
	cr_assert_eq(open_store_ca(NULL, &error), -1,
		     "a certificate of an unknown CA was accepted");
	cr_assert_null(store);
	cr_assert_not_null(strstr(error, "SSL certificate problem"), "%s",
			   error);
}

Test(s3_tls_ca, wrong_host_name_is_refused)
{
	const char *error;

	/* signed by the trusted CA, but for another name */
	make_signed_cert("other", "DNS:s3.other.example");
	start_signed_server("other");
	cr_assert_eq(open_store_ca(ca_path(), &error), -1,
		     "a certificate for another host was accepted");
	cr_assert_null(store);
	cr_assert_null(strchr(error, '\n'), "%s", error);
	cr_assert_not_null(strstr(error, "subject name"), "%s", error);
}

Test(s3_tls_ca, unreadable_ca_file_is_refused_at_init)
{
	const char *error;
	char path[1024];

	make_signed_cert("server", "IP:127.0.0.1");
	start_signed_server("server");
	snprintf(path, sizeof(path), "%s/no-such-ca.pem", tmpdir);
	cr_assert_eq(open_store_ca(path, &error), -1);
	cr_assert_not_null(strstr(error, "ca_file"), "%s", error);
	cr_assert_not_null(strstr(error, "No such file"), "%s", error);
}
