#[softprobe::case("cases/checkout.case.json")]
struct Checkout;

fn main() {}
