#[softprobe::case("cases/listing.case.json", headers())]
async fn listing() {}

fn main() {}
