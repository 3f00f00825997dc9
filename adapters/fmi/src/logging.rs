//! The FMU's log messages: formatted by `logger.c`, turned into `tracing` events here, and kept
//! so that an error can quote the FMU's own explanation.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Mutex, PoisonError};

use crate::error::Status;
use crate::functions::{ComponentEnvironment, Logger};

unsafe extern "C" {
    /// The `fmi2CallbackLogger` given to FMUs (logger.c): formats, then calls [`fedtwin_fmi_log`].
    fn fedtwin_fmi_logger(
        environment: ComponentEnvironment,
        instance: *const c_char,
        status: c_int,
        category: *const c_char,
        message: *const c_char,
        ...
    );
}

/// The logger callback for `fmi2CallbackFunctions`.
pub(crate) fn logger() -> Logger {
    fedtwin_fmi_logger
}

/// What the logger callback reaches through `componentEnvironment`: one per instance.
#[derive(Debug)]
pub(crate) struct LogEnvironment {
    /// Our name for the instance, used when the FMU passes none.
    instance: String,
    captured: Mutex<Captured>,
}

/// Messages logged since the last [`LogEnvironment::clear`].
#[derive(Debug, Default)]
struct Captured {
    /// The last message logged with `fmi2Error` or `fmi2Fatal`.
    last_error: Option<String>,
    /// The last message of any status.
    last: Option<String>,
}

impl LogEnvironment {
    pub(crate) fn new(instance: &str) -> Self {
        Self {
            instance: instance.to_owned(),
            captured: Mutex::new(Captured::default()),
        }
    }

    /// Forgets what was logged so far: called before each FMI call, so that an error quotes a
    /// message of that call.
    pub(crate) fn clear(&self) {
        *self.lock() = Captured::default();
    }

    /// The FMU's explanation of a failure: the last error message it logged since
    /// [`clear`](Self::clear), or else its last message.
    pub(crate) fn message(&self) -> Option<String> {
        let captured = self.lock();
        captured
            .last_error
            .clone()
            .or_else(|| captured.last.clone())
    }

    /// The last error message the FMU logged since [`clear`](Self::clear).
    pub(crate) fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    fn record(&self, status: Status, message: &str) {
        let mut captured = self.lock();
        if matches!(status, Status::Error | Status::Fatal) {
            captured.last_error = Some(message.to_owned());
        }
        captured.last = Some(message.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        // A panic while holding the lock cannot leave `Captured` inconsistent.
        self.captured.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Called by `fedtwin_fmi_logger` (logger.c) with the formatted message.
///
/// Never unwinds: nothing here panics, and a panic would abort at the `extern "C"` boundary.
#[unsafe(no_mangle)]
extern "C" fn fedtwin_fmi_log(
    environment: *mut c_void,
    instance: *const c_char,
    status: c_int,
    category: *const c_char,
    message: *const c_char,
) {
    let status = Status::from_raw(status);
    // SAFETY: the strings are NUL-terminated C strings from the FMU (or our C shim), valid for
    // the duration of the callback; `text` checks for null.
    let (instance_name, category, message) =
        unsafe { (text(instance), text(category), text(message)) };
    let environment = environment.cast_const().cast::<LogEnvironment>();
    // SAFETY: `componentEnvironment` is the pointer `Instance::new` gave `fmi2Instantiate`: an
    // `Arc<LogEnvironment>` that the instance keeps alive until after `fmi2FreeInstance` (and
    // leaks on `fmi2Fatal`, when the instance can no longer be freed). A null pointer (an FMU
    // that loses its environment) is tolerated.
    let environment = unsafe { environment.as_ref() };
    let instance = match (&instance_name, environment) {
        (Some(name), _) => name.as_str(),
        (None, Some(env)) => env.instance.as_str(),
        (None, None) => "?",
    };
    let category = category.as_deref().unwrap_or("");
    let message = message.as_deref().unwrap_or("");

    match status {
        Status::Warning | Status::Discard => {
            tracing::warn!(target: "fedtwin_fmi::fmu", instance, category, %status, "{message}")
        }
        Status::Error | Status::Fatal => {
            tracing::error!(target: "fedtwin_fmi::fmu", instance, category, %status, "{message}")
        }
        _ => tracing::debug!(target: "fedtwin_fmi::fmu", instance, category, %status, "{message}"),
    }
    if let Some(environment) = environment {
        environment.record(status, message);
    }
}

/// A C string as Rust text, `None` for null; invalid UTF-8 is replaced.
///
/// # Safety
///
/// `pointer` is null or points to a NUL-terminated string valid for the call.
unsafe fn text(pointer: *const c_char) -> Option<String> {
    if pointer.is_null() {
        return None;
    }
    // SAFETY: not null, and NUL-terminated by the caller's contract.
    Some(
        unsafe { CStr::from_ptr(pointer) }
            .to_string_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_error_and_the_last_message() {
        let env = LogEnvironment::new("a");
        let pointer = std::ptr::from_ref(&env).cast_mut().cast::<c_void>();
        let log = |status: c_int, message: &CStr| {
            fedtwin_fmi_log(
                pointer,
                c"a".as_ptr(),
                status,
                c"cat".as_ptr(),
                message.as_ptr(),
            )
        };
        assert_eq!(env.message(), None);
        log(0, c"hello");
        assert_eq!(env.message().as_deref(), Some("hello"));
        log(3, c"broken");
        log(0, c"after");
        assert_eq!(
            env.message().as_deref(),
            Some("broken"),
            "an error wins over later chatter"
        );
        assert_eq!(env.last_error().as_deref(), Some("broken"));
        env.clear();
        assert_eq!(env.message(), None);

        // Null pointers from a careless FMU are tolerated.
        fedtwin_fmi_log(
            pointer,
            std::ptr::null(),
            1,
            std::ptr::null(),
            std::ptr::null(),
        );
        fedtwin_fmi_log(
            std::ptr::null_mut(),
            std::ptr::null(),
            4,
            std::ptr::null(),
            c"x".as_ptr(),
        );
        assert_eq!(env.message().as_deref(), Some(""));
    }

    #[test]
    fn the_c_shim_formats_printf_messages() {
        let env = LogEnvironment::new("a");
        let pointer = std::ptr::from_ref(&env).cast_mut().cast::<c_void>();
        let log = logger();
        // SAFETY: a valid environment, NUL-terminated strings, and arguments matching the format.
        unsafe {
            log(
                pointer,
                c"a".as_ptr(),
                3,
                c"cat".as_ptr(),
                c"x=%d, %s, %.2f".as_ptr(),
                42 as c_int,
                c"y".as_ptr(),
                1.5f64,
            )
        };
        assert_eq!(env.message().as_deref(), Some("x=42, y, 1.50"));

        // Longer than the shim's stack buffer.
        env.clear();
        let long = "z".repeat(5000);
        let long_c = std::ffi::CString::new(long.clone()).unwrap();
        // SAFETY: as above.
        unsafe {
            log(
                pointer,
                c"a".as_ptr(),
                0,
                c"cat".as_ptr(),
                c"<%s>".as_ptr(),
                long_c.as_ptr(),
            )
        };
        assert_eq!(env.message(), Some("<".to_owned() + &long + ">"));

        // SAFETY: a null message is handled by the shim.
        unsafe { log(pointer, c"a".as_ptr(), 4, c"cat".as_ptr(), std::ptr::null()) };
        assert_eq!(env.last_error().as_deref(), Some(""));
    }
}
