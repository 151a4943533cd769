#[softprobe::case("cases/listing.case.json", headers("etag", "ETag"))]
async fn listing() {}

fn main() {}
