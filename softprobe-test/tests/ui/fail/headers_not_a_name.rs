#[softprobe::case("cases/listing.case.json", headers("x total count"))]
async fn listing() {}

fn main() {}
