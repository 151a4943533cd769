#[softprobe::case("cases/checkout.case.json", partial = true)]
async fn checkout() {}

fn main() {}
