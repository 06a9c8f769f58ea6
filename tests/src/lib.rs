//! Test harness for filegc: a private PostgreSQL with the extension and temporary volumes.
