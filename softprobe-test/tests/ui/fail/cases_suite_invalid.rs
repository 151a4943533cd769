// tests/ui.rs copies tests/ui/suites/ into trybuild's project, where this path resolves.
#[softprobe::cases("tests/ui/suites/invalid.suite.yaml")]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
