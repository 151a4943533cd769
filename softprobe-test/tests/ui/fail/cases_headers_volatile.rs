#[softprobe::cases("cases/nothing-here-*.case.json", headers("traceparent"))]
async fn app(sp: softprobe::Session) -> String {
    let _ = sp;
    String::new()
}

fn main() {}
