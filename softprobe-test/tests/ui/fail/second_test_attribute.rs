#[softprobe::case("cases/checkout.case.json")]
#[test]
fn checkout() {}

fn main() {}
