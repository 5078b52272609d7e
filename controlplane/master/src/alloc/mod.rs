//! Space allocation inside segments.

pub mod offset;
