#[softprobe::case("cases/listing.case.json", redact("header:etag"), headers("etag"))]
async fn listing() {}

fn main() {}
