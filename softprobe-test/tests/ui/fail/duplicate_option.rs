#[softprobe::case("cases/checkout.case.json", mode = "replay", mode = "capture")]
async fn checkout() {}

fn main() {}
