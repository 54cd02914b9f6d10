//! The checkout service (`shop`), a library so that the program (`src/main.rs`) serves it
//! and the tests (`tests/`) start it in their own process.

pub mod shop;
