//! The wall clock and the local UTC offset. `time`'s own local-offset lookup refuses to work in
//! a multi-threaded process, so the offset comes from `localtime_r` (thread-safe; we never
//! change `TZ` at run time).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Seconds east of UTC at `unix_seconds` in the system's time zone (`TZ`, `/etc/localtime`);
/// 0 if it cannot be determined.
pub fn local_offset(unix_seconds: i64) -> i32 {
    let t: libc::time_t = unix_seconds as libc::time_t;
    // SAFETY: tm is plain data; localtime_r writes into it and returns NULL on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    } else {
        0
    }
}
