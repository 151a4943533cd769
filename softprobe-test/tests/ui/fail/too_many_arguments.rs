#[softprobe::case("cases/checkout.case.json")]
async fn checkout(sp: softprobe::Session, extra: u32) {}

fn main() {}
