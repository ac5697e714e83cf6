/* helper-fakes3.c: start and stop the fake S3 endpoint used by the s3
 * backend's unit tests.  The server prints "PORT n" once it listens. */
#include "helper-fakes3.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAKES3_MAX_ARGS 16

pid_t fakes3_start(const char *const *extra_args, int *port_r)
{
	const char *src = getenv("OBOXFS_SOURCE_DIR");
	char script[1024], buf[64];
	const char *argv[FAKES3_MAX_ARGS + 3];
	unsigned int argc = 0;
	size_t len = 0;
	int fds[2];
	pid_t pid;

	cr_assert_not_null(src, "OBOXFS_SOURCE_DIR not set");
	snprintf(script, sizeof(script),
		 "%s/tests/fixtures/misbehaving-http.py", src);
	argv[argc++] = "python3";
	argv[argc++] = script;
	for (; extra_args != NULL && *extra_args != NULL; extra_args++) {
		cr_assert_lt(argc, FAKES3_MAX_ARGS + 2, "too many arguments");
		argv[argc++] = *extra_args;
	}
	argv[argc] = NULL;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* dies with the test process, whatever happens to it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while (len < sizeof(buf) - 1 && memchr(buf, '\n', len) == NULL) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		ssize_t ret;

		cr_assert_eq(poll(&pfd, 1, 10000), 1, "server did not start");
		ret = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		cr_assert_gt(ret, 0, "server exited");
		len += (size_t)ret;
	}
	close(fds[0]);
	buf[len] = '\0';
	cr_assert_eq(sscanf(buf, "PORT %d", port_r), 1, "%s", buf);
	return pid;
}

void fakes3_stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}
