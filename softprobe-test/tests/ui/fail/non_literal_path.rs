const CASE: &str = "cases/checkout.case.json";

#[softprobe::case(CASE)]
async fn checkout() {}

fn main() {}
