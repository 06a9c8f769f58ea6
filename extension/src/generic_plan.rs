//! Statements the row triggers prepare once per backend and always run with
//! their generic plan.
//!
//! Their arguments are arrays of paths. Given the values, the planner knows
//! an array's length, so a custom plan always looks cheaper than the generic
//! one and PostgreSQL's plan cache would plan (and parse the SQL functions
//! it inlines) again for every row: a third of the trigger's time, measured.
//! pgrx's prepared statements cannot ask for the generic plan, hence this
//! thin wrapper over `SPI_prepare_cursor` with `CURSOR_OPT_GENERIC_PLAN`.

use crate::error::FilegcError;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::ffi::CString;
use std::ptr::NonNull;

/// A statement kept for the life of the backend, run with its generic plan.
/// PostgreSQL's plan cache still replans it when an object it uses changes.
pub struct GenericPlan(NonNull<pg_sys::_SPI_plan>);

impl GenericPlan {
    /// Prepares `sql` with arguments of `types`; `_connected` shows that
    /// SPI is connected.
    pub fn prepare(
        _connected: &mut SpiClient<'_>,
        sql: &str,
        types: &[pg_sys::Oid],
    ) -> Result<GenericPlan, FilegcError> {
        let text = CString::new(sql).expect("the triggers' SQL has no NUL byte");
        let mut types = types.to_vec();
        // SAFETY: SPI is connected (the client proves it); the text and the
        // types outlive the call, which copies them.
        let plan = unsafe {
            pg_sys::SPI_prepare_cursor(
                text.as_ptr(),
                types.len() as i32,
                types.as_mut_ptr(),
                pg_sys::CURSOR_OPT_GENERIC_PLAN as i32,
            )
        };
        let plan = NonNull::new(plan).ok_or_else(|| FilegcError::Prepare {
            sql: sql.to_owned(),
            // SAFETY: SPI_result holds the code of the failed SPI_prepare_cursor.
            code: unsafe { pg_sys::SPI_result },
        })?;
        // SAFETY: a plan SPI_prepare_cursor just returned.
        unsafe { pg_sys::SPI_keepplan(plan.as_ptr()) };
        Ok(GenericPlan(plan))
    }

    /// Runs the statement with `args` (none of them NULL); returns the
    /// number of rows it processed.
    pub fn execute(
        &self,
        _connected: &mut SpiClient<'_>,
        args: &[pg_sys::Datum],
    ) -> Result<u64, FilegcError> {
        let mut values = args.to_vec();
        let nulls = vec![b' ' as std::ffi::c_char; values.len()];
        // SAFETY: SPI is connected; the plan was prepared with as many
        // arguments as the callers pass, of the types their datums have.
        let code = unsafe {
            pg_sys::SPI_execute_plan(
                self.0.as_ptr(),
                values.as_mut_ptr(),
                nulls.as_ptr(),
                false,
                0,
            )
        };
        if code < 0 {
            return Err(FilegcError::Execute { code });
        }
        // SAFETY: set by the SPI_execute_plan above.
        Ok(unsafe { pg_sys::SPI_processed })
    }
}

impl Drop for GenericPlan {
    fn drop(&mut self) {
        // SAFETY: the plan is kept (not in an SPI memory context) and freed once.
        unsafe { pg_sys::SPI_freeplan(self.0.as_ptr()) };
    }
}
