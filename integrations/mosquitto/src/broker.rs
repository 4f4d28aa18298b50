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
        pub fn mosquitto_client_username(client: *const Client) -> *const c_char;
        pub fn mosquitto_client_address(client: *const Client) -> *const c_char;
        pub fn mosquitto_kick_client_by_clientid(clientid: *const c_char, with_will: bool)
        -> c_int;
        fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
        fn mosquitto_broker_publish_copy(
            clientid: *const c_char,
            topic: *const c_char,
            payloadlen: c_int,
            payload: *const c_void,
            qos: c_int,
            retain: bool,
            properties: *mut c_void,
        ) -> c_int;
    }

    /// Publishes `payload` on `topic`, retained, at QoS 0, to every
    /// subscriber (Mosquitto copies both); its return code.
    pub fn publish_retained(topic: &std::ffi::CStr, payload: &[u8]) -> c_int {
        let Ok(len) = c_int::try_from(payload.len()) else {
            return 3; // MOSQ_ERR_INVAL
        };
        // SAFETY: a NUL-terminated topic and a payload of `len` bytes, both
        // valid for the call (Mosquitto copies them); a null client id (to
        // everyone) and no properties are what the API documents.
        unsafe {
            mosquitto_broker_publish_copy(
                std::ptr::null(),
                topic.as_ptr(),
                len,
                payload.as_ptr().cast(),
                0,
                true,
                std::ptr::null_mut(),
            )
        }
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
        /// Client ids kicked, with `with_will`.
        pub static KICKED: RefCell<Vec<(String, bool)>> = const { RefCell::new(Vec::new()) };
        /// Retained messages published: (topic, payload).
        pub static PUBLISHED: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    }

    /// The fake broker's client: its client id, username and address.
    #[repr(C)]
    pub struct FakeClient {
        pub id: *const c_char,
        pub username: *const c_char,
        pub address: *const c_char,
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

    /// # Safety
    /// `client` points to a [`FakeClient`].
    pub unsafe fn mosquitto_client_id(client: *const Client) -> *const c_char {
        // SAFETY: per the contract, a valid FakeClient.
        unsafe { (*client.cast::<FakeClient>()).id }
    }

    /// # Safety
    /// `client` points to a [`FakeClient`].
    pub unsafe fn mosquitto_client_username(client: *const Client) -> *const c_char {
        // SAFETY: per the contract, a valid FakeClient.
        unsafe { (*client.cast::<FakeClient>()).username }
    }

    /// # Safety
    /// `client` points to a [`FakeClient`].
    pub unsafe fn mosquitto_client_address(client: *const Client) -> *const c_char {
        // SAFETY: per the contract, a valid FakeClient.
        unsafe { (*client.cast::<FakeClient>()).address }
    }

    /// # Safety
    /// `clientid` is a NUL-terminated string.
    pub unsafe fn mosquitto_kick_client_by_clientid(
        clientid: *const c_char,
        with_will: bool,
    ) -> c_int {
        // SAFETY: per the contract.
        let id = unsafe { std::ffi::CStr::from_ptr(clientid) };
        KICKED.with(|k| {
            k.borrow_mut()
                .push((id.to_string_lossy().into_owned(), with_will))
        });
        0
    }

    pub fn publish_retained(topic: &std::ffi::CStr, payload: &[u8]) -> c_int {
        PUBLISHED.with(|p| {
            p.borrow_mut().push((
                topic.to_string_lossy().into_owned(),
                String::from_utf8_lossy(payload).into_owned(),
            ))
        });
        0
    }

    pub fn log_line(_level: c_int, line: &std::ffi::CStr) {
        LOG.with(|l| l.borrow_mut().push(line.to_string_lossy().into_owned()));
    }
}
