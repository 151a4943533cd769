#[softprobe::case("cases/checkout.yaml")]
async fn checkout() {}

fn main() {}
