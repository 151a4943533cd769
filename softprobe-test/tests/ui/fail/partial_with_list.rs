#[softprobe::case("cases/checkout.case.json", partial("/checkout"))]
async fn checkout() {}

fn main() {}
