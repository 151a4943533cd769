#[softprobe::case("cases/checkout.case.json", mode = "record-everything")]
async fn checkout() {}

fn main() {}
