//! Compile-time behaviour of `#[softprobe::case]`: each misuse is a spanned error (one file per
//! mistake under `tests/ui/fail/`), and the accepted forms compile (`tests/ui/pass/`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
