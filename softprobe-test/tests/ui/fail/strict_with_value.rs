#[softprobe::case("cases/checkout.case.json", strict = true)]
async fn checkout() {}

fn main() {}
