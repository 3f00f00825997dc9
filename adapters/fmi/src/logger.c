/*
 * The FMI 2.0 logger callback (fmi2CallbackLogger) is variadic: the FMU passes a printf format
 * and its arguments. Rust cannot define a variadic function on stable, so this shim formats the
 * message with vsnprintf and hands the finished text to `fedtwin_fmi_log` in logging.rs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Defined in Rust (src/logging.rs). */
extern void fedtwin_fmi_log(void *environment, const char *instance, int status,
                            const char *category, const char *message);

void fedtwin_fmi_logger(void *environment, const char *instance, int status,
                        const char *category, const char *message, ...)
{
    char small[1024];
    char *large = NULL;
    const char *text = small;
    va_list args;
    int needed;

    if (message == NULL) {
        fedtwin_fmi_log(environment, instance, status, category, "");
        return;
    }

    va_start(args, message);
    needed = vsnprintf(small, sizeof small, message, args);
    va_end(args);

    if (needed < 0) {
        /* An encoding error in the format: pass the format itself. */
        text = message;
    } else if ((size_t)needed >= sizeof small) {
        large = malloc((size_t)needed + 1);
        if (large != NULL) {
            va_start(args, message);
            vsnprintf(large, (size_t)needed + 1, message, args);
            va_end(args);
            text = large;
        }
        /* Out of memory: keep the truncated text in `small`. */
    }

    fedtwin_fmi_log(environment, instance, status, category, text);
    free(large);
}
