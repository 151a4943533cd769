#[softprobe::case("cases/checkout.case.json")]
async fn checkout<T: Default>() {}

fn main() {}
