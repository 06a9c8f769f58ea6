//! Tests that run inside PostgreSQL, each in a transaction that is rolled back.

use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn ref_path_normalizes_a_url() {
        let path = Spi::get_one::<String>(
            "SELECT filegc.ref_path('https://cdn.example.com/app/facial_evaluations/user_7_1.jpg', '{/app/facial_evaluations/}')",
        );
        assert_eq!(path, Ok(Some("user_7_1.jpg".to_owned())));
    }
}
