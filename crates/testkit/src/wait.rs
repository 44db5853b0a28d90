//! The one way tests wait for something that happens in another process or thread: poll a
//! condition until it holds or a limit passes. Every wait is bounded.

use std::time::{Duration, Instant};

/// The first pause between two checks: what a test waits for usually comes within milliseconds.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// The longest pause: a condition that spawns a process (`psql`, `nft`) and is checked for a
/// minute must not load a 2-core machine that also runs the processes under test.
const LONGEST_POLL: Duration = Duration::from_millis(200);

/// Polls `condition` until it holds (true) or `limit` passes (false). The condition is always
/// checked at least once, and once more at the deadline; the pause between checks grows from
/// 10 ms to 200 ms.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let mut pause = FIRST_POLL;
    loop {
        if condition() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 3 / 2).min(LONGEST_POLL);
    }
}

/// [`wait_until`] that fails the test, naming `what` it waited for.
pub fn wait_for(limit: Duration, what: &str, condition: impl FnMut() -> bool) {
    assert!(
        wait_until(limit, condition),
        "timed out after {limit:?} waiting for {what}"
    );
}
