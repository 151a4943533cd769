#[softprobe::case("cases/checkout.case.json", partial, strict, partial)]
async fn checkout() {}

fn main() {}
