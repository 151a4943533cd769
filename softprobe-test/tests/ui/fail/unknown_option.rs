#[softprobe::case("cases/checkout.case.json", strcit)]
async fn checkout() {}

fn main() {}
