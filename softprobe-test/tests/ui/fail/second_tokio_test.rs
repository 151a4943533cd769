#[softprobe::case("cases/checkout.case.json")]
#[tokio::test]
async fn checkout() {}

fn main() {}
