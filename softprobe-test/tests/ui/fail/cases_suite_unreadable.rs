#[softprobe::cases("suites/missing.suite.yaml")]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
