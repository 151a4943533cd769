// trybuild builds this from target/tests/trybuild/softprobe-test: four levels below the workspace.
#[softprobe::cases("../../../../softprobe-test/tests/ui/suites/no-match.suite.yaml", redact(".body.id"))]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
