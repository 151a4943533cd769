// tests/ui.rs copies tests/ui/suites/ into trybuild's project, where this path resolves.
#[softprobe::cases("tests/ui/suites/bad-variable.suite.yaml")]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
