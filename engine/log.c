/* log.c: the engine's log sink (see log.h). */
#include "log.h"

#include <stdio.h>

static void stderr_sink(enum obox_log_level level, const char *fmt,
			va_list args)
{
	(void)level;
	fputs("oboxfs: ", stderr);
	vfprintf(stderr, fmt, args);
}

/* set once at startup, before threads start */
static obox_log_sink *log_sink = stderr_sink;

void obox_log_set_sink(obox_log_sink *sink)
{
	log_sink = sink == NULL ? stderr_sink : sink;
}

void obox_log(enum obox_log_level level, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	log_sink(level, fmt, args);
	va_end(args);
}
