//! Point 1 of the lock protocol (`sql/references.sql`), as the extension's
//! row triggers take it: the SHARED advisory lock of every path entering a
//! row, or, once a transaction would hold more than `filegc.max_path_locks()`
//! of them, the SHARED escalation lock instead. The portable engine takes the
//! same locks in SQL (`filegc.reserve_path_locks`, `filegc.note_entered`);
//! here they are direct calls, which saves the trigger two PL/pgSQL calls and
//! a setting written per row.
//!
//! The count of a transaction's locks lives in this backend's memory and is
//! reset when the transaction ends. A subtransaction that aborts gives back
//! the locks it took, so the count can only be too high (which escalates
//! early, the safe side); the escalation lock it may have taken is given
//! back too, so an abort also forgets that the transaction escalated, and
//! the next path takes its lock again.

use pgrx::prelude::*;
use pgrx::IntoDatum;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// The advisory-lock classes and the limit, as the SQL defines them.
#[derive(Debug, Clone, Copy)]
pub struct LockClasses {
    /// `filegc.path_lock_class()`.
    pub path: i32,
    /// `filegc.escalation_lock_class()`.
    pub escalation: i32,
    /// `filegc.max_path_locks()`.
    pub max_path_locks: i32,
}

/// What the current transaction holds already.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    /// Path locks taken (too many after a subtransaction's abort, never too few).
    path_locks: i32,
    /// Whether the escalation lock is held.
    escalated: bool,
    /// When a NOTIFY for the sweeper was queued, if one is.
    woke_at: Option<Instant>,
}

thread_local! {
    static HELD: Cell<Held> = const { Cell::new(Held { path_locks: 0, escalated: false, woke_at: None }) };
    /// When the last transaction of this backend that woke the sweeper and committed queued its NOTIFY.
    static LAST_COMMITTED_WAKE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Whether this backend registered the transaction callbacks.
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

// PostgreSQL's own SQL-callable functions, called directly (pg_sys wraps
// each in a Rust function, which DirectFunctionCall cannot take).
unsafe extern "C-unwind" {
    fn pg_notify(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    fn hashtext(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
    fn pg_advisory_xact_lock_shared_int4(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// Takes the SHARED lock of every path in `paths` (already distinct), or
/// the escalation lock.
pub fn hold_paths(paths: &[String], classes: LockClasses) {
    register_callbacks();
    let mut held = HELD.with(Cell::get);
    if held.escalated || paths.is_empty() {
        return;
    }
    let wanted = i32::try_from(paths.len()).unwrap_or(i32::MAX);
    if held.path_locks.saturating_add(wanted) > classes.max_path_locks {
        advisory_lock_shared(classes.escalation, 0);
        held.escalated = true;
    } else {
        for path in paths {
            advisory_lock_shared(classes.path, path_lock_key(path));
        }
        held.path_locks += wanted;
    }
    HELD.with(|cell| cell.set(held));
}

/// Queues `NOTIFY filegc, 'notes'` once per transaction, as
/// `filegc.wake_sweeper(unless_recent)` does: unless prepared transactions
/// are enabled, and with `unless_recent` (paths that left rows) not when a
/// transaction of this backend that committed woke the sweeper less than
/// `pause` (`filegc.release_wake_pause()`) ago.
pub fn wake_sweeper(prepared_transactions_enabled: bool, unless_recent: Option<Duration>) {
    register_callbacks();
    let mut held = HELD.with(Cell::get);
    if held.woke_at.is_some() || prepared_transactions_enabled {
        return;
    }
    let now = Instant::now();
    if let Some(pause) = unless_recent {
        let last = LAST_COMMITTED_WAKE.with(Cell::get);
        if last.is_some_and(|woke_at| now.duration_since(woke_at) < pause) {
            return;
        }
    }
    // SAFETY: pg_notify reads two non-null text arguments; DirectFunctionCall
    // passes them as such and raises an ERROR if the result were NULL.
    unsafe {
        pg_sys::DirectFunctionCall2Coll(
            Some(pg_notify),
            pg_sys::InvalidOid,
            "filegc".into_datum().expect("a text datum"),
            "notes".into_datum().expect("a text datum"),
        );
    }
    held.woke_at = Some(now);
    HELD.with(|cell| cell.set(held));
}

/// `filegc.path_lock_key(path)`: `hashtext` under the database's default
/// collation, which is what the SQL function's argument carries.
pub fn path_lock_key(path: &str) -> i32 {
    // SAFETY: hashtext reads one text argument and returns an int4 datum.
    let key = unsafe {
        pg_sys::DirectFunctionCall1Coll(
            Some(hashtext),
            pg_sys::DEFAULT_COLLATION_OID,
            path.into_datum().expect("a text datum"),
        )
    };
    key.value() as i32
}

/// `pg_advisory_xact_lock_shared(class, key)`.
fn advisory_lock_shared(class: i32, key: i32) {
    // SAFETY: the function reads two int4 arguments and returns void.
    unsafe {
        pg_sys::DirectFunctionCall2Coll(
            Some(pg_advisory_xact_lock_shared_int4),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(class),
            pg_sys::Datum::from(key),
        );
    }
}

/// At the end of a transaction, whatever it held is gone; a NOTIFY it
/// queued was sent if it committed.
unsafe extern "C-unwind" fn transaction_ended(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        let held = HELD.with(|cell| cell.replace(Held::default()));
        if matches!(event, XACT_EVENT_COMMIT) && held.woke_at.is_some() {
            LAST_COMMITTED_WAKE.with(|cell| cell.set(held.woke_at));
        }
    }
}

/// A subtransaction's abort gives back the locks it took and drops the
/// notifications it queued; the count stays as it is, too high at worst.
unsafe extern "C-unwind" fn subtransaction_ended(
    event: pg_sys::SubXactEvent::Type,
    _subtransaction: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        HELD.with(|cell| {
            let held = cell.get();
            cell.set(Held {
                escalated: false,
                woke_at: None,
                ..held
            });
        });
    }
}

/// Registers the callbacks above, once per backend (their slots cannot be
/// given back). They only set a thread-local value.
fn register_callbacks() {
    if !CALLBACKS_REGISTERED.with(|registered| registered.replace(true)) {
        // SAFETY: the callbacks never raise an error or panic.
        unsafe {
            pg_sys::RegisterXactCallback(Some(transaction_ended), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subtransaction_ended), std::ptr::null_mut());
        }
    }
}
