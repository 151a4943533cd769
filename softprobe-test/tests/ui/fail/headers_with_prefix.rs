#[softprobe::case("cases/listing.case.json", headers("header:etag"))]
async fn listing() {}

fn main() {}
