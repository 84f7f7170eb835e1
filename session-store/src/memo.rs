//! A per-worker memo of opened session cookies: the same cookie bytes always open to the
//! same ticket, so a worker decrypts a cookie and derives its store key once, not on
//! every request. Entries are cookies that opened (never a forged one), checked again
//! for their expiry and the key ring in force, and bounded: a full memo starts over.

use std::cell::RefCell;

use rustc_hash::FxHashMap;

use crate::sessions::OpenedTicket;

/// Most cookies remembered per worker and config.
const CAPACITY: usize = 8192;

struct Entry {
    opened: OpenedTicket,
    generation: u64,
    expires_at: u64,
}

thread_local! {
    static MEMO: RefCell<FxHashMap<u64, FxHashMap<Box<str>, Entry>>> = RefCell::default();
}

/// The ticket `cookie` opened to under ring `generation`, if it did on this worker and
/// has not expired.
pub(crate) fn get(service: u64, cookie: &str, generation: u64, now: u64) -> Option<OpenedTicket> {
    MEMO.with(|m| {
        let m = m.borrow();
        let e = m.get(&service)?.get(cookie)?;
        (e.generation == generation && now < e.expires_at).then(|| e.opened.clone())
    })
}

/// Remembers what `cookie` opened to.
pub(crate) fn put(service: u64, cookie: &str, opened: OpenedTicket, generation: u64, expires_at: u64) {
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= 16 && !m.contains_key(&service) {
            // Configs come and go (reloads): the memos of gone ones are not kept.
            m.clear();
        }
        let entries = m.entry(service).or_default();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            cookie.into(),
            Entry {
                opened,
                generation,
                expires_at,
            },
        );
    })
}
