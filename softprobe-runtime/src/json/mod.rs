//! Comparing JSON documents: the one structural diff ([`diff()`]) every verdict uses (the
//! inbound comparison of the test harness, the strict-miss report, suite assertions and
//! outbound request drift), the path patterns that name fields in it ([`path`]), and the
//! shapes of values that change on every run by nature ([`volatile`]).
//!
//! Paths are written as singular JSONPath (`$.items[0].sku`, `$['first name']`), the syntax
//! rules use too; patterns add a wildcard step (`[*]`, or `[]` as the harness has always
//! accepted).

pub mod diff;
pub mod path;
pub mod volatile;

pub use diff::{DiffOptions, Difference, diff, json_eq};
pub use path::{JsonPath, JsonPathError, PathPattern, Step};
pub use volatile::Shape;
