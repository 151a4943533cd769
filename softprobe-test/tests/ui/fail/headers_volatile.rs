#[softprobe::case("cases/listing.case.json", headers("x-total-count", "Date"))]
async fn listing() {}

fn main() {}
