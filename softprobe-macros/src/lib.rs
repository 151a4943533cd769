//! Procedural macros behind `#[softprobe::case]`. They parse, validate and expand only; the
//! behaviour lives in the `softprobe` crate.
