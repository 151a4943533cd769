#[softprobe::case("cases/checkout.case.json", redact("createdAt"))]
async fn checkout() {}

fn main() {}
