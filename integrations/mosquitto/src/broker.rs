//! The broker's functions. Under `cfg(test)` they are replaced by fakes, so the
//! callbacks can be tested without a broker (and without C variadics).

#[cfg(test)]
pub(crate) use fake::*;
#[cfg(not(test))]
pub(crate) use real::*;

#[cfg(not(test))]
mod real {
    use crate::ffi::{Callback, Client, PluginId};
    use std::ffi::{c_char, c_int, c_void};

    unsafe extern "C" {
        pub fn mosquitto_callback_register(
            identifier: *mut PluginId,
            event: c_int,
            cb: Callback,
            event_data: *const c_void,
            userdata: *mut c_void,
        ) -> c_int;
        pub fn mosquitto_callback_unregister(
            identifier: *mut PluginId,
            event: c_int,
            cb: Callback,
            event_data: *const c_void,
        ) -> c_int;
        pub fn mosquitto_client_id(client: *const Client) -> *const c_char;
        pub fn mosquitto_client_address(client: *const Client) -> *const c_char;
        fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
    }

    /// Logs one line through the broker.
    pub fn log_line(level: c_int, line: &std::ffi::CStr) {
        // SAFETY: the format string is a NUL-terminated literal with one `%s`,
        // and `line` is a valid NUL-terminated string that outlives the call.
        unsafe { mosquitto_log_printf(level, c"%s".as_ptr(), line.as_ptr()) };
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use crate::ffi::{Callback, Client, PluginId};
    use std::cell::RefCell;
    use std::ffi::{c_char, c_int, c_void};

    thread_local! {
        pub static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        pub static REGISTERED: RefCell<Vec<c_int>> = const { RefCell::new(Vec::new()) };
    }

    pub unsafe fn mosquitto_callback_register(
        _identifier: *mut PluginId,
        event: c_int,
        _cb: Callback,
        _event_data: *const c_void,
        _userdata: *mut c_void,
    ) -> c_int {
        REGISTERED.with(|r| r.borrow_mut().push(event));
        0
    }

    pub unsafe fn mosquitto_callback_unregister(
        _identifier: *mut PluginId,
        event: c_int,
        _cb: Callback,
        _event_data: *const c_void,
    ) -> c_int {
        REGISTERED.with(|r| r.borrow_mut().retain(|e| *e != event));
        0
    }

    /// The fake broker's client *is* its NUL-terminated client id.
    pub unsafe fn mosquitto_client_id(client: *const Client) -> *const c_char {
        client.cast()
    }

    /// Every fake client connects from the same address.
    pub unsafe fn mosquitto_client_address(_client: *const Client) -> *const c_char {
        c"127.0.0.1".as_ptr()
    }

    pub fn log_line(_level: c_int, line: &std::ffi::CStr) {
        LOG.with(|l| l.borrow_mut().push(line.to_string_lossy().into_owned()));
    }
}
