//! The snapshot file format (written by the persistence-format work).
